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
    nodes = MedciteRetriever(services.retriever, ["public"], top_k=3).retrieve(
        "atorvastatin starting dose"
    )
    assert len(nodes) == 3
    assert nodes[0].node.metadata["doc_type"] and nodes[0].score is not None
