"""A screenshot of the monitoring dashboard's queries over real data:
docs/screenshots/dashboard.png.

Why this way: the deployment's dashboard is Grafana's (deploy/grafana/dashboards/
medcite.json, run by docker-compose.yml), but Grafana cannot be installed where this
project is built (no Docker engine; not on PyPI, Debian or npm). Debian's Prometheus
server (2.42, package `prometheus`, the one whose `promtool` the tests already use) can.
So this script shows the dashboard's own PromQL, read from medcite.json (never copied by
hand), evaluated by a real Prometheus that scrapes a real medcite API, in Prometheus's own
graph page (`/classic/graph` in Debian's build, which ships the classic UI), one graph per
query, each headed by the Grafana panel it belongs to, laid out in two columns. It is
Prometheus's UI, not Grafana's; the Grafana JSON is not changed.

Steps: write a temporary Prometheus config (the job of deploy/prometheus/prometheus.yml,
aimed at the given API, scraping every 5 s with the given `metrics` key as its bearer
credentials file, alert rules deploy/prometheus/alerts.yml by absolute path), check it
with `promtool`, start `prometheus` on 127.0.0.1 with a temporary TSDB, send a few minutes
of traffic (formulary questions that answer without the model, a few that need it, one the
sources cannot answer, a thumbs-down, /health and /documents), let it scrape, open the
graph page with the chosen panels through Playwright and the system Chromium, wait until
every graph has rendered, save a full-page PNG, and always stop Prometheus.

The API must already run (`medcite up`); the asking key is a clinician key (default: the
local key `medcite up` made, data/local.key), the scraping key one of role `metrics`:

    .venv/bin/medcite keys create --name prometheus --role metrics | tail -1 > /tmp/metrics.key
    .venv/bin/python scripts/dashboard_screenshot.py --metrics-key-file /tmp/metrics.key

Every expression is shown as the dashboard has it. WINDOW_OVERRIDES can shorten a
panel's range window when a short run leaves it empty; it is empty: every panel shown has
data with the dashboard's own windows ([5m], [15m], [1h]).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = REPO_ROOT / "deploy/grafana/dashboards/medcite.json"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy/prometheus/prometheus.yml"
ALERTS = REPO_ROOT / "deploy/prometheus/alerts.yml"
DEFAULT_OUT = REPO_ROOT / "docs/screenshots/dashboard.png"
SCRAPE_INTERVAL = "5s"

# The panels shown, by their title in medcite.json, and which of a panel's queries
# (refId): Prometheus's graph page draws one expression per graph.
PANELS: list[tuple[str, str]] = [
    ("Requests per second by endpoint", "A"),
    ("HTTP latency p95 by endpoint", "A"),
    ("Stage latency p50 / p95", "B"),
    ("Answers by status (per hour)", "A"),
    ("Citations by verification status (per hour)", "A"),
    ("Generator tokens per second (p50)", "B"),
    ("Admission: in flight, queued, shed/s, rate-limited/s", "A"),
    ("Quality signals over the alarm window", "A"),
]
# (title, refId) -> (window in the dashboard, window shown). Only for a panel that is
# empty after a short run otherwise; each use is printed. None needed so far.
WINDOW_OVERRIDES: dict[tuple[str, str], tuple[str, str]] = {}

# Formulary lookups: answered from the formulary's table without the model, in
# milliseconds, so they can be sent often. They pass the same admission gate as a
# generation, though (one slot with the embedded llama.cpp): one sent while a model
# question generates waits, and past MEDCITE_ANSWER_QUEUE_WAIT_S (30 s) is shed with a
# 503 at_capacity. That is what the service does, and the screenshot shows it.
LOOKUPS = [
    "Is Humira on Ohio Medicaid's preferred list?",
    "Quantity limit on liraglutide (Victoza) pens for Ohio Medicaid?",
    "Which PCSK9 inhibitors are on Ohio Medicaid's preferred list?",
    "Is Ozempic preferred for an Ohio Medicaid patient with type 2 diabetes?",
]
# Questions the generator answers (10-60 s each on a CPU), one after another.
MODEL_QUESTIONS = [
    "What is the recommended starting dose of atorvastatin?",
    "What are the boxed warnings of haloperidol?",
    "What is the maximum daily dose of metformin?",
]
# No source mentions the drug: an abstention, decided before any generation.
UNANSWERABLE = "What is the recommended dose of artemether for malaria?"


# Layout only, for a screenshot that reads like a dashboard: the graphs in two columns,
# 260 px tall (the page's own CSS: one column, 400 px). Applied before the page draws.
LAYOUT_CSS = """
#graph_container { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr));
                   column-gap: 28px; align-items: start; }
