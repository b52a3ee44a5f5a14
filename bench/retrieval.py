"""Query latency (p50/p95) and QPS of the product's retrieval at scale: dense, hybrid and
hybrid + rerank over synthetic chunks in the embedded Qdrant (on disk, in a temporary
folder), with brute-force numpy/scipy over the same vectors as the baseline in the same run.

    .venv/bin/python bench/retrieval.py --sizes 10000 100000 --queries 40

The search path is `Retriever.search` itself (filters, RRF fusion, dense re-scoring,
de-duplication, reranking); only the question embedding is precomputed, since it costs
the same at any collection size (it is timed once, separately, with the real model).
Chunks are synthetic: random unit vectors and Zipf-distributed words, which exercise the
engines like real ones but say nothing about quality (that is `medcite eval`'s job).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qdrant_client import QdrantClient, models  # noqa: E402

from retrieval.rerank import CrossEncoderReranker  # noqa: E402
from retrieval.search import PREFETCH, Retriever  # noqa: E402
from retrieval.sparse import encode_document, encode_query  # noqa: E402
from retrieval.store import DENSE, SPARSE, ensure_collection  # noqa: E402

DIM = 384
VOCAB = 30_000
DOC_TOKENS = 120
QUERY_TERMS = 6
LIMIT = 5
BATCH = 1000


@dataclass
class Corpus:
    vectors: np.ndarray  # (n, DIM) float32, unit length
    texts: list[str]


def make_corpus(n: int, rng: np.random.Generator) -> Corpus:
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ranks = np.arange(1, VOCAB + 1)
    zipf = (1.0 / ranks) / (1.0 / ranks).sum()
    words = rng.choice(VOCAB, size=(n, DOC_TOKENS), p=zipf)
    texts = [" ".join(f"w{w}" for w in row) for row in words]
    return Corpus(vectors, texts)


def make_queries(
    corpus: Corpus, count: int, rng: np.random.Generator
) -> list[tuple[str, list[float]]]:
    """Each query: a few of one chunk's rarer words, and that chunk's vector plus noise."""
    out = []
    for i in rng.choice(len(corpus.texts), size=count, replace=False):
        words = sorted(set(corpus.texts[i].split()), key=lambda w: -int(w[1:]))[:QUERY_TERMS]
        v = corpus.vectors[i] + 0.5 * rng.standard_normal(DIM, dtype=np.float32) / np.sqrt(DIM)
        out.append((" ".join(words), (v / np.linalg.norm(v)).tolist()))
    return out


def load(client: QdrantClient, collection: str, corpus: Corpus) -> float:
    ensure_collection(client, collection, DIM)
    started = time.perf_counter()
    for lo in range(0, len(corpus.texts), BATCH):
        points = []
        for i in range(lo, min(lo + BATCH, len(corpus.texts))):
            sv = encode_document(corpus.texts[i])
            points.append(models.PointStruct(
                id=i,
                vector={DENSE: corpus.vectors[i].tolist(),
                        SPARSE: models.SparseVector(indices=sv.indices, values=sv.values)},
                payload={"text": corpus.texts[i][:200], "doc_id": f"d{i // 20}",
                         "source_file": f"f{i // 20}.md", "doc_type": "guideline",
                         "access_groups": ["public"], "chunk_index": i % 20},
            ))
        client.upsert(collection, points=points, wait=True)
    return time.perf_counter() - started


class PrecomputedQueries:
    """The embedder's one method the search path calls, answered from a table: the model
    call is timed on its own, once, because it does not depend on collection size."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed_query(self, text: str) -> list[float]:
        return self.table[text]


# --- the baseline: brute force over the same vectors ----------------------------------


class BruteForce:
    def __init__(self, corpus: Corpus) -> None:
        from scipy.sparse import csr_matrix

        self.vectors = corpus.vectors
        rows, cols, vals = [], [], []
        for i, text in enumerate(corpus.texts):
            sv = encode_document(text)
            rows += [i] * len(sv.indices)
            cols += [c % (1 << 20) for c in sv.indices]  # hashed dims folded into 2^20
            vals += sv.values
        self.sparse = csr_matrix((vals, (rows, cols)), shape=(len(corpus.texts), 1 << 20))
        df = np.bincount(self.sparse.indices, minlength=1 << 20)
        n = len(corpus.texts)
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)

    @staticmethod
    def _top(scores: np.ndarray, k: int) -> np.ndarray:
        k = min(k, len(scores))
        idx = np.argpartition(-scores, k - 1)[:k]
        return idx[np.argsort(-scores[idx])]

    def dense(self, q: list[float], k: int = LIMIT * 3) -> np.ndarray:
        return self._top(self.vectors @ np.asarray(q, dtype=np.float32), k)

    def lexical(self, text: str, k: int) -> np.ndarray:
        sv = encode_query(text)
        cols = [c % (1 << 20) for c in sv.indices]
        scores = np.asarray(self.sparse[:, cols] @ self.idf[cols]).ravel()
        return self._top(scores, k)

    def hybrid(self, text: str, q: list[float]) -> list[int]:
        fused: dict[int, float] = {}
        for ranked in (self.dense(q, PREFETCH), self.lexical(text, PREFETCH)):
            for rank, i in enumerate(ranked):
                fused[int(i)] = fused.get(int(i), 0.0) + 1.0 / (rank + 2)
        return sorted(fused, key=lambda i: -fused[i])[: LIMIT * 3]


