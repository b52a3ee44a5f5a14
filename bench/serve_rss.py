"""What a serving process holds with a big store: resident memory and search latency of a
process that only opens a store kept by `bench/retrieval.py --keep` and searches it.

`bench/retrieval.py` measures memory in the process that generated the synthetic corpus
and the brute-force baselines' matrices (several GB at 1M chunks), so its figure is not
what the API holds. Here a child process generates the same queries (same seed) and
hands them over; this process imports the product, opens the store and times the
product's search (dense, sparse, hybrid) with those queries, then reports its RSS.

    .venv/bin/python -m bench.serve_rss --size 1000000 --store /tmp/bk/edge-int8-1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _write_queries(size: int, count: int, out: Path) -> None:
    from bench.retrieval import make_corpus, make_queries

    rng = np.random.default_rng(size)
    corpus = make_corpus(size, rng)
    out.write_text(json.dumps(make_queries(corpus, count, rng)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, required=True, help="chunks in the kept store")
    ap.add_argument("--store", type=Path, required=True, help="a folder --keep left")
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--write-queries", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_queries:
        _write_queries(args.size, args.queries, args.write_queries)
        return
    with tempfile.TemporaryDirectory() as tmp:
        qfile = Path(tmp) / "queries.json"
        subprocess.run([sys.executable, "-m", "bench.serve_rss", "--size", str(args.size),
                        "--store", str(args.store), "--queries", str(args.queries),
                        "--write-queries", str(qfile)], check=True)
        queries = [(t, v) for t, v in json.loads(qfile.read_text())]

    from bench.retrieval import LIMIT, InForce, PrecomputedQueries
    from retrieval.engines.edge import EdgeClient
    from retrieval.search import Retriever

    before = _rss_mb()
    client = EdgeClient(args.store)
    try:
        retriever = Retriever(client, "bench",  # type: ignore[arg-type]
                              PrecomputedQueries(dict(queries)), catalog=InForce(args.size))
        print(f"{args.size:,} chunks, {args.store}; {len(queries)} queries, each twice, "
              "after five warm-up searches")
        print("| search | p50 ms | p95 ms |")
        print("|---|---:|---:|")
        for mode in ("dense", "sparse", "hybrid"):
            for text, _ in queries[:5]:
                retriever.search(text, access_groups=["public"], limit=LIMIT, mode=mode)  # type: ignore[arg-type]
            ms = []
            for _ in range(2):
                for text, _ in queries:
                    started = time.perf_counter()
                    retriever.search(text, access_groups=["public"], limit=LIMIT, mode=mode)  # type: ignore[arg-type]
                    ms.append((time.perf_counter() - started) * 1000)
            print(f"| {mode} | {np.percentile(ms, 50):.1f} | {np.percentile(ms, 95):.1f} |")
        print(f"\nresident memory {_rss_mb():,.0f} MB in all (+{_rss_mb() - before:,.0f} MB "
              f"for the open store and its searches; {before:,.0f} MB after imports)")
    finally:
        client.close()


if __name__ == "__main__":
    main()
