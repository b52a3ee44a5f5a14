"""The CPU generator's thread settings, idle and beside a competing CPU load, in one run.

llama.cpp decodes one token at a time, and its threads meet at a barrier after every
operation of every layer (hundreds per token). This build uses OpenMP, whose barrier
waits by spinning (libgomp: 300,000 rounds by default) before it sleeps: while another
process holds one of the two cores, the thread that arrives first spins through its time
slice waiting for the one that is not running, and decoding collapsed (seen: 21 -> 0.4
tokens/s beside an ingest). The product therefore decoded on one thread (half the speed
on an idle machine). `GOMP_SPINCOUNT` bounds the spin, so a waiting thread soon sleeps
and gives its core back; this bench measures whether two decoding threads with a short
spin keep the idle speed and degrade gracefully under load.

For each setting the packaged model is served by the product's `llama_cpp.server`
command (threads and environment as given), the product's own prompts are sent in the
same order (bench/draft_decoding.py's capture: answerable questions no lookup answers,
after retrieval, with the answer schema), streamed, and timed: time to first token
(prompt processing), decode tokens/s after it, and wall time. `--load N` runs N
single-threaded processes doing dense matrix products (what an ingest's embedding does)
beside the server for the loaded rows.

    MEDCITE_DATA_DIR=data .venv/bin/python -m bench.llm_threads --questions 4 \\
        --settings 1:2 2:2 2:2:10000 --load 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.draft_decoding import _p95, _post, _wait, capture  # noqa: E402

HOG = ("import numpy as np\n"
       "a = np.random.rand(384, 384).astype(np.float32)\n"
       "while True:\n"
       "    a = a @ a; a /= np.abs(a).max()\n")


@dataclass(frozen=True)
class Setting:
    threads: int
    batch_threads: int
    spincount: int | None  # GOMP_SPINCOUNT; None: libgomp's default

    @classmethod
    def parse(cls, text: str) -> Setting:
        parts = text.split(":")
        return cls(int(parts[0]), int(parts[1]), int(parts[2]) if len(parts) > 2 else None)

    def label(self) -> str:
        spin = "default spin" if self.spincount is None else f"spin {self.spincount}"
        return f"{self.threads} decode / {self.batch_threads} prompt threads, {spin}"


def _stream(url: str, body: dict[str, Any]) -> tuple[float, float, int, str]:
    """(seconds to first token, total seconds, streamed tokens, text)."""
    req = urllib.request.Request(url, data=json.dumps({**body, "stream": True}).encode(),
                                 headers={"Content-Type": "application/json"})
    t = time.perf_counter()
    first = 0.0
    tokens = 0
    text = []
    with urllib.request.urlopen(req, timeout=900) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            delta = json.loads(line[5:])["choices"][0].get("delta", {}).get("content")
            if delta:
                tokens += 1  # llama.cpp streams one token per chunk
                text.append(delta)
                if not first:
                    first = time.perf_counter() - t
    return first, time.perf_counter() - t, tokens, "".join(text)


def run(setting: Setting, load: int, prompts: list[tuple[str, list[dict[str, str]],
                                                       dict[str, Any], int]],
        port: int, env_extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
    from app.core.settings import Settings
    from app.llm.client import response_format
    from app.llm.local_server import PACKAGED_MODELS, ensure_gguf, server_command, stop_server

    settings = Settings()
    gguf = ensure_gguf(PACKAGED_MODELS[settings.local_llm], settings.models_dir)
    cmd = server_command(gguf, settings, port=port, alias="local", threads=setting.threads,
                         batch_threads=setting.batch_threads)
    env = {**os.environ, **(env_extra or {})}
    env.pop("GOMP_SPINCOUNT", None)
    if setting.spincount is not None:
        env["GOMP_SPINCOUNT"] = str(setting.spincount)
    url = f"http://127.0.0.1:{port}"
    hogs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait(url, proc)
            _post(url + "/v1/chat/completions", {"model": "local", "max_tokens": 1,
                                                 "messages": prompts[0][1][:1]})
            hog_env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                       "MKL_NUM_THREADS": "1"}
            hogs = [subprocess.Popen([sys.executable, "-c", HOG], env=hog_env)
                    for _ in range(load)]
            rows = []
            for qid, messages, schema, max_tokens in prompts:
                body = {"model": "local", "messages": messages, "temperature": 0.0,
                        "max_tokens": max_tokens,
                        "response_format": response_format("json_object", schema, "answer")}
                first, wall, tokens, text = _stream(url + "/v1/chat/completions", body)
                rows.append({"qid": qid, "first_s": first, "wall_s": wall, "tokens": tokens,
                             "decode_tps": (tokens - 1) / max(wall - first, 1e-6),
                             "text": text})
            return rows
        finally:
            for h in hogs:
                h.kill()
            stop_server(proc)


def print_table(what: str, results: dict[tuple[str, int], list[dict[str, Any]]],
                baseline: str) -> None:
    """One Markdown row per (name, competing load), against `baseline` at the same load."""
    print(f"| {what} | competing load | first token p50 s | decode tokens/s p50 | "
          "wall p50 / p95 s | wall p50 vs baseline | answers identical to baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (name, load), rows in results.items():
        base = results[(baseline, load)]
        walls = [r["wall_s"] for r in rows]
        same = sum(r["text"] == b["text"] for r, b in zip(rows, base, strict=True))
        ratio = statistics.median(walls) / statistics.median([b["wall_s"] for b in base])
        print(f"| {name} | {load} | "
              f"{statistics.median(r['first_s'] for r in rows):.1f} | "
              f"{statistics.median(r['decode_tps'] for r in rows):.1f} | "
              f"{statistics.median(walls):.1f} / {_p95(walls):.1f} | {ratio:.2f} | "
              f"{same}/{len(rows)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--settings", nargs="+", default=["1:2", "2:2", "2:2:10000"],
                        help="decode threads:prompt threads[:GOMP_SPINCOUNT]; the first is "
                             "the baseline")
    parser.add_argument("--load", type=int, nargs="+", default=[0, 1],
                        help="competing single-threaded CPU processes per row")
    parser.add_argument("--port", type=int, default=8092)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    prompts = capture(args.questions)
    settings = [Setting.parse(s) for s in args.settings]
    results: dict[tuple[Setting, int], list[dict[str, Any]]] = {}
    for load in args.load:
        for s in settings:
            results[(s, load)] = run(s, load, prompts, args.port)
    print(f"{len(prompts)} prompts (the product's own, after retrieval), "
          f"{statistics.mean(len(json.dumps(p[1])) for p in prompts):.0f} chars each on "
          f"average; machine: {os.cpu_count()} cores")
    print_table("setting", {(s.label(), load): rows for (s, load), rows in results.items()},
                settings[0].label())
    if args.json:
        args.json.write_text(json.dumps(
            {f"{s.threads}:{s.batch_threads}:{s.spincount} load {load}": rows
             for (s, load), rows in results.items()}, indent=1))


if __name__ == "__main__":
    main()
