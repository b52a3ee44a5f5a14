"""Settings: an evaluation's or benchmark's copy never points at the product's stores."""

from __future__ import annotations

from pathlib import Path

from app.core.settings import Settings


def test_isolated_copy_moves_every_store_into_its_own_folder(tmp_path: Path) -> None:
    product = Settings(MEDCITE_DATA_DIR=tmp_path / "product",
                       QDRANT_URL="http://qdrant.internal:6333")
    own = product.isolated(tmp_path / "eval", collection="eval_corpora")
    assert own.collection == "eval_corpora" and own.qdrant_url is None
    assert own.resolved_qdrant_path == tmp_path / "eval" / "qdrant"
    assert own.database_url == f"sqlite:///{tmp_path / 'eval' / 'audit.db'}"
    assert own.catalog_url == f"sqlite:///{tmp_path / 'eval' / 'catalog.db'}"
    # The product's derived paths would have survived a plain model_copy.
    copied = product.model_copy(update={"data_dir": tmp_path / "eval"})
    assert "product" in copied.catalog_url
    # The assembled generator weights are shared, not assembled again.
    assert own.models_dir == product.models_dir == tmp_path / "product" / "models"


def test_ranking_settings_reach_the_retriever_and_survive_isolation(tmp_path: Path) -> None:
    """/ask and medcite eval's medcite-hybrid build their Retriever from the same
    ranking options, so an evaluation measures the ranking the API runs."""
    from qdrant_client import QdrantClient

    from retrieval.search import Retriever

    product = Settings(MEDCITE_DATA_DIR=tmp_path / "product", MEDCITE_FUSION="dbsf",
                       MEDCITE_RRF_K=10, MEDCITE_RRF_DENSE_WEIGHT=1.5, MEDCITE_HNSW_EF=256,
                       MEDCITE_RERANK_CANDIDATES=7)
    own = product.isolated(tmp_path / "eval")
    assert own.ranking_options() == product.ranking_options()
    client = QdrantClient(location=":memory:")
    retriever = Retriever(client, "c", None, **own.ranking_options())  # type: ignore[arg-type]
    assert (retriever.fusion, retriever.rrf_k, retriever.dense_weight, retriever.hnsw_ef,
            retriever.rerank_candidates) == ("dbsf", 10, 1.5, 256, 7)
    client.close()
