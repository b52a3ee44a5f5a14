"""Query latency (p50/p95) and QPS of the product's retrieval at scale: dense, hybrid and
hybrid + rerank over synthetic chunks, on two engines, with brute-force numpy/scipy over
the same vectors as the baseline in the same run.

    .venv/bin/python -m bench.retrieval --sizes 10000 100000 --queries 40
    .venv/bin/python -m bench.retrieval --sizes 1000000 --engines qdrant --no-rerank

Engines (`--engines`): `edge` is the product's embedded default, `EdgeClient`
(retrieval/engines/edge.py: Qdrant's own engine in process through `qdrant-edge-py`,
HNSW, payload and sparse indexes; the engine a Qdrant server runs); `local` is
qdrant-client's local mode, `QdrantClient(path=...)` (MEDCITE_VECTOR_ENGINE=local: pure
Python, every query scans every point). Both are searched through `Retriever.search`
itself with the product's filters (access groups and the versions in force, 90% of the
documents here), reported next to brute force over the same vectors and filter (filters,
RRF fusion, dense re-scoring, de-duplication, reranking); only the question embedding is
precomputed, since it costs the same at any collection size (it is timed once,
separately, with the real model). Chunks are synthetic: random unit vectors and
Zipf-distributed words, which exercise the engines like real ones but say nothing about
quality (that is `medcite eval`'s job).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from qdrant_client import QdrantClient, models  # noqa: E402

from retrieval.engines.edge import (  # noqa: E402
    DEFAULT_HNSW_EF,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    EdgeClient,
)
from retrieval.rerank import CrossEncoderReranker  # noqa: E402
from retrieval.search import PREFETCH, Retriever  # noqa: E402
from retrieval.sparse import (  # noqa: E402
    AVG_DOC_TOKENS,
    K1,
    B,
    encode_document,
    encode_query,
    term_id,
    tokens,
)
from retrieval.store import DENSE, SPARSE, ensure_collection  # noqa: E402

DIM = 384
VOCAB = 30_000
DOC_TOKENS = 120
QUERY_TERMS = 6
LIMIT = 5
BATCH = 1000
FOLD = 1 << 20  # the baseline folds hashed term ids into 2^20 columns
DOC_CHUNKS = 20  # chunks per synthetic document (one version each)
RECALL_K = 10


def version_of(i: int) -> str:
    return f"v{i // DOC_CHUNKS}"


def in_force(n: int) -> list[str]:
    """The versions the product's filter lets through: all but every tenth document
    (superseded or retired), as the catalog's in-force set does."""
    return [version_of(i) for i in range(0, n, DOC_CHUNKS) if (i // DOC_CHUNKS) % 10 != 9]


class InForce:
    """The catalog's one call the search path makes, from the synthetic version set."""

    def __init__(self, n: int) -> None:
        self.versions = {v: {"number": 1} for v in in_force(n)}
        self.known = frozenset(version_of(i) for i in range(0, n, DOC_CHUNKS))

    def in_force_versions(self, collection: str, as_of: str | None = None) -> dict:
        return self.versions

    def known_versions(self, collection: str) -> frozenset[str]:
        return self.known


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Corpus:
    vectors: np.ndarray  # (n, DIM) float32, unit length
    words: np.ndarray  # (n, DOC_TOKENS) int32 word ids; word j is the token "w{j}"
    sparse: list[tuple[np.ndarray, np.ndarray]]  # per chunk: sorted term ids, weights

    def text(self, i: int) -> str:
        return " ".join(f"w{w}" for w in self.words[i])


def encode_documents(words: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """`encode_document` for many synthetic chunks at once: every chunk is DOC_TOKENS
    words of a fixed vocabulary, so each word's term id is computed once and BM25's
    saturated term frequency per chunk with numpy. Checked equal to `encode_document`
    on a sample before use (see `check_encoding`)."""
    term = np.array([term_id(t) for t in tokens(" ".join(f"w{j}" for j in range(VOCAB)))],
                    dtype=np.int64)
    norm = K1 * (1 - B + B * words.shape[1] / AVG_DOC_TOKENS)
    out = []
    for row in words:
        ids, tf = np.unique(term[row], return_counts=True)
        out.append((ids, (tf * (K1 + 1) / (tf + norm)).astype(np.float32)))
    return out


def check_encoding(corpus: Corpus, sample: int = 200) -> None:
    for i in range(min(sample, len(corpus.words))):
        ref = encode_document(corpus.text(i))
        ids, values = corpus.sparse[i]
        if ref.indices != ids.tolist() or not np.allclose(ref.values, values, rtol=1e-6):
            raise SystemExit(f"vectorised sparse encoding differs from encode_document at {i}")


def make_corpus(n: int, rng: np.random.Generator) -> Corpus:
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ranks = np.arange(1, VOCAB + 1)
    zipf = (1.0 / ranks) / (1.0 / ranks).sum()
    words = rng.choice(VOCAB, size=(n, DOC_TOKENS), p=zipf).astype(np.int32)
    corpus = Corpus(vectors, words, encode_documents(words))
    check_encoding(corpus)
    return corpus


def make_queries(
    corpus: Corpus, count: int, rng: np.random.Generator
) -> list[tuple[str, list[float]]]:
    """Each query: a few of one chunk's rarer words, and that chunk's vector plus noise."""
    out = []
    for i in rng.choice(len(corpus.words), size=count, replace=False):
        rare = sorted(set(corpus.words[i].tolist()), reverse=True)[:QUERY_TERMS]
        v = corpus.vectors[i] + 0.5 * rng.standard_normal(DIM, dtype=np.float32) / np.sqrt(DIM)
        out.append((" ".join(f"w{w}" for w in rare), (v / np.linalg.norm(v)).tolist()))
    return out


def points(corpus: Corpus, lo: int, hi: int) -> list[models.PointStruct]:
    out = []
    for i in range(lo, hi):
        ids, values = corpus.sparse[i]
        out.append(models.PointStruct(
            id=i,
            vector={DENSE: corpus.vectors[i].tolist(),
                    SPARSE: models.SparseVector(indices=ids.tolist(), values=values.tolist())},
            payload={"text": corpus.text(i)[:200], "doc_id": f"d{i // DOC_CHUNKS}",
                     "version_id": version_of(i),
                     "source_file": f"f{i // DOC_CHUNKS}.md", "doc_type": "guideline",
                     "access_groups": ["public"], "chunk_index": i % 20},
        ))
    return out


def load(client: QdrantClient, collection: str, corpus: Corpus, quantize: bool = False) -> float:
    ensure_collection(client, collection, DIM, quantize=quantize)
    started = time.perf_counter()
    for lo in range(0, len(corpus.words), BATCH):
        client.upsert(collection, points=points(corpus, lo, min(lo + BATCH, len(corpus.words))),
                      wait=True)
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
        from scipy.sparse import csc_matrix

        n = len(corpus.sparse)
        # The product's filter, applied exactly: chunks of versions not in force score -inf.
        self.allowed = np.array([(i // DOC_CHUNKS) % 10 != 9 for i in range(n)])
        self.vectors = corpus.vectors
        lengths = np.array([len(ids) for ids, _ in corpus.sparse])
        rows = np.repeat(np.arange(n, dtype=np.int32), lengths)
        cols = np.concatenate([ids for ids, _ in corpus.sparse]) % FOLD
        vals = np.concatenate([values for _, values in corpus.sparse])
        # Column-major: a query reads a handful of term columns.
        self.sparse = csc_matrix((vals, (rows, cols)), shape=(n, FOLD))
        df = np.bincount(cols, minlength=FOLD)
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)

    @staticmethod
    def _top(scores: np.ndarray, k: int) -> np.ndarray:
        k = min(k, len(scores))
        idx = np.argpartition(-scores, k - 1)[:k]
        return idx[np.argsort(-scores[idx])]

    def dense(self, q: list[float], k: int = LIMIT * 3) -> np.ndarray:
        scores = self.vectors @ np.asarray(q, dtype=np.float32)
        return self._top(np.where(self.allowed, scores, -np.inf), k)

    def lexical(self, text: str, k: int) -> np.ndarray:
        sv = encode_query(text)
        cols = [c % FOLD for c in sv.indices]
        scores = np.asarray(self.sparse[:, cols] @ self.idf[cols]).ravel()
        return self._top(np.where(self.allowed, scores, -np.inf), k)

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
    ratio = "—"
    if base:
        r = pct(ms, 50) / pct(base, 50)
        ratio = f"{r:.1f}×" if r >= 1 else f"{r:.2f}×"  # 1M rows run at a few hundredths
    return f"| {name} | {pct(ms, 50):.1f} | {pct(ms, 95):.1f} | {qps:.1f} | {ratio} |"


def dense_agreement(retriever: Retriever, brute: BruteForce,
                    queries: list[tuple[str, list[float]]]) -> tuple[float, float]:
    """The engine's filtered dense search against exact search (brute force, same
    filter): the share of queries whose top hit is the exact top hit, and recall@10, the
    share of the exact top 10 it returns."""
    top1 = found = 0
    for text, vector in queries:
        got = [int(p.id) for p in retriever.search(text, access_groups=["public"],
                                                   limit=RECALL_K, mode="dense")]
        exact = [int(i) for i in brute.dense(vector, RECALL_K)]
        top1 += bool(got) and got[0] == exact[0]
        found += len(set(got) & set(exact))
    return top1 / len(queries), found / (RECALL_K * len(queries))


def bench_engine(
    engine: str, n: int, corpus: Corpus, queries: list[tuple[str, list[float]]],
    args: argparse.Namespace, reranker: CrossEncoderReranker | None, workdir: Path,
    brute: BruteForce, base: dict[str, list[float]],
) -> tuple[list[str], list[str]]:
    path = (Path(args.keep) if args.keep else workdir) / f"{engine}-{n}"
    # A kept edge store is reopened, not reloaded: the corpus is generated from a seed
    # of its size, so the same points are there (53 minutes saved at 1M).
    edge_engine = engine.startswith("edge")
    reuse = bool(args.keep) and edge_engine and (path / ".loaded").exists()
    # Local mode is the product's on-disk folder unless told otherwise (it searches in
    # memory either way); the edge engine is always on disk (its data folder).
    on_disk = True if edge_engine else n <= args.disk_max
    client: object
    print(f"{n:,} {engine}: loading", file=sys.stderr, flush=True)
    rss_before = rss_mb()
    if edge_engine and reuse:
        started = time.perf_counter()
        client = EdgeClient(path)
        how = (f"edge engine (`EdgeClient`, qdrant-edge-py {version('qdrant-edge-py')}): "
               f"the store kept by an earlier run (`--keep`), reopened in "
               f"{time.perf_counter() - started:.1f} s")
    elif edge_engine:
        edge = EdgeClient(path)
        upsert_s = load(edge, "bench", corpus, quantize=engine == "edge-int8")
        started = time.perf_counter()
        edge.settle()  # HNSW and merges, as ingest does at the end of a run
        index_s = time.perf_counter() - started
        edge.close()
        started = time.perf_counter()
        if args.keep:
            (path / ".loaded").touch()
        client = EdgeClient(path)  # reopen: what a restarted API does
        open_s = time.perf_counter() - started
        how = (f"edge engine (`EdgeClient`, qdrant-edge-py {version('qdrant-edge-py')}, HNSW "
               f"m={HNSW_M} ef_construct={HNSW_EF_CONSTRUCT}, search ef {DEFAULT_HNSW_EF} "
               f"unless set): store time {1000 * upsert_s / n * 1000:,.0f} ms per 1k chunks "
               f"({n / upsert_s:,.0f} chunks/s), indexes built in {index_s:.0f} s "
               f"({1000 * index_s / n * 1000:,.0f} ms per 1k chunks), reopened in "
               f"{open_s:.1f} s")
    else:
        local = (QdrantClient(path=str(path)) if on_disk
                 else QdrantClient(location=":memory:"))
        upsert_s = load(local, "bench", corpus)
        how = (f"local mode (`QdrantClient(path=...)`, MEDCITE_VECTOR_ENGINE=local; "
               f"{'on disk' if on_disk else 'in memory'}): store time "
               f"{1000 * upsert_s / n * 1000:,.0f} ms per 1k chunks ({n / upsert_s:,.0f} "
               "chunks/s)")
        if on_disk:
            local.close()
            started = time.perf_counter()
            local = QdrantClient(path=str(path))  # reopen: what a restarted API does
            how += f", reopened in {time.perf_counter() - started:.1f} s"
        client = local
    try:
        if on_disk:
            disk_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
            how += f", {disk_mb:,.0f} MB on disk"
        print(f"{n:,} {engine}: loaded; querying", file=sys.stderr, flush=True)
        table = {text: vec for text, vec in queries}
        it = iter(queries * 10)

        def medcite(r: Retriever, mode: str) -> Callable[[], object]:
            return lambda: r.search(next(it)[0], access_groups=["public"], limit=LIMIT,
                                    mode=mode)  # type: ignore[arg-type]

        runs = args.queries
        name = engine
        lines = [f"- {name}: {how}.", ""]
        rows: list[str] = []
        # One built index, several search beams: the recall/latency trade of
        # MEDCITE_HNSW_EF without rebuilding (the embedded store searches exactly).
        for ef in args.hnsw_ef if edge_engine else [0]:
            beam = f"ef {ef}" if ef else f"ef {DEFAULT_HNSW_EF} (default)"
            label = f"{name}, {beam}" if edge_engine else name
            retriever = Retriever(client, "bench",  # type: ignore[arg-type]
                                  PrecomputedQueries(table), catalog=InForce(n),
                                  hnsw_ef=ef or None)
            top1, recall = dense_agreement(retriever, brute, queries)
            lines.insert(-1, f"- {label}: filtered dense search against exact search, "
                             f"{len(queries)} queries: same top hit {top1:.3f}, "
                             f"recall@{RECALL_K} {recall:.3f}.")
            rows += [
                row(f"medcite dense, {label}", timed(medcite(retriever, "dense"), runs),
                    base["dense"]),
                row(f"medcite sparse, {label}", timed(medcite(retriever, "sparse"), runs),
                    base["sparse"]),
                row(f"medcite hybrid, {label}", timed(medcite(retriever, "hybrid"), runs),
                    base["hybrid"]),
            ]
            if reranker is not None:
                reranked = dataclasses.replace(retriever, reranker=reranker,
                                               rerank_candidates=args.candidates)
                rows.append(row(f"medcite hybrid + cross-encoder ({args.candidates} "
                                f"candidates, CPU), {label}",
                                timed(medcite(reranked, "hybrid"), runs), base["hybrid"]))
        lines.insert(-1, f"- {name}: process resident memory {rss_mb():,.0f} MB after "
                         f"loading and querying (+{rss_mb() - rss_before:,.0f} MB over "
                         "before this engine was loaded).")
        return lines, rows
    finally:
        client.close()  # type: ignore[attr-defined]
        if not args.keep:
            shutil.rmtree(path, ignore_errors=True)


def bench_size(
    n: int, args: argparse.Namespace, reranker: CrossEncoderReranker | None, workdir: Path
) -> list[str]:
    rng = np.random.default_rng(n)
    started = time.perf_counter()
    corpus = make_corpus(n, rng)
    queries = make_queries(corpus, args.queries, rng)
    brute = BruteForce(corpus)
    gen_s = time.perf_counter() - started
    it = iter(queries * 10)
    runs = args.queries
    base = {"dense": timed(lambda: brute.dense(next(it)[1]), runs),
            "sparse": timed(lambda: brute.lexical(next(it)[0], LIMIT * 3), runs),
            "hybrid": timed(lambda: brute.hybrid(*next(it)), runs)}
    notes: list[str] = []
    rows = [row("brute-force numpy dense (baseline)", base["dense"], None),
            row("brute-force scipy sparse (baseline)", base["sparse"], None),
            row("brute-force numpy+scipy hybrid, RRF (baseline)", base["hybrid"], None)]
    for engine in args.engines:
        if engine == "local" and n > args.local_max:
            notes.append(f"- local: not run above {args.local_max:,} chunks "
                         "(`--local-max`; a Python scan of every point per query).")
            continue
        engine_notes, engine_rows = bench_engine(engine, n, corpus, queries, args, reranker,
                                                 workdir, brute, base)
        notes += engine_notes
        rows += engine_rows
    return [
        f"#### {n:,} chunks",
        "",
        f"Generated and encoded in {gen_s:.0f} s; {runs} queries per row, after one warm-up.",
        "",
        *notes,
        "| system | p50 ms | p95 ms | QPS | p50 vs brute force |",
        "|---|---:|---:|---:|---:|",
        *rows,
    ]


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
    ap.add_argument("--engines", nargs="+", choices=["edge", "edge-int8", "local"],
                    default=["edge", "local"],
                    help="edge: the embedded default (Qdrant's engine in process, "
                         "qdrant-edge-py); edge-int8: the same with int8 scalar "
                         "quantization of the dense vectors; local: qdrant-client's local "
                         "mode")
    ap.add_argument("--local-max", type=int, default=20_000,
                    help="skip local mode above this many chunks")
    ap.add_argument("--hnsw-ef", type=int, nargs="+", default=[0],
                    help="search-time HNSW ef values, as MEDCITE_HNSW_EF (0: Qdrant's "
                         "default), each timed on the same built index")
    ap.add_argument("--workdir", help="where the Qdrant folders go (default: a temp folder)")
    ap.add_argument("--keep", help="keep the edge stores in this folder, and reopen one "
                                   "that an earlier run kept there instead of loading it")
    args = ap.parse_args()

    from app.core.settings import Settings

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
        print(f"Machine: {os.cpu_count()} CPU cores, no GPU, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start. "
              "Query embedding (MiniLM, CPU): "
              f"p50 {pct(emb, 50):.1f} ms, p95 {pct(emb, 95):.1f} ms, not included below.\n")
        for n in args.sizes:
            print("\n".join(bench_size(n, args, reranker, Path(tmp))) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