#graph_container > .clearfix { grid-column: 1 / -1; }
.graph { min-height: 260px; }
"""


@dataclass(frozen=True)
class Graph:
    title: str
    ref_id: str
    expr: str


def dashboard_graphs(dashboard: Path = DASHBOARD) -> list[Graph]:
    """The chosen panels' queries, as medcite.json has them (WINDOW_OVERRIDES aside)."""
    panels = {p["title"]: p for p in json.loads(dashboard.read_text())["panels"]}
    graphs = []
    for title, ref_id in PANELS:
        if title not in panels:
            raise SystemExit(f"no panel {title!r} in {dashboard}: update PANELS")
        targets = {t["refId"]: t["expr"] for t in panels[title]["targets"]}
        expr = targets[ref_id]
        if (title, ref_id) in WINDOW_OVERRIDES:
            old, new = WINDOW_OVERRIDES[(title, ref_id)]
            print(f"panel {title!r} {ref_id}: window {old} shown as {new}", file=sys.stderr)
            expr = expr.replace(old, new)
        graphs.append(Graph(title, ref_id, expr))
    return graphs


def graph_url(base: str, graphs: list[Graph], range_input: str) -> str:
    """The classic graph page with one graph tab (tab 0) per query."""
    params: list[tuple[str, str]] = []
    for i, g in enumerate(graphs):
        params += [(f"g{i}.expr", g.expr), (f"g{i}.tab", "0"), (f"g{i}.stacked", "0"),
                   (f"g{i}.range_input", range_input)]
    return f"{base}/classic/graph?{urllib.parse.urlencode(params)}"