# --- timing -------------------------------------------------------------------------------


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up, not counted
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def row(name: str, ms: list[float], base: list[float] | None) -> str:
    qps = 1000.0 / statistics.mean(ms)
    ratio = f"{pct(ms, 50) / pct(base, 50):.1f}×" if base else "—"
    return f"| {name} | {pct(ms, 50):.1f} | {pct(ms, 95):.1f} | {qps:.1f} | {ratio} |"


def bench_size(
    n: int, args: argparse.Namespace, reranker: CrossEncoderReranker | None, workdir: Path
) -> list[str]:
    rng = np.random.default_rng(n)
    started = time.perf_counter()
    corpus = make_corpus(n, rng)
    queries = make_queries(corpus, args.queries, rng)
    gen_s = time.perf_counter() - started
    path = workdir / f"qdrant-{n}"
    on_disk = n <= args.disk_max
    client = QdrantClient(path=str(path)) if on_disk else QdrantClient(location=":memory:")
    try:
        print(f"{n:,}: loading ({'disk' if on_disk else 'memory'})", file=sys.stderr, flush=True)
        load_s = load(client, "bench", corpus)
        open_s, disk_mb = 0.0, 0.0
        if on_disk:
            client.close()
            started = time.perf_counter()
            client = QdrantClient(path=str(path))  # reopen: what a restarted API does
            open_s = time.perf_counter() - started
            disk_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
        print(f"{n:,}: loaded in {load_s:.0f} s; querying", file=sys.stderr, flush=True)
        table = {text: vec for text, vec in queries}
        retriever = Retriever(client, "bench", PrecomputedQueries(table))  # type: ignore[arg-type]
        reranked = Retriever(client, "bench", PrecomputedQueries(table),  # type: ignore[arg-type]
                             reranker=reranker, rerank_candidates=args.candidates)
        brute = BruteForce(corpus)
        it = iter(queries * 10)

        def nxt() -> tuple[str, list[float]]:
            return next(it)

        def medcite(r: Retriever, mode: str) -> Callable[[], object]:
            return lambda: r.search(nxt()[0], access_groups=["public"], limit=LIMIT,
                                    mode=mode)  # type: ignore[arg-type]

        runs = args.queries
        base_dense = timed(lambda: brute.dense(nxt()[1]), runs)
        base_hybrid = timed(lambda: brute.hybrid(*nxt()), runs)
        lines = [
            f"#### {n:,} chunks",
            "",
            f"Generated in {gen_s:.0f} s; loaded into the embedded Qdrant "
            f"({'on disk' if on_disk else 'in memory'}) in {load_s:.0f} s "
            f"({n / load_s:.0f} chunks/s)"
            + (f", reopened in {open_s:.1f} s, {disk_mb:.0f} MB on disk" if on_disk else "")
            + f". {runs} queries each, after one warm-up.",
            "",
            "| system | p50 ms | p95 ms | QPS | p50 vs brute force |",
            "|---|---:|---:|---:|---:|",
            row("brute-force numpy dense (baseline)", base_dense, None),
            row("brute-force numpy+scipy hybrid, RRF (baseline)", base_hybrid, None),
            row("medcite dense", timed(medcite(retriever, "dense"), runs), base_dense),
            row("medcite hybrid", timed(medcite(retriever, "hybrid"), runs), base_hybrid),
        ]
        if reranker is not None:
            lines.append(row(f"medcite hybrid + cross-encoder ({args.candidates} candidates)",
                             timed(medcite(reranked, "hybrid"), runs), base_hybrid))
        return lines
    finally:
        client.close()
        shutil.rmtree(path, ignore_errors=True)


def embedding_ms(model_path: str, runs: int) -> list[float]:
    from retrieval.embedder import Embedder

    embedder = Embedder(model_path, "cpu")
    questions = ["What is the recommended starting dose of atorvastatin?",
                 "Is apixaban preferred on the Ohio Medicaid formulary?"]
    it = iter(questions * runs)
    return timed(lambda: embedder.embed_query(next(it)), runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--candidates", type=int, default=20, help="reranked per query")
    ap.add_argument("--reranker-path", help="CrossEncoder folder (default: one built from "
                                            "the packaged MiniLM, same cost)")
    ap.add_argument("--no-rerank", action="store_true")
    ap.add_argument("--disk-max", type=int, default=10**9,
                    help="larger collections are loaded in memory (same search engine: the "
                         "embedded Qdrant searches in memory either way; only loading and "
                         "reopening differ)")
    ap.add_argument("--workdir", help="where the Qdrant folders go (default: a temp folder)")
    args = ap.parse_args()

    from app.settings import Settings

    model_path = Settings().embedding_model
    reranker = None
    with tempfile.TemporaryDirectory(prefix="medcite-bench-", dir=args.workdir) as tmp:
        if not args.no_rerank:
            path = args.reranker_path
            if path is None:
                from sentence_transformers import CrossEncoder

                path = str(Path(tmp) / "cross-encoder")
                CrossEncoder(model_path, num_labels=1, device="cpu").save(path)
            reranker = CrossEncoderReranker(path)
        emb = embedding_ms(model_path, args.queries)
        print(f"Machine: {os.cpu_count()} CPU cores, no GPU. Query embedding (MiniLM, CPU): "
              f"p50 {pct(emb, 50):.1f} ms, p95 {pct(emb, 95):.1f} ms, not included below.\n")
        for n in args.sizes:
            print("\n".join(bench_size(n, args, reranker, Path(tmp))) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
