"""A small real index of structured documents for the structure-aware ranking tests:
the real embedder, the real embedded Qdrant (the session's client, its own collection)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_corpus

STRUCTURED_CORPUS = {
    "drug-labels/fda-spl/humira.xml": ("label", None),
    "drug-labels/fda-spl/lipitor-orig.xml": ("label", None),
    "guidelines/ngc/ngc-10403.xml": ("guideline", None),
    "formularies/ohio-medicaid-updl/current-2024/lipotropics.md": ("formulary", "Ohio Medicaid"),
    "formularies/ohio-medicaid-updl/current-2024/gout.md": ("formulary", "Ohio Medicaid"),
    "coverage/cms-ncd/LipidTesting.md": ("coverage", "Medicare"),
}


@pytest.fixture(scope="session")
def structured_retriever(settings, qdrant, embedder, tmp_path_factory):  # type: ignore[no-untyped-def]
    from ingest.catalog import Catalog
    from ingest.pipeline import ingest_path
    from retrieval.search import Retriever

    root: Path = write_corpus(tmp_path_factory.mktemp("structured"), STRUCTURED_CORPUS)
    local = settings.model_copy(update={"collection": "structured_passages"})
    catalog = Catalog(local.catalog_url)
    report = ingest_path(root, local, client=qdrant, embedder=embedder, catalog=catalog,
                         progress=False)
    assert not report.failed
    return Retriever(qdrant, local.collection, embedder, catalog=catalog)
