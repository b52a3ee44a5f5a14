"""Recall@10 of the edge engine's dense search on real embeddings (issue #17).

Copies an ingested store (local-mode or edge folder; the source is never modified) to a
temporary folder, opens the copy with the edge engine (a local-mode folder migrates),
embeds real questions with the product's default embedder, and compares each query's
top-10 dense ids at the engine's default beam with exact search
(`SearchParams(exact=True)`), itself checked against brute-force numpy over the stored
vectors. Unfiltered and with the access-group filter every `/ask` carries.

Recall is also given tie-aware: repackaged labels repeat passages word for word, so
identical vectors tie at rank 10 and either one is a true top-10 hit.

With `--forced-ef`, the same vectors are loaded into a second collection whose HNSW
graph is always used (full-scan threshold 1 KB; a small store would otherwise be searched
exactly) and measured at each beam given.

    .venv/bin/python -m bench.edge_recall --store data/qdrant --forced-ef 64 128 256
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from qdrant_client import models

from app.core.settings import REPO_ROOT, Settings
from retrieval.embedder import Embedder
from retrieval.engines.edge import DEFAULT_HNSW_EF, HNSW_EF_CONSTRUCT, HNSW_M
from retrieval.store import DENSE, QUANTIZATION, match_any, open_client

PUBLIC = models.Filter(must=[match_any("access_groups", ["public"])])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=REPO_ROOT / "data" / "qdrant")
    ap.add_argument("--collection", default="medcite_passages")
    ap.add_argument("--questions", type=Path,
                    default=REPO_ROOT / "eval" / "corpora_questions.jsonl")
    ap.add_argument("-n", type=int, default=50, help="questions, spread over the file")
    ap.add_argument("--forced-ef", type=int, nargs="*", default=[])
    ap.add_argument("--quantize", action="store_true",
                    help="the forced-HNSW copy also keeps int8 copies of the vectors "
                         "(retrieval/store.py QUANTIZATION), searched first and rescored")
    ap.add_argument("--oversampling", type=float,
                    help="with --quantize: candidates taken from the int8 search per "
                         "result, rescored with the original vectors")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="edge-recall-") as tmp:
        path = Path(tmp) / "qdrant"
        shutil.copytree(args.store, path, ignore=shutil.ignore_patterns(".lock"))
        where = SimpleNamespace(qdrant_url=None, qdrant_api_key=None,
                                resolved_qdrant_path=path, vector_engine="edge")
        started = time.perf_counter()
        client = open_client(where)
        try:
            print(f"opened (migrating if local mode) in {time.perf_counter() - started:.1f} s")
            run(client, args)
        finally:
            client.close()


def run(client: Any, args: argparse.Namespace) -> None:
    name = args.collection
    info = client.get_collection(name)
    print(f"{info.points_count} points, {info.segments_count} segments; HNSW m={HNSW_M} "
          f"ef_construct={HNSW_EF_CONSTRUCT}, default search ef {DEFAULT_HNSW_EF}")
    ids: list[Any] = []
    vectors: list[list[float]] = []
    groups: list[list[str]] = []
    offset = None
    while True:
        records, offset = client.scroll(name, limit=2048, offset=offset,
                                        with_payload=["access_groups"], with_vectors=[DENSE])
        for r in records:
            ids.append(r.id)
            vectors.append(r.vector[DENSE])
            groups.append((r.payload or {}).get("access_groups") or [])
        if offset is None:
            break
    matrix = np.asarray(vectors, dtype=np.float32)
    public = np.array(["public" in g for g in groups])
    lines = args.questions.read_text().splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    stride = max(1, len(questions) // args.n)
    questions = questions[::stride][: args.n]
    settings = Settings()
    embedder = Embedder(settings.embedding_model, "cpu", settings.embedding_batch_size)
    queries = embedder.embed(questions)
    print(f"{len(questions)} questions from {args.questions.name}, "
          f"model {embedder.name} ({matrix.shape[1]}-d)")
    state = (ids, {pid: k for k, pid in enumerate(ids)}, matrix, public, queries,
             args.oversampling)
    measure(client, name, None, "store as opened, default beam", state)
    for ef in args.forced_ef:
        forced = f"{name}_forced_hnsw"
        if ef == args.forced_ef[0]:
            build_forced(client, forced, ids, matrix, groups, args.quantize)
        measure(client, forced, ef, "HNSW graph always used"
                + (", int8 quantized" if args.quantize else ""), state)
    if args.forced_ef:
        client.delete_collection(f"{name}_forced_hnsw")


def build_forced(client: Any, name: str, ids: list[Any], matrix: np.ndarray,
                 groups: list[list[str]], quantize: bool = False) -> None:
    client.create_collection(
        name, vectors_config={DENSE: models.VectorParams(size=matrix.shape[1],
                                                         distance=models.Distance.COSINE)},
        hnsw_config=models.HnswConfigDiff(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT,
                                          full_scan_threshold=1),
        quantization_config=QUANTIZATION if quantize else None)
    client.create_payload_index(name, "access_groups", models.PayloadSchemaType.KEYWORD)
    for start in range(0, len(ids), 1024):
        client.upsert(name, points=[
            models.PointStruct(id=ids[j], vector={DENSE: matrix[j].tolist()},
                               payload={"access_groups": groups[j]})
            for j in range(start, min(start + 1024, len(ids)))])
    started = time.perf_counter()
    client.optimize(name)
    print(f"forced-HNSW copy built in {time.perf_counter() - started:.1f} s")


def _top(client: Any, name: str, query: np.ndarray, params: models.SearchParams | None,
         flt: models.Filter | None) -> list[Any]:
    return [p.id for p in client.query_points(
        name, query=query.tolist(), using=DENSE, limit=10, query_filter=flt,
        search_params=params, with_payload=False).points]


def measure(client: Any, name: str, ef: int | None, label: str, state: tuple) -> None:
    ids, position, matrix, public, queries, oversampling = state
    quant = models.QuantizationSearchParams(rescore=True, oversampling=oversampling) \
        if oversampling else None
    for filter_name, flt in (("none", None), ("access_groups=public", PUBLIC)):
        strict, tied, agree, latency = [], [], [], []
        for query in queries:
            exact = _top(client, name, query, models.SearchParams(exact=True), flt)
            started = time.perf_counter()
            got = _top(client, name, query,
                       models.SearchParams(hnsw_ef=ef, quantization=quant) if ef else None,
                       flt)
            latency.append((time.perf_counter() - started) * 1000)
            scores = matrix @ query
            if flt is not None:
                scores = np.where(public, scores, -np.inf)
            tenth = np.sort(scores)[-10]
            brute = [ids[i] for i in np.argsort(-scores)[:10]]
            strict.append(len(set(got) & set(exact)) / 10)
            tied.append(sum(scores[position[g]] >= tenth - 1e-5 for g in got) / 10)
            agree.append(len(set(brute) & set(exact)) / 10)
        over = f", oversampling {oversampling}" if ef and oversampling else ""
        print(f"{label}, ef {ef or DEFAULT_HNSW_EF}{over}, filter {filter_name}: "
              f"recall@10 {np.mean(strict):.3f} (min {min(strict):.1f}), tie-aware "
              f"{np.mean(tied):.3f}; dense p50 {np.percentile(latency, 50):.2f} ms, "
              f"p95 {np.percentile(latency, 95):.2f} ms; exact vs numpy {np.mean(agree):.3f}",
              flush=True)


if __name__ == "__main__":
    main()
