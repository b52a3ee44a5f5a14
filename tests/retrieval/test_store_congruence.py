"""The same operations on both embedded engines, compared (qdrant-client's congruence
tests are the model): qdrant-client's local mode (`QdrantClient`, the reference) and
the edge engine (`retrieval/engines/edge.py EdgeClient`, Qdrant's own engine in process).

Real small vectors and payloads shaped like the product's (retrieval/schema.py), random
but seeded; no mocks. Ids and order must match; scores to float precision. Random
vectors make ties improbable, so an order difference is a real difference. The edge
collections stay below the full-scan threshold, so both engines search exactly.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from retrieval.engines.edge import EdgeClient
from retrieval.search import build_filter
from retrieval.store import (
    DENSE,
    LOCAL_BACKUP,
    SPARSE,
    StoreUnavailable,
    ensure_collection,
    match,
    match_any,
    open_client,
    restore_store,
    snapshot_store,
)

DIM = 16
N = 300
VOCAB = 60
GROUPS = ["public", "cardiology", "oncology"]
VERSIONS = [f"v{i}" for i in range(6)]
DOC_TYPES = ["label", "formulary", "guideline"]
C = "congruence"


def _points(rng: np.random.Generator, n: int = N, start: int = 0) -> list[models.PointStruct]:
    out = []
    for i in range(start, start + n):
        terms = np.sort(rng.choice(VOCAB, size=int(rng.integers(3, 9)), replace=False))
        groups = sorted(set(rng.choice(GROUPS, size=int(rng.integers(1, 3))).tolist()))
        # Half the ids are UUIDs (the product's), half integers.
        pid: int | str = i if i % 2 else str(uuid.UUID(int=int(rng.integers(1, 2**62)) * 7919))
        out.append(models.PointStruct(
            id=pid,
            vector={DENSE: rng.standard_normal(DIM).tolist(),
                    SPARSE: models.SparseVector(indices=terms.tolist(),
                                                values=rng.uniform(0.2, 2.0, len(terms)).tolist())},
            payload={"text": f"chunk {i}", "doc_id": f"d{i // 10}", "version_id":
                     VERSIONS[i % len(VERSIONS)], "doc_type": DOC_TYPES[i % 3],
                     "access_groups": groups, "chunk_index": i % 10,
                     "drugs": ["atorvastatin"] if i % 7 == 0 else [],
                     "metadata": {"source": "test", "n": i}},
        ))
    return out


def _query(rng: np.random.Generator) -> tuple[list[float], models.SparseVector]:
    terms = np.sort(rng.choice(VOCAB, size=4, replace=False))
    return (rng.standard_normal(DIM).tolist(),
            models.SparseVector(indices=terms.tolist(), values=[1.0] * 4))


@pytest.fixture()
def engines(tmp_path: Path):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(17)
    points = _points(rng)
    local = QdrantClient(location=":memory:")
    edge = EdgeClient(tmp_path / "edge")
    for client in (local, edge):
        ensure_collection(client, C, DIM)
        for i in range(0, len(points), 64):
            client.upsert(C, points=points[i:i + 64], wait=True)
    yield local, edge, rng
    local.close()
    edge.close()


def _ids(points: list) -> list:  # type: ignore[type-arg]
    return [p.id for p in points]


def _same_scored(a: list[models.ScoredPoint], b: list[models.ScoredPoint]) -> None:
    """Same scores in the same order, the same points at each score. Fused (RRF) scores
    tie exactly (first in one arm only, for two points): the engines break such ties
    differently, so within a tie the order is free; the tie at the cut-off (`limit`)
    may also hold different members, so only its size is compared."""
    assert [p.score for p in a] == pytest.approx([p.score for p in b], rel=1e-4, abs=1e-5)
    if not a:
        return

    def key(p: models.ScoredPoint) -> tuple[float, str]:
        return (-round(p.score, 5), str(p.id))

    last = round(a[-1].score, 5)
    above_a = sorted((p for p in a if round(p.score, 5) > last), key=key)
    above_b = sorted((p for p in b if round(p.score, 5) > last), key=key)
    assert _ids(above_a) == _ids(above_b)
    assert [p.payload for p in above_a] == [p.payload for p in above_b]


def _hybrid(client, dense, sparse, flt, *, drugs=None, fusion=None, limit=15):  # type: ignore[no-untyped-def]
    prefetch = [models.Prefetch(query=dense, using=DENSE, limit=30),
                models.Prefetch(query=sparse, using=SPARSE, limit=30)]
    if drugs:
        named = models.Filter(must=[match_any("drugs", drugs)])
        prefetch += [models.Prefetch(query=dense, using=DENSE, limit=30, filter=named),
                     models.Prefetch(query=sparse, using=SPARSE, limit=30, filter=named)]
    return client.query_points(
        C, prefetch=prefetch, query=fusion or models.FusionQuery(fusion=models.Fusion.RRF),
        query_filter=flt, limit=limit, with_payload=True).points


def test_schema_and_counts(engines) -> None:  # type: ignore[no-untyped-def]
    local, edge, _ = engines
    for client in (local, edge):
        params = client.get_collection(C).config.params
        assert params.vectors[DENSE].size == DIM
        assert params.vectors[DENSE].distance == models.Distance.COSINE
        assert params.sparse_vectors[SPARSE].modifier == models.Modifier.IDF
        assert client.collection_exists(C) and not client.collection_exists("nope")
    # The product's payload indexes exist on the edge engine (local mode ignores them).
    schema = edge.get_collection(C).payload_schema
    assert schema["access_groups"].data_type == models.PayloadSchemaType.KEYWORD
    assert schema["chunk_index"].data_type == models.PayloadSchemaType.INTEGER
    for flt in (None, build_filter(None, ["public"], ["v1", "v2"]),
                models.Filter(must=[match("doc_type", "label")],
                              must_not=[match_any("access_groups", ["oncology"])]),
                models.Filter(must=[models.FieldCondition(
                    key="chunk_index", range=models.Range(gte=2, lte=5))])):
        assert local.count(C, count_filter=flt, exact=True).count == \
            edge.count(C, count_filter=flt, exact=True).count


def test_dense_sparse_and_hybrid_queries_agree(engines) -> None:  # type: ignore[no-untyped-def]
    local, edge, rng = engines
    for _ in range(12):
        dense, sparse = _query(rng)
        groups = sorted(set(rng.choice(GROUPS, size=2).tolist()))
        versions = sorted(set(rng.choice(VERSIONS, size=4).tolist()))
        flt = build_filter(None, groups, versions)  # access groups and as-of versions
        for using, q in ((DENSE, dense), (SPARSE, sparse)):
            a = local.query_points(C, query=q, using=using, query_filter=flt, limit=15).points
            b = edge.query_points(C, query=q, using=using, query_filter=flt, limit=15).points
            _same_scored(a, b)
        _same_scored(_hybrid(local, dense, sparse, flt), _hybrid(edge, dense, sparse, flt))
        _same_scored(_hybrid(local, dense, sparse, flt, drugs=["atorvastatin"]),
                     _hybrid(edge, dense, sparse, flt, drugs=["atorvastatin"]))
        weighted = models.RrfQuery(rrf=models.Rrf(k=60, weights=[2.0, 1.0]))
        _same_scored(_hybrid(local, dense, sparse, flt, fusion=weighted),
                     _hybrid(edge, dense, sparse, flt, fusion=weighted))


def test_an_empty_group_list_matches_nothing_on_both(engines) -> None:  # type: ignore[no-untyped-def]
    local, edge, rng = engines
    dense, sparse = _query(rng)
    flt = build_filter(None, [], None)
    assert _hybrid(local, dense, sparse, flt) == _hybrid(edge, dense, sparse, flt) == []


def test_scroll_retrieve_delete_and_set_payload_agree(engines) -> None:  # type: ignore[no-untyped-def]
    local, edge, rng = engines

    def scroll_all(client, flt, **kw):  # type: ignore[no-untyped-def]
        out, offset = [], None
        while True:
            page, offset = client.scroll(C, scroll_filter=flt, limit=37, offset=offset, **kw)
            out += page
            if offset is None:
                return out

    flt = models.Filter(must=[match_any("access_groups", ["cardiology"])],
                        should=[match("doc_id", "d3"), match("doc_id", "d7")])
    for kw in ({"with_payload": True}, {"with_payload": ["chunk_index", "doc_id"]},
               {"with_payload": False, "with_vectors": [DENSE]}):
        a, b = scroll_all(local, flt, **kw), scroll_all(edge, flt, **kw)
        assert _ids(a) == _ids(b) and [r.payload for r in a] == [r.payload for r in b]
        if "with_vectors" in kw:
            for ra, rb in zip(a, b, strict=True):
                assert ra.vector[DENSE] == pytest.approx(rb.vector[DENSE], rel=1e-5)
    everything = scroll_all(local, None)
    ids = [r.id for r in everything[::9]] + [str(uuid.uuid4()), 10**9 + 1]
    a = local.retrieve(C, ids=ids, with_payload=True, with_vectors=True)
    b = edge.retrieve(C, ids=ids, with_payload=True, with_vectors=True)
    assert sorted(map(str, _ids(a))) == sorted(map(str, _ids(b)))
    by_id = {r.id: r for r in b}
    for r in a:
        assert by_id[r.id].payload == r.payload
        assert by_id[r.id].vector[SPARSE].indices == r.vector[SPARSE].indices
        assert by_id[r.id].vector[SPARSE].values == pytest.approx(r.vector[SPARSE].values)

    # Delete by filter (ingest's delete_versions), by ids, then upsert over existing ids.
    gone = models.FilterSelector(filter=models.Filter(must=[match_any("version_id", ["v2"])]))
    more = _points(rng, 40, start=N - 20)
    for client in (local, edge):
        client.delete(C, points_selector=gone, wait=True)
        client.delete(C, points_selector=models.PointIdsList(points=ids[:3]), wait=True)
        client.upsert(C, points=more, wait=True)
        client.set_payload(C, payload={"status": "Preferred", "flags": ["PA"]},
                           points=models.Filter(must=[match("doc_type", "formulary")]), wait=True)
        client.set_payload(C, payload={"status": "Covered"}, points=[r.id for r in more[:5]])
    assert [(r.id, r.payload) for r in scroll_all(local, None)] == \
        [(r.id, r.payload) for r in scroll_all(edge, None)]
    dense, _ = _query(rng)
    flt = models.Filter(must=[match_any("status", ["Preferred"])])
    # Dense only after deletes: Qdrant's engine (edge, and a server) keeps a deleted or
    # overwritten point in its sparse IDF statistics until the segment is vacuumed, so
    # lexical scores drift slightly from local mode's exact IDF after deletions.
    _same_scored(local.query_points(C, query=dense, using=DENSE, query_filter=flt).points,
                 edge.query_points(C, query=dense, using=DENSE, query_filter=flt).points)
    legacy = models.Filter(must=[models.IsEmptyCondition(
        is_empty=models.PayloadField(key="status"))])
    assert local.count(C, count_filter=legacy).count == edge.count(C, count_filter=legacy).count


def test_edge_store_survives_a_killed_process_and_reopens(tmp_path: Path) -> None:
    """Written by a process killed without closing: the next open sees every point."""
    script = (
        "import sys, os, numpy as np\n"
        "from qdrant_client import models\n"
        "from retrieval.engines.edge import EdgeClient\n"
        "from retrieval.store import ensure_collection, DENSE, SPARSE\n"
        "c = EdgeClient(sys.argv[1]); ensure_collection(c, 'k', 4)\n"
        "c.upsert('k', points=[models.PointStruct(id=i, vector={DENSE: [1.0, i, 0, 1], "
        "SPARSE: models.SparseVector(indices=[i], values=[1.0])}, payload={'i': i}) "
        "for i in range(1, 101)])\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False,
                   cwd=Path(__file__).resolve().parents[2])
    client = EdgeClient(tmp_path)
    try:
        assert client.count("k").count == 100
        assert client.retrieve("k", [42])[0].payload == {"i": 42}
    finally:
        client.close()


class _Store:
    def __init__(self, path: Path, engine: str) -> None:
        self.resolved_qdrant_path = path
        self.vector_engine = engine
        self.qdrant_url = None
        self.qdrant_api_key = None


def test_a_local_mode_folder_migrates_to_edge_and_nothing_is_lost(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    points = _points(rng, 150)
    path = tmp_path / "qdrant"
    old = open_client(_Store(path, "local"))
    ensure_collection(old, C, DIM)
    old.upsert(C, points=points)
    dense, sparse = _query(rng)
    flt = build_filter(None, ["public"], VERSIONS[:4])
    expected = _hybrid(old, dense, sparse, flt)
    old.close()

    edge = open_client(_Store(path, "edge"))
    try:
        assert isinstance(edge, EdgeClient)
        assert edge.count(C).count == len(points)
        _same_scored(expected, _hybrid(edge, dense, sparse, flt))
        # The product's payload indexes were created on the migrated collection.
        assert "version_id" in edge.get_collection(C).payload_schema
    finally:
        edge.close()
    backup = path / LOCAL_BACKUP
    assert (backup / "meta.json").exists() and (backup / "MIGRATED.txt").exists()
    assert not (path / "meta.json").exists()
    # Kept intact: local mode still opens the old folder with every point.
    kept = QdrantClient(path=str(backup))
    assert kept.count(C).count == len(points)
    kept.close()
    # Opened again: nothing to migrate, the data is still there.
    again = open_client(_Store(path, "edge"))
    assert again.count(C).count == len(points)
    again.close()
    # Local mode on the migrated folder says what to do instead of showing an empty store.
    with pytest.raises(StoreUnavailable, match="MEDCITE_VECTOR_ENGINE=edge"):
        open_client(_Store(path, "local"))


def test_an_interrupted_migration_is_redone(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    path = tmp_path / "qdrant"
    old = QdrantClient(path=str(path))
    ensure_collection(old, C, DIM)
    old.upsert(C, points=_points(rng, 80))
    old.close()
    # As a crash mid-way leaves it: the files moved aside, a partial edge copy.
    (path / "local-mode.migrating").mkdir()
    for name in ("meta.json", "collection"):
        (path / name).rename(path / "local-mode.migrating" / name)
    partial = EdgeClient(path)
    ensure_collection(partial, C, DIM)
    partial.upsert(C, points=_points(rng, 5))
    partial.close()
    edge = open_client(_Store(path, "edge"))
    try:
        assert edge.count(C).count == 80
    finally:
        edge.close()


def test_edge_snapshot_restores_into_an_empty_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    edge = open_client(_Store(tmp_path / "a", "edge"))
    ensure_collection(edge, C, DIM, quantize=True)  # the default for a new collection
    edge.upsert(C, points=_points(rng, 60))
    files = snapshot_store(edge, tmp_path / "snap")
    edge.upsert(C, points=_points(rng, 10, start=1000))  # after the snapshot: not in it
    edge.close()
    assert [f.name for f in files] == [f"{C}.edge.tar"]
    restore_store(tmp_path / "snap", _Store(tmp_path / "b", "edge"))
    restored = open_client(_Store(tmp_path / "b", "edge"))
    try:
        assert restored.count(C).count == 60
        assert restored.get_collection(C).config.params.vectors[DENSE].size == DIM
        dense, _ = _query(rng)
        assert len(restored.query_points(C, query=dense, using=DENSE, limit=5).points) == 5
    finally:
        restored.close()
    with pytest.raises(StoreUnavailable, match="already holds a store"):
        restore_store(tmp_path / "snap", _Store(tmp_path / "b", "edge"))


def test_the_edge_folder_is_locked_against_a_second_client(tmp_path: Path) -> None:
    first = open_client(_Store(tmp_path, "edge"))
    try:
        with pytest.raises(StoreUnavailable, match="in use by another process"):
            open_client(_Store(tmp_path, "edge"))
        with pytest.raises(StoreUnavailable, match="in use by another process"):
            open_client(_Store(tmp_path, "local"))
    finally:
        first.close()
    open_client(_Store(tmp_path, "edge")).close()


def test_the_versions_filter_as_in_force_or_as_not_excluded_selects_the_same_points(
        engines) -> None:  # type: ignore[no-untyped-def]
    """`build_filter` filters versions as "one of those in force" or, when fewer, as
    "none of the others the catalog knows" (cheaper for the engine): on both engines the
    two select the same points, and chunks without a version are outside both."""
    local, edge, rng = engines
    unversioned = models.PointStruct(
        id=10_000, vector={DENSE: rng.standard_normal(DIM).tolist(),
                           SPARSE: models.SparseVector(indices=[1, 2], values=[1.0, 1.0])},
        payload={"text": "legacy chunk", "access_groups": ["public"]})
    for client in (local, edge):
        client.upsert(C, points=[unversioned], wait=True)
    in_force = VERSIONS[:4]
    excluded = VERSIONS[4:]
    as_any = build_filter(None, ["public", "cardiology"], in_force)
    as_not = build_filter(None, ["public", "cardiology"], in_force, excluded)
    assert as_not.must_not and not any(
        getattr(c, "key", None) == "version_id" for c in as_not.must)
    # More excluded than in force: the filter stays "one of those in force".
    assert build_filter(None, ["public"], VERSIONS[:2], VERSIONS[2:]).must_not is None
    for client in (local, edge):
        assert client.count(C, count_filter=as_any, exact=True).count == \
            client.count(C, count_filter=as_not, exact=True).count > 0
        for _ in range(4):
            dense, sparse = _query(rng)
            a = _hybrid(client, dense, sparse, as_any, limit=40)
            b = _hybrid(client, dense, sparse, as_not, limit=40)
            _same_scored(a, b)  # fused ties may come in either order
            assert all(p.payload.get("version_id") in in_force for p in b)
    _same_scored(_hybrid(local, *_query(np.random.default_rng(3)), as_not),
                 _hybrid(edge, *_query(np.random.default_rng(3)), as_not))


def test_the_drug_keys_facet_agrees(engines) -> None:  # type: ignore[no-untyped-def]
    """`drug_keys` (the search's product lexicon) reads the same values on both."""
    from retrieval.store import drug_keys

    local, edge, _ = engines
    assert drug_keys(local, C) == drug_keys(edge, C) == {"atorvastatin"}
    labels = models.Filter(must=[match("doc_type", "label")])
    assert drug_keys(local, C, labels) == drug_keys(edge, C, labels)
    nothing = models.Filter(must=[match("doc_type", "nope")])
    assert drug_keys(local, C, nothing) == drug_keys(edge, C, nothing) == frozenset()
    assert drug_keys(edge, "missing") == frozenset()


def test_an_int8_quantized_edge_collection_rescores_to_the_exact_answers(
    tmp_path: Path,
) -> None:
    """The edge engine keeps int8 copies when asked (`ensure_collection(quantize=True)`)
    and, with its default rescoring, returns the exact scores and order of qdrant-client's
    local mode, which ignores quantization."""
    rng = np.random.default_rng(23)
    points = _points(rng)
    local = QdrantClient(location=":memory:")
    edge = EdgeClient(tmp_path / "edge")
    try:
        for client in (local, edge):
            ensure_collection(client, C, DIM, quantize=True)
            client.upsert(C, points=points, wait=True)
        edge.settle()
        config = (tmp_path / "edge" / "edge" / C / "edge_config.json").read_text()
        assert '"quantization_config"' in config and "int8" in config.lower()
        for _ in range(8):
            dense, _sparse = _query(rng)
            flt = build_filter(None, ["public", "cardiology"], VERSIONS[:4])
            a = local.query_points(C, query=dense, using=DENSE, query_filter=flt,
                                   limit=10).points
            b = edge.query_points(C, query=dense, using=DENSE, query_filter=flt, limit=10,
                                  with_vectors=[DENSE]).points
            _same_scored(a, b)
            assert all(len(p.vector[DENSE]) == DIM for p in b)  # the originals come back
    finally:
        local.close()
        edge.close()


def test_a_filter_passed_again_is_translated_once_and_a_new_one_afresh(
    tmp_path: Path,
) -> None:
    """The search passes one filter object per versions view and access groups; the
    edge engine translates it once. A different object, even an equal one, is
    translated again (nothing stale survives a catalog change)."""
    edge = EdgeClient(tmp_path / "edge")
    try:
        flt = build_filter(None, ["public"], VERSIONS[:3])
        first = edge._translated(flt)
        assert edge._translated(flt) is first
        again = build_filter(None, ["public"], VERSIONS[:3])
        assert edge._translated(again) is not first
        assert edge._translated(None) is None
    finally:
        edge.close()
