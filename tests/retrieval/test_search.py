"""Retrieval over the real index: provenance, filters, groups, LlamaIndex adapter."""

from __future__ import annotations

from retrieval.llama_index_adapter import MedciteRetriever
from retrieval.models import SearchFilters


def test_dose_question_finds_the_lipitor_dosage_section(services) -> None:  # type: ignore[no-untyped-def]
    hits = services.retriever.search(
        "What is the recommended starting dose of atorvastatin?", access_groups=["public"]
    )
    assert hits
    top = hits[0]
    assert "LIPITOR" in top.provenance.title.upper()
    assert any("DOSAGE" in part.upper() for part in top.provenance.section_path)
    assert top.provenance.effective_date and top.provenance.source_file.endswith(".xml")
    texts = [h.text for h in hits]
    assert len(texts) == len({" ".join(t.split()) for t in texts}), "duplicates returned"


def test_doc_type_filter_and_groups(services) -> None:  # type: ignore[no-untyped-def]
    q = "lipid panel coverage"
    only = services.retriever.search(
        q, access_groups=["public"], filters=SearchFilters(doc_types=["coverage"])
    )
    assert only and {h.provenance.doc_type for h in only} == {"coverage"}
    assert services.retriever.search(q, access_groups=["someone-else"]) == []
    assert services.retriever.search(q, access_groups=[]) == []


def test_llama_index_adapter_returns_nodes_with_provenance(services) -> None:  # type: ignore[no-untyped-def]
    query = "atorvastatin starting dose"
    nodes = MedciteRetriever(services.retriever, ["public"], top_k=3).retrieve(query)
    hits = services.retriever.search(query, access_groups=["public"], limit=3)
    assert len(nodes) == len(hits) == 3
    # Each node is its passage: same id, text, score and provenance, in the same order.
    for node, hit in zip(nodes, hits, strict=True):
        assert node.node.node_id == hit.id and node.node.get_content() == hit.text
        assert node.score == hit.score
        assert node.node.metadata == hit.provenance.model_dump(exclude_none=True)
    assert nodes[0].node.metadata["doc_type"] == "label"
    assert "LIPITOR" in nodes[0].node.metadata["title"].upper()



def test_rrf_dense_weight_and_k_reach_qdrant_fusion(embedder) -> None:  # type: ignore[no-untyped-def]
    """MEDCITE_RRF_DENSE_WEIGHT becomes Qdrant's weighted RRF (dense arm first) and
    MEDCITE_RRF_K its ranking constant; each changes the fused scores; neither set keeps
    the plain RRF query."""
    from qdrant_client import QdrantClient, models

    from retrieval.search import Retriever
    from retrieval.sparse import encode_document, encode_query
    from retrieval.store import DENSE, SPARSE, ensure_collection

    texts = [
        "Antihypertensive drug therapy reduces hypertension in older adults.",
        "XQ7 storage instructions for the refrigerator shipment.",
        "Blood pressure targets for elderly patients on XQ7 are not established.",
        "Annual influenza vaccination schedule for children.",
    ]
    client = QdrantClient(location=":memory:")
    ensure_collection(client, "w", embedder.dim)
    client.upsert("w", points=[
        models.PointStruct(
            id=i, vector={DENSE: v.tolist(), SPARSE: models.SparseVector(
                indices=encode_document(t).indices, values=encode_document(t).values)},
            payload={"text": t, "access_groups": ["public"]},
        )
        for i, (t, v) in enumerate(zip(texts, embedder.embed(texts), strict=True))
    ])
    sent: list[object] = []

    class Recording:
        def __getattr__(self, name: str) -> object:
            return getattr(client, name)

        def query_points(self, *args: object, **kwargs: object) -> object:
            sent.append(kwargs.get("query"))
            return client.query_points(*args, **kwargs)  # type: ignore[arg-type]

    question = "medication to lower blood pressure in elderly patients XQ7"
    lexical = encode_query(question)

    def scores(weight: float, k: int | None = None) -> dict[str, float]:
        retriever = Retriever(Recording(), "w", embedder, dense_weight=weight, rrf_k=k)  # type: ignore[arg-type]
        retriever.search(question, access_groups=["public"], limit=4)
        fused = client.query_points(
            "w", prefetch=[models.Prefetch(query=embedder.embed_query(question), using=DENSE,
                                           limit=30),
                           models.Prefetch(query=models.SparseVector(
                               indices=lexical.indices, values=lexical.values),
                               using=SPARSE, limit=30)],
            query=sent[-1], limit=4,
        ).points
        return {str(p.id): p.score for p in fused}

    plain = scores(1.0)
    assert isinstance(sent[-1], models.FusionQuery) and sent[-1].fusion == models.Fusion.RRF
    weighted = scores(3.0)
    assert isinstance(sent[-1], models.RrfQuery) and sent[-1].rrf.weights == [3.0, 1.0]
    assert weighted != plain
    flat = scores(1.0, k=60)
    assert isinstance(sent[-1], models.RrfQuery) and sent[-1].rrf.k == 60
    assert sent[-1].rrf.weights is None
    # Qdrant scores rank r (from 0) 1/(k + r): over two arms at most 2/k.
    assert flat.keys() == plain.keys() and max(flat.values()) <= 2 / 60 + 1e-9
    assert max(plain.values()) > 2 / 60
    both = scores(3.0, k=60)
    assert isinstance(sent[-1], models.RrfQuery)
    assert sent[-1].rrf.k == 60 and sent[-1].rrf.weights == [3.0, 1.0]
    assert both != flat
    client.close()


