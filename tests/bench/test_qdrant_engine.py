"""The benchmark's stand-in for a Qdrant server (bench/qdrant_engine.py: Qdrant's Rust
engine in process) must answer `Retriever.search` like the product's own store, or its
latency figures would measure a different search."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from retrieval.search import Retriever, build_filter
from retrieval.sparse import encode_document, encode_query
from retrieval.store import DENSE, SPARSE, ensure_collection

pytest.importorskip("qdrant_edge", reason="the `eval` extra installs qdrant-edge-py")
BENCH = Path(__file__).resolve().parents[2] / "bench" / "qdrant_engine.py"
spec = importlib.util.spec_from_file_location("qdrant_engine", BENCH)
assert spec and spec.loader
engine = importlib.util.module_from_spec(spec)
sys.modules["qdrant_engine"] = engine
spec.loader.exec_module(engine)

DIM = 32
WORDS = [f"term{j}" for j in range(400)]


def tie_groups(points: list[models.ScoredPoint]) -> list[tuple[float, set[str]]]:
    groups: list[tuple[float, set[str]]] = []
    for p in points:
        if groups and abs(groups[-1][0] - p.score) < 1e-5:
            groups[-1][1].add(str(p.id))
        else:
            groups.append((p.score, {str(p.id)}))
    return [(round(score, 4), ids) for score, ids in groups]


class Table:
    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed_query(self, text: str) -> list[float]:
        return self.table[text]


def test_rust_engine_answers_retriever_search_like_the_embedded_store(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((300, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # Every chunk a different length: BM25 weights never tie, so both engines' orders
    # are fully determined (they break ties differently).
    texts = [" ".join(rng.choice(WORDS, size=6 + i)) + f" code{i}" for i in range(300)]
    points = [
        models.PointStruct(
            id=i, vector={DENSE: vectors[i].tolist(), SPARSE: models.SparseVector(
                indices=encode_document(t).indices, values=encode_document(t).values)},
            payload={"text": t, "doc_id": f"d{i}", "doc_type": "label",
                     "access_groups": ["public"] if i % 3 else ["pharmacy"]},
        )
        for i, t in enumerate(texts)
    ]
    embedded = QdrantClient(location=":memory:")
    ensure_collection(embedded, "c", DIM)
    embedded.upsert("c", points=points)
    shard = engine.create_shard(tmp_path / "shard", DIM, on_disk=True)
    shard.update(engine.qe.UpdateOperation.upsert_points(
        [engine.to_edge_point(p) for p in points]))
    rust = engine.EdgeClient(shard)

    queries = {f"{texts[i].split()[0]} {texts[i].split()[3]} code{i}": vectors[i].tolist()
               for i in (1, 2, 5, 50, 299)}
    ours = Retriever(embedded, "c", Table(queries), hnsw_ef=64)  # type: ignore[arg-type]
    theirs = Retriever(rust, "c", Table(queries), hnsw_ef=64)  # type: ignore[arg-type]
    public = build_filter(None, ["public"])
    for question, vector in queries.items():
        for mode in ("dense", "sparse"):
            a = ours.search(question, access_groups=["public"], limit=5, mode=mode)
            b = theirs.search(question, access_groups=["public"], limit=5, mode=mode)
            assert [p.id for p in a] == [p.id for p in b], (mode, question)
            assert np.allclose([p.score for p in a], [p.score for p in b], atol=1e-4)
            assert all(p.provenance.access_groups == ["public"] for p in b)
        lexical = encode_query(question)
        for fusion in (models.Fusion.RRF, models.Fusion.DBSF):
            request = {
                "prefetch": [
                    models.Prefetch(query=vector, using=DENSE, limit=30),
                    models.Prefetch(query=models.SparseVector(
                        indices=lexical.indices, values=lexical.values), using=SPARSE, limit=30),
                ],
                "query": models.FusionQuery(fusion=fusion), "query_filter": public, "limit": 10,
            }
            a = tie_groups(embedded.query_points("c", **request).points)
            b = tie_groups(rust.query_points("c", **request).points)
            # Same fused scores in the same order; within a tie, any order. The last
            # group is cut by the limit, so only its score is compared.
            assert [g[0] for g in a] == [g[0] for g in b], (fusion, question)
            assert [g[1] for g in a[:-1]] == [g[1] for g in b[:-1]], (fusion, question)
        top = theirs.search(question, access_groups=["public"], limit=5)
        assert top[0].id == ours.search(question, access_groups=["public"], limit=5)[0].id
    # The caller's groups are enforced by the engine's filter, in every arm.
    only = Retriever(rust, "c", Table(queries)).search(  # type: ignore[arg-type]
        next(iter(queries)), access_groups=["pharmacy"], limit=5)
    assert only and all(p.provenance.access_groups == ["pharmacy"] for p in only)
    assert Retriever(rust, "c", Table(queries)).search(  # type: ignore[arg-type]
        next(iter(queries)), access_groups=[], limit=5) == []
    rust.close()
    embedded.close()
