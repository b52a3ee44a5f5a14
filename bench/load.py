"""Load test of `/ask`: a real API process under 1, 8, 32 and 64 concurrent clients.

Everything is real and on this machine: a corpus ingested into an embedded Qdrant in a
temporary folder, llama.cpp serving a packaged Qwen2.5 GGUF (default the 0.5B one),
`medcite serve` as its own process on 127.0.0.1, and a bounded load generator (a fixed
number of requests per level, each sent once, `--levels` clients at a time).

Per level it prints throughput, latency p50/p95/p99 of answered requests, the error rate
(anything but a 200 or a shed 503 with Retry-After) and how many were shed; then the
time of one answer by stage (retrieval, queue, generation, verification and any other
stage the API reports) and verification's share of it; then the baseline measured in the
same run: the bare generator called with exactly the prompts the API built (no
retrieval, no admission, no verification), as a ratio; and the peak RSS of the API and
generator processes.

    .venv/bin/python -m bench.load                       # minutes on a 2-core CPU
    .venv/bin/python -m bench.load --levels 1,8,32,64,128 --requests 128 --corpus all
    .venv/bin/python -m bench.load --llm-url http://gpu-host:8000/v1 --llm-model medgemma \
        --in-flight 32                                   # a GPU server's vLLM
    .venv/bin/python -m bench.load --questions lookup --corpus all --levels 1,16 \
        --requests 64 --baseline 0                       # the API's own work, 16 clients
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

import httpx  # noqa: E402

from app.answering.prompting import build_messages  # noqa: E402
from app.core.settings import REPO_ROOT, Settings  # noqa: E402
from app.llm import local_server as local_llm  # noqa: E402
from app.llm.client import ChatGenerator, GeneratorUnavailable  # noqa: E402
from app.security.api_keys import KeyStore, Role  # noqa: E402
from retrieval.models import Passage  # noqa: E402

# One file of each kind the questions need (the test suite's small corpus, less the PDF
# whose ingest alone takes minutes here). `--corpus all` ingests corpora/ instead.
SMALL_CORPUS = {
    "drug-labels/fda-spl/lipitor-orig.xml": ("label", None),
    "guidelines/ngc/ngc-10403.xml": ("guideline", None),
    "formularies/ohio-medicaid-updl/current-2024/lipotropics.md": ("formulary", "Ohio Medicaid"),
    "coverage/cms-ncd/LipidTesting.md": ("coverage", "Medicare"),
}
# A clinician's mix: most need the generator, one is refused before it (no source
# mentions the drug), as real traffic has questions the knowledge base can't answer.
QUESTIONS = [
    "What is the recommended starting dose of atorvastatin?",
    "Is rosuvastatin a preferred drug on the Ohio Medicaid formulary?",
    "When does Medicare cover lipid testing?",
    "What is the maximum daily dose of Lipitor for pediatric patients?",
    "What is the loading dose of amiodarone for atrial fibrillation?",
]
# Formulary status questions the API answers from the formulary's records
# (app/answering/record_answer.py) with no generation: under load they time what is the
# API's own work (authentication, retrieval on the embedded store, verification, the
# audit append), which the generator's minutes hide in the mix above.
LOOKUP_QUESTIONS = [
    "Is rosuvastatin a preferred drug on the Ohio Medicaid formulary?",
    "Is Repatha preferred on Ohio Medicaid?",
    "Does Livalo need prior authorization on Ohio Medicaid?",
    "Is ezetimibe preferred on the Ohio Medicaid formulary?",
    "What is the formulary status of Vascepa on Ohio Medicaid?",
]


@dataclass
class Result:
    status: int
    latency_s: float
    retry_after: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def shed(self) -> bool:
        return self.status in (429, 503) and self.retry_after is not None

    @property
    def ok(self) -> bool:
        return self.status == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM: the process's peak resident set size so far (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def write_corpus(root: Path, kind: str) -> Path:
    if kind == "all":
        return REPO_ROOT / "corpora"
    lines = []
    for rel, (doc_type, payer) in SMALL_CORPUS.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / "corpora" / rel, dest)
        lines += ["[[sources]]", f'glob = "{rel}"', f'doc_type = "{doc_type}"',
                  'access_groups = ["public"]']
        if payer:
            lines.append(f'payer = "{payer}"')
        lines.append("")
    (root / "manifest.toml").write_text("\n".join(lines))
    return root


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def run_level(url: str, key: str, clients: int, requests: int,
                    timeout_s: float, questions: list[str] = QUESTIONS,
                    health: list[float] | None = None) -> tuple[list[Result], float]:
    """`requests` asks, at most `clients` at a time; each is sent once, never retried.
    With `health`, `/health` is also polled every 0.25 s meanwhile and its latencies
    appended (a load balancer's check must not wait behind the searches)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(questions[i % len(questions)])
    results: list[Result] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        async def client() -> None:
            while not queue.empty():
                question = queue.get_nowait()
                t = time.perf_counter()
                try:
                    r = await http.post("/ask", json={"question": question})
                    body = r.json() if r.headers.get("content-type", "").startswith(
                        "application/json") else {}
                    results.append(Result(r.status_code, time.perf_counter() - t,
                                          r.headers.get("retry-after"), body))
                except httpx.HTTPError as exc:
                    results.append(Result(0, time.perf_counter() - t,
                                          error=type(exc).__name__))

        async def poll_health(done: asyncio.Event) -> None:
            async with httpx.AsyncClient(base_url=url, timeout=timeout_s) as check:
                while not done.is_set():
                    t = time.perf_counter()
                    await check.get("/health")
                    assert health is not None
                    health.append(time.perf_counter() - t)
                    await asyncio.sleep(0.25)

        done = asyncio.Event()
        poller = asyncio.create_task(poll_health(done)) if health is not None else None
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - started
        done.set()
        if poller is not None:
            await poller
        return results, wall


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the API exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"the API did not start within {timeout_s:.0f} s; see {log}")