def prometheus_config(api_url: str, key_file: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml's job, aimed at api_url, scraping every 5 s."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {"scrape_interval": SCRAPE_INTERVAL,
                        "evaluation_interval": SCRAPE_INTERVAL}
    config["rule_files"] = [str(ALERTS.resolve())]
    url = urllib.parse.urlsplit(api_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    for job in config["scrape_configs"]:
        job["scheme"] = url.scheme
        job["authorization"]["credentials_file"] = str(key_file.resolve())
        job["static_configs"] = [{"targets": [f"{url.hostname}:{port}"]}]
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_prometheus(binary: str, config: Path, tsdb: Path, port: int) -> Iterator[str]:
    """A Prometheus server on 127.0.0.1:port, stopped on exit whatever happens."""
    log = (tsdb.parent / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tsdb}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"prometheus exited ({proc.returncode}): "
                                 + (tsdb.parent / "prometheus.log").read_text()[-2000:])
            try:
                if httpx.get(f"{base}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("prometheus did not become ready in 60 s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        print(f"prometheus stopped ({proc.returncode})", file=sys.stderr)


def wait_for_target(base: str, seconds: float = 60) -> None:
    """Until the API's target has been scraped successfully; its last error otherwise."""
    deadline = time.monotonic() + seconds
    error = "not scraped yet"
    while time.monotonic() < deadline:
        targets = httpx.get(f"{base}/api/v1/targets", timeout=10).json()["data"]
        for t in targets["activeTargets"]:
            if t["health"] == "up":
                return
            error = t.get("lastError") or error
        time.sleep(1)
    raise SystemExit(f"Prometheus cannot scrape the API: {error}")


class Traffic:
    """Requests to the API as a clinician would send them."""

    def __init__(self, api_url: str, key: str) -> None:
        self.client = httpx.Client(base_url=api_url, timeout=900,
                                   headers={"Authorization": f"Bearer {key}"})
        self.answer_ids: list[int] = []
        self.lock = threading.Lock()

    def ask(self, question: str) -> None:
        started = time.monotonic()
        r = self.client.post("/ask", json={"question": question})
        took = time.monotonic() - started
        if r.status_code == 200:
            body = r.json()
            with self.lock:
                self.answer_ids.append(body["answer_id"])
            print(f"  {took:6.1f} s  {body['status']:<19} {question}", file=sys.stderr)
        else:
            print(f"  {took:6.1f} s  HTTP {r.status_code:<14} {question}", file=sys.stderr)

    def browse(self) -> None:
        self.client.get("/health").raise_for_status()
        self.client.get("/documents").raise_for_status()

    def thumbs_down(self) -> None:
        if not self.answer_ids:
            return
        answer_id = self.answer_ids[0]
        r = self.client.post(f"/answers/{answer_id}/feedback",
                             json={"rating": "down", "reason": "incomplete"})
        print(f"  feedback on answer {answer_id}: HTTP {r.status_code}", file=sys.stderr)


def send_traffic(api_url: str, key: str, minutes: float, model_questions: int) -> None:
    """Lookups every 8 s for `minutes`, and beside them the model questions one after
    another (the embedded generator takes one at a time: two at once would queue the
    second, and past MEDCITE_ANSWER_QUEUE_WAIT_S shed it); the unanswerable question, a
    thumbs-down, and /health and /documents along the way."""
    traffic = Traffic(api_url, key)

    def ask_model() -> None:
        for question in MODEL_QUESTIONS[:model_questions]:
            traffic.ask(question)

    model = threading.Thread(target=ask_model, daemon=True)
    model.start()
    deadline = time.monotonic() + minutes * 60
    step = 0
    while time.monotonic() < deadline:
        traffic.ask(LOOKUPS[step % len(LOOKUPS)])
        if step % 3 == 0:
            traffic.browse()
        if step == 4:
            traffic.ask(UNANSWERABLE)
        if step == 6:
            traffic.thumbs_down()
        step += 1
        time.sleep(8)
    model.join()


def screenshot(url: str, graphs: list[Graph], out: Path, chromium: str, width: int) -> list[str]:
    """Open the graph page, head each graph with its Grafana panel, wait until every
    graph rendered, save a full-page PNG. Returns the graphs' error messages."""
    from playwright.sync_api import sync_playwright

    titles = [f"Grafana panel \u201c{g.title}\u201d, query {g.ref_id}" for g in graphs]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.add_init_script(
                "document.addEventListener('DOMContentLoaded', () => {"
                " const s = document.createElement('style');"
                f" s.textContent = {json.dumps(LAYOUT_CSS)};"
                " document.head.appendChild(s); });")
            page.goto(url, wait_until="networkidle", timeout=120_000)
            page.wait_for_function(
                """n => {
                  const ws = document.querySelectorAll('.graph_wrapper');
                  return ws.length === n && [...ws].every(w =>
                    w.querySelector('.eval_stats').textContent.length > 0 &&
                    (w.querySelector('.graph svg') ||
                     getComputedStyle(w.querySelector('.error')).display !== 'none'));
                }""", arg=len(graphs), timeout=120_000)
            errors: list[str] = page.evaluate(
                """titles => [...document.querySelectorAll('.graph_wrapper')].map((w, i) => {
                  const h = document.createElement('h5');
                  h.textContent = titles[i];
                  h.style.cssText = 'margin:18px 0 4px;font-weight:600';
                  w.prepend(h);
                  const t = w.querySelector('textarea');
                  t.style.height = (t.scrollHeight + 2) + 'px';
                  const e = w.querySelector('.error');
                  return getComputedStyle(e).display !== 'none' ? e.textContent : '';
                })""", titles)
            page.evaluate("window.scrollTo(0, 0)")  # the navbar is fixed: keep it on top
            time.sleep(1)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    return errors


def shrink(png: Path, max_bytes: int) -> None:
    """Quantize to a 256-colour palette when the PNG is over max_bytes (the graphs use a
    handful of colours; text antialiasing is what the palette approximates)."""
    if png.stat().st_size <= max_bytes:
        return
    from PIL import Image

    with Image.open(png) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", default="http://127.0.0.1:8000")
    parser.add_argument("--ask-key-file", type=Path, default=REPO_ROOT / "data/local.key",
                        help="a clinician key (default: the local key; MEDCITE_API_KEY wins)")
    parser.add_argument("--metrics-key-file", type=Path, required=True,
                        help="a key of role metrics, alone in the file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--minutes", type=float, default=9,
                        help="how long to send traffic")
    parser.add_argument("--model-questions", type=int, default=3,
                        choices=range(len(MODEL_QUESTIONS) + 1),
                        help="questions the generator must answer (the rest are lookups)")
    parser.add_argument("--range", default="10m", help="the graphs' time range")
    parser.add_argument("--width", type=int, default=1400, help="viewport width")
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument("--chromium", default=os.environ.get("MEDCITE_CHROMIUM")
                        or shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--max-kb", type=int, default=400)
    args = parser.parse_args(argv)

    key = os.environ.get("MEDCITE_API_KEY") or args.ask_key_file.read_text().strip()
    api = args.api_url.rstrip("/")
    httpx.get(f"{api}/health", timeout=10).raise_for_status()
    graphs = dashboard_graphs()

    with tempfile.TemporaryDirectory(prefix="medcite-prometheus-") as tmp:
        workdir = Path(tmp)
        key_file = workdir / "metrics.key"
        key_file.write_text(args.metrics_key_file.read_text().strip() + "\n")
        key_file.chmod(0o600)
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(api, key_file), sort_keys=False))
        promtool = shutil.which("promtool")
        if promtool:
            subprocess.run([promtool, "check", "config", str(config)], check=True,
                           stdout=subprocess.DEVNULL)
        with running_prometheus(args.prometheus, config, workdir / "tsdb", free_port()) as prom:
            wait_for_target(prom)
            print(f"Prometheus at {prom} scrapes {api}; traffic for {args.minutes} min",
                  file=sys.stderr)
            send_traffic(api, key, args.minutes, args.model_questions)
            time.sleep(15)  # the last answers' figures scraped (every 5 s) and evaluated
            url = graph_url(prom, graphs, args.range)
            errors = screenshot(url, graphs, args.out, args.chromium, args.width)
    shrink(args.out, args.max_kb * 1000)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1000} KB)", file=sys.stderr)
    bad = [(g.title, e) for g, e in zip(graphs, errors, strict=True) if e]
    for title, error in bad:
        print(f"panel {title!r}: {error}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
