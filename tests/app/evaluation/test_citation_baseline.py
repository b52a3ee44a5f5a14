"""The LlamaIndex CitationQueryEngine baseline of `medcite eval-answers`: its retrieval,
restricted to one document for PubMedQA, must really find that document's chunks."""

from __future__ import annotations

from app.core.settings import Settings
from app.evaluation.answers.citation_baseline import CitationBaseline, split_cited
from retrieval.models import Passage, Provenance


def test_restricted_retriever_returns_only_and_all_of_that_documents_chunks(
    qdrant, settings: Settings, first_ingest  # type: ignore[no-untyped-def]
) -> None:
    baseline = CitationBaseline(
        qdrant, settings.collection, settings.embedding_model,
        base_url="http://127.0.0.1:9/v1", model="unused", api_key="x", timeout_s=1,
        max_tokens=16, top_k=3,
    )
    points, _ = qdrant.scroll(settings.collection, limit=1000, with_payload=["doc_id"])
    counts: dict[str, int] = {}
    for p in points:
        counts[p.payload["doc_id"]] = counts.get(p.payload["doc_id"], 0) + 1
    doc_id = max(counts, key=counts.__getitem__)
    hits = baseline.retriever(doc_id).retrieve("What is the recommended dose?")
    assert len(hits) == min(3, counts[doc_id])
    assert {h.node.metadata["doc_id"] for h in hits} == {doc_id}
    assert baseline.retriever("md:no-such-document").retrieve("dose") == []
    # Unrestricted, it searches everything.
    assert len(baseline.retriever().retrieve("What is the recommended dose?")) == 3


def test_split_cited_maps_markers_to_sources() -> None:
    sources = [Passage(id=str(i), text=f"p{i}", score=1.0, provenance=Provenance(
        doc_id=f"d{i}", title="", source_file=f"f{i}", doc_type="", section_path=[],
        char_start=0, char_end=2)) for i in (1, 2)]
    out = split_cited("Take 10 mg daily [1][2]. Avoid grapefruit [2].", sources)
    assert [(s, [p.id for p in c]) for s, c in out] == [
        ("Take 10 mg daily.", ["1", "2"]), ("Avoid grapefruit.", ["2"])]