def fmt_ms(v: float) -> str:
    return "-" if v != v else f"{v * 1000:,.0f}"  # NaN: nothing answered


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--levels", default="1,8,32,64", help="concurrent clients per level")
    p.add_argument("--requests", type=int, default=0,
                   help="requests per level (default: the level, at least --min-requests)")
    p.add_argument("--min-requests", type=int, default=3)
    p.add_argument("--baseline", type=int, default=2,
                   help="bare generator calls for the baseline (prompts from 1 client)")
    p.add_argument("--corpus", choices=["small", "all"], default="small")
    p.add_argument("--model", default="qwen2.5-coder-0.5b",
                   help="packaged llama.cpp model (ignored with --llm-url)")
    p.add_argument("--llm-url", default=None, help="an OpenAI-compatible endpoint instead")
    p.add_argument("--llm-model", default="local")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--context-chars", type=int, default=5000, help="MEDCITE_CONTEXT_CHARS")
    p.add_argument("--llm-threads", type=int, default=0,
                   help="llama.cpp threads (0: all CPUs; 1 does better on a busy machine)")
    p.add_argument("--in-flight", type=int, default=1, help="MEDCITE_MAX_CONCURRENT_ANSWERS")
    p.add_argument("--queue", type=int, default=64, help="MEDCITE_ANSWER_QUEUE")
    p.add_argument("--queue-wait", type=float, default=30.0, help="MEDCITE_ANSWER_QUEUE_WAIT_S")
    p.add_argument("--llm-timeout", type=float, default=120.0, help="LLM_TIMEOUT_S")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--questions", choices=["mixed", "lookup"], default="mixed",
                   help="lookup: formulary status questions answered from records, no "
                        "generation (the API's own work under load)")
    args = p.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="medcite-load-"))
    data = tmp / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEDCITE_", "LLM_", "QDRANT_", "DATABASE_URL"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DO_NOT_TRACK="1",
               PYTHONPATH=str(REPO_ROOT), MEDCITE_DATA_DIR=str(data),
               MEDCITE_MODELS_DIR=str(REPO_ROOT / "data" / "models"))
    settings = Settings(MEDCITE_DATA_DIR=data, MEDCITE_MODELS_DIR=REPO_ROOT / "data" / "models",
                        MEDCITE_LOCAL_LLM=args.model, MEDCITE_LOCAL_LLM_PORT=free_port(),
                        MEDCITE_LOCAL_LLM_THREADS=args.llm_threads,
                        LLM_MAX_TOKENS=args.max_tokens, LLM_TIMEOUT_S=args.llm_timeout,
                        MEDCITE_CONTEXT_CHARS=args.context_chars)
    llm_proc: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    try:
        t = time.perf_counter()
        corpus = write_corpus(tmp / "corpus", args.corpus)
        subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(corpus), "--quiet"],
                       cwd=tmp, env=env, check=True)
        ingest_s = time.perf_counter() - t

        if args.llm_url:
            llm_url, mode = args.llm_url, "json_schema"
        else:
            llm_proc = local_llm.start_server(settings)
            llm_url, mode = local_llm.server_url(settings), "json_object"
        generator = ChatGenerator(base_url=llm_url, model=args.llm_model, api_key="not-needed",
                                  timeout_s=args.llm_timeout, max_tokens=args.max_tokens,
                                  structured_mode=mode)

        key = KeyStore(settings.keys_file).create("load-test", Role.clinician, ["public"])[0]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp / "api.log"
        api_env = {**env, "LLM_BASE_URL": llm_url, "LLM_MODEL": args.llm_model,
                   "LLM_STRUCTURED_OUTPUT": mode, "LLM_MAX_TOKENS": str(args.max_tokens),
                   "LLM_TIMEOUT_S": str(args.llm_timeout),
                   "MEDCITE_CONTEXT_CHARS": str(args.context_chars),
                   # One key sends everything: the per-key limit would measure itself.
                   "MEDCITE_RATE_LIMIT_PER_MINUTE": "0",
                   "MEDCITE_MAX_CONCURRENT_ANSWERS": str(args.in_flight),
                   "MEDCITE_ANSWER_QUEUE": str(args.queue),
                   "MEDCITE_ANSWER_QUEUE_WAIT_S": str(args.queue_wait)}
        with log.open("ab") as out:
            api = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--host",
                                    "127.0.0.1", "--port", str(port)],
                                   cwd=tmp, env=api_env, stdout=out, stderr=subprocess.STDOUT)
        wait_healthy(url, api, log, timeout_s=300)
        passages = httpx.get(f"{url}/health", timeout=10).json()["passages"]

        client_timeout = args.llm_timeout * 2 + args.queue_wait + 60
        load_start = os.getloadavg()[0]
        rows = []
        answered: list[Result] = []
        questions = LOOKUP_QUESTIONS if args.questions == "lookup" else QUESTIONS
        health: dict[int, list[float]] = {}
        for level in levels:
            n = args.requests or max(level, args.min_requests)
            health[level] = []
            results, wall = asyncio.run(run_level(url, key, level, n, client_timeout,
                                                  questions, health[level]))
            rows.append((level, n, wall, results))
            answered += [r for r in results if r.ok]

        # The baseline, same run: the bare generator on the exact prompts /ask built at one
        # client (same passages, same budget), one call each, no retries.
        first_level = rows[0][3]
        bare: list[tuple[float, float]] = []  # (/ask latency, bare generation latency)
        for r in first_level:
            if len(bare) >= args.baseline:
                break
            if not r.ok or "generation" not in r.body.get("timings_ms", {}):
                continue
            ctx = [Passage.model_validate(x) for x in r.body["passages"]]
            messages = build_messages(r.body["question"], ctx, settings.context_chars)
            t = time.perf_counter()
            try:
                generator.raw_completion(messages)
            except GeneratorUnavailable as exc:
                # A baseline past the timeout must not lose the table measured above.
                print(f"baseline call failed ({exc}); not counted", file=sys.stderr)
                continue
            bare.append((r.latency_s, time.perf_counter() - t))
        load_end = os.getloadavg()[0]
        api_rss = peak_rss_mib(api.pid)
        llm_rss = peak_rss_mib(llm_proc.pid) if llm_proc else None
    finally:
        if api is not None and api.poll() is None:
            api.send_signal(signal.SIGTERM)
            try:
                api.wait(timeout=30)
            except subprocess.TimeoutExpired:
                api.kill()
        local_llm.stop_server(llm_proc)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    raw = Path(tempfile.gettempdir()) / "medcite-load-last.json"
    raw.write_text(json.dumps({"rows": [(lv, n, wall, [r.__dict__ for r in res])
                                        for lv, n, wall, res in rows],
                               "bare": bare}, default=str))
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = os.cpu_count() or 2
    threads_told = (f"{args.llm_threads}" if args.llm_threads else
                    f"{max(1, cores - 1)} decoding / {cores} prompt (the product's default)")
    engine = "server" if settings.qdrant_url else settings.vector_engine
    print(f"date {time.strftime('%Y-%m-%d %H:%M')}; machine {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {memory_gib:.0f} GiB; generator "
          f"{args.llm_url or args.model} (max_tokens {args.max_tokens}, context "
          f"{args.context_chars} chars); corpus "
          f"{args.corpus}: {passages} passages, ingest "
          f"{ingest_s:.0f} s; gate: {args.in_flight} in flight, queue {args.queue}, wait "
          f"{args.queue_wait:g} s; LLM_TIMEOUT_S {args.llm_timeout:g}; llama.cpp threads "
          f"{threads_told}; engine {engine}; "
          f"load average (1 min, every process on the "
          f"machine) {load_start:.1f} as the levels began, {load_end:.1f} at the end")
    print()
    print(f"questions: {args.questions}")
    print("| clients | requests | wall s | answered/s | p50 ms | p95 ms | p99 ms | errors "
          "| error rate | shed (503+Retry-After) | abstained | generated | p50 vs 1 client "
          "| /health p95 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    first_p50 = percentile([r.latency_s for r in rows[0][3] if r.ok], .5) if rows else 0.0
    for level, n, wall, results in rows:
        ok = [r.latency_s for r in results if r.ok]
        errors = [r for r in results if not r.ok and not r.shed]
        shed = sum(r.shed for r in results)
        abstained = sum(bool(r.body.get("abstained")) for r in results if r.ok)
        generated_n = sum("generation" in r.body.get("timings_ms", {}) for r in results if r.ok)
        ratio = percentile(ok, .5) / first_p50 if ok and first_p50 else float("nan")
        print(f"| {level} | {n} | {wall:.1f} | {len(ok) / wall:.3f} | {fmt_ms(percentile(ok, .5))}"
              f" | {fmt_ms(percentile(ok, .95))} | {fmt_ms(percentile(ok, .99))} "
              f"| {len(errors)} | {len(errors) / n:.1%} | {shed} | {abstained} | {generated_n} "
              f"| {ratio:.2f}x | {fmt_ms(percentile(health[level], .95))} |")
    kinds = Counter(f"{r.status} {r.error or ''}".strip()
                    for *_, results in rows for r in results if not r.ok and not r.shed)
    if kinds:
        print(f"errors by kind: {dict(kinds)}")

    generated = [r.body["timings_ms"] for r in answered
                 if "generation" in r.body.get("timings_ms", {})]
    stages = sorted({k for tm in generated for k in tm},
                    key=lambda k: ["retrieval", "rerank", "queue", "generation",
                                   "verification"].index(k)
                    if k in ("retrieval", "rerank", "queue", "generation", "verification")
                    else 99)
    print()
    print(f"One generated answer by stage (median over {len(generated)} answers, all levels; "
          "ms):")
    print("| " + " | ".join(stages) + " | total |")
    print("|" + "---:|" * (len(stages) + 1))
    med = statistics.median
    if generated:
        totals = [sum(tm.values()) for tm in generated]
        print("| " + " | ".join(f"{med(tm.get(s, 0.0) for tm in generated):,.1f}"
                                for s in stages) + f" | {med(totals):,.1f} |")
        shares = [tm.get("verification", 0.0) / (sum(tm.values()) - tm.get("queue", 0.0))
                  for tm in generated if sum(tm.values()) - tm.get("queue", 0.0) > 0]
        print(f"verification overhead: median {med(shares):.2%} of answer time "
              f"(max {max(shares):.2%}); no rerank stage unless listed above (hybrid "
              "fusion is RRF inside Qdrant's query, part of retrieval)")
    print()
    if bare:
        ask_med, bare_med = med(b[0] for b in bare), med(b[1] for b in bare)
        print(f"baseline (same run, 1 client): bare generator on the same prompts median "
              f"{bare_med * 1000:,.0f} ms vs /ask median {ask_med * 1000:,.0f} ms: /ask / bare "
              f"= {ask_med / bare_med:.2f}x over {len(bare)} prompts; bare throughput "
              f"{1 / bare_med:.3f}/s")
    else:
        print("baseline: no generated answer at 1 client to compare with")
    print(f"peak RSS: API process {api_rss or float('nan'):,.0f} MiB"
          + (f"; llama.cpp server {llm_rss:,.0f} MiB" if llm_rss else ""))


if __name__ == "__main__":
    main()