def test_equal_fused_scores_are_ordered_by_id_whatever_order_the_engine_gave() -> None:
    from qdrant_client import models

    from retrieval.search import settle_ties

    def hit(pid: str, score: float) -> models.ScoredPoint:
        return models.ScoredPoint(id=pid, version=0, score=score)

    ids = ["b" * 8, "a" * 8, "c" * 8]
    one = settle_ties([hit(ids[0], 0.5), hit(ids[1], 0.5), hit(ids[2], 0.9)])
    other = settle_ties([hit(ids[1], 0.5), hit(ids[2], 0.9), hit(ids[0], 0.5)])
    assert [h.id for h in one] == [h.id for h in other] == [ids[2], ids[1], ids[0]]


class _Catalog:
    """The catalog's two calls the search makes, from fixed sets (replaced to move it)."""

    def __init__(self, in_force: dict, known: frozenset[str]) -> None:  # type: ignore[type-arg]
        self.in_force, self.known = in_force, known

    def in_force_versions(self, collection: str, as_of: str | None = None) -> dict:  # type: ignore[type-arg]
        return self.in_force

    def known_versions(self, collection: str) -> frozenset[str]:
        return self.known


class _Recording:
    """A client that records the filter of every query it passes on."""

    def __init__(self, client: object) -> None:
        self.client = client
        self.sent: list = []  # type: ignore[type-arg]

    def __getattr__(self, name: str) -> object:
        return getattr(self.client, name)

    def query_points(self, *args: object, **kwargs: object) -> object:
        self.sent.append(kwargs["query_filter"])
        return self.client.query_points(*args, **kwargs)  # type: ignore[attr-defined]


def test_a_chunk_of_a_version_the_catalog_does_not_know_is_never_returned(embedder) -> None:  # type: ignore[no-untyped-def]
    """The engine filters on "none of the excluded versions" when that list is the
    shorter; a chunk whose version the catalog never recorded (an interrupted build whose
    row is gone) passes that filter, and the search itself must drop it."""
    from qdrant_client import QdrantClient, models

    from retrieval.search import Retriever
    from retrieval.sparse import encode_document
    from retrieval.store import DENSE, SPARSE, ensure_collection

    rows = [(f"Atorvastatin dosing note {i}: start at 10 mg once daily.", f"v{i % 5}")
            for i in range(10)]
    rows.append(("Atorvastatin dosing note: start at 10 mg once daily (unfinished build).",
                 "v-orphan"))
    client = QdrantClient(location=":memory:")
    ensure_collection(client, "o", embedder.dim)
    vectors = embedder.embed([t for t, _ in rows])
    client.upsert("o", points=[
        models.PointStruct(id=i, vector={DENSE: v.tolist(), SPARSE: models.SparseVector(
            indices=encode_document(t).indices, values=encode_document(t).values)},
            payload={"text": t, "access_groups": ["public"], "version_id": vid,
                     "doc_id": f"d{i}"})
        for i, ((t, vid), v) in enumerate(zip(rows, vectors, strict=True))])

    in_force = {f"v{i}": {"number": 1} for i in range(4)}
    catalog = _Catalog(in_force, frozenset({*in_force, "v4"}))
    recording = _Recording(client)
    sent = recording.sent
    retriever = Retriever(recording, "o", embedder, catalog=catalog)  # type: ignore[arg-type]
    for mode in ("hybrid", "dense", "sparse"):
        got = retriever.search("atorvastatin starting dose unfinished build",
                               access_groups=["public"], limit=20, mode=mode)  # type: ignore[arg-type]
        assert got and {p.provenance.version_id for p in got} <= set(in_force)
        assert all(p.provenance.version_number == 1 for p in got)
    # The engine was asked with the short form ("not v4"), which lets the orphan through.
    assert sent[-1].must_not is not None
    assert client.count("o", count_filter=sent[-1]).count == 9
    client.close()


def test_one_filter_per_versions_view_and_groups_and_a_new_one_when_the_catalog_moves(
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    """The search builds its engine filter once per versions view, access groups and
    request filters (the edge engine then translates it once); another group list, or a
    catalog change, gets a filter of its own that says what changed."""
    from qdrant_client import QdrantClient, models

    from retrieval.search import Retriever
    from retrieval.store import ensure_collection

    client = QdrantClient(location=":memory:")
    ensure_collection(client, "f", embedder.dim)

    catalog = _Catalog({"v1": {"number": 1}, "v2": {"number": 1}, "v3": {"number": 1}},
                       frozenset({"v1", "v2", "v3", "v0"}))
    recording = _Recording(client)
    sent = recording.sent
    retriever = Retriever(recording, "f", embedder, catalog=catalog)  # type: ignore[arg-type]

    def ask(groups: list[str]) -> models.Filter:
        retriever.search("atorvastatin dose", access_groups=groups, limit=3)
        return sent[-1]

    first = ask(["public"])
    assert ask(["public"]) is first
    other = ask(["public", "cardiology"])
    assert other is not first and "cardiology" in other.model_dump_json()
    # v2 replaced by v4: a new view, a new filter that excludes v2.
    catalog.in_force = {"v1": {"number": 1}, "v3": {"number": 1}, "v4": {"number": 2}}
    catalog.known = frozenset({"v0", "v1", "v2", "v3", "v4"})
    moved = ask(["public"])
    assert moved is not first and '"v2"' in moved.model_dump_json()
    assert '"v2"' not in first.model_dump_json()
    client.close()
