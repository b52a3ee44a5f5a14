"""The retrieval systems compared, all over the same chunks of the same corpus.

* medcite-dense / -sparse / -hybrid: the product's `Retriever.search` in each mode.
* bm25: plain BM25 (bm25s, Lucene variant, English stop words, no stemming) over the
  chunks as the embedder sees them (title, section path, text).
* llamaindex: LlamaIndex's default `VectorStoreIndex` retriever over the chunk texts,
  embedded by LlamaIndex's HuggingFace integration with the same model, in an in-memory
  Qdrant: what a team would get from the framework without medcite.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from qdrant_client import QdrantClient, models

from app.core.settings import Settings
from app.evaluation.relevance import Hit
from app.evaluation.retrieval.options import ALL_SYSTEMS, VARIANT_SYSTEMS
from retrieval.embedder import Embedder, pick_device
from retrieval.models import SearchFilters
from retrieval.rerank import Reranker, RerankerUnavailable, build_reranker
from retrieval.schema import ChunkPayload
from retrieval.search import Retriever
from retrieval.store import match_any


class System(Protocol):
    name: str

    # `as_of`: answer from the versions in force that day (the baselines index only
    # today's, as a framework without versions would).
    def search(self, question: str, k: int, as_of: date | None = None) -> list[Hit]: ...


class SystemUnavailable(RuntimeError):
    """This system cannot run here; the message says why and the run goes on without it."""


@dataclass(frozen=True)
class IndexedChunk:
    source_file: str
    title: str
    section_path: tuple[str, ...]
    text: str

    @property
    def embedding_text(self) -> str:
        # Mirrors ingest.chunking.embedding_text, rebuilt from the stored payload.
        return f"{self.title}\n{' > '.join(self.section_path)}\n{self.text}"


def load_chunks(
    client: QdrantClient, collection: str, versions: list[str] | None = None
) -> list[IndexedChunk]:
    """The chunks the product stored, in a stable order, for the baselines to index:
    those of `versions` (the versions in force, what medcite itself searches), so a
    superseded or retired version never reaches a baseline either."""
    rows: list[tuple[str, int, IndexedChunk]] = []
    offset = None
    flt = (None if versions is None
           else models.Filter(must=[match_any("version_id", versions or ["\0none"])]))
    while True:
        points, offset = client.scroll(
            collection, scroll_filter=flt, limit=512, offset=offset, with_payload=True,
            with_vectors=False,
        )
        for p in points:
            pl = ChunkPayload.read(p.payload)
            chunk = IndexedChunk(pl.source_file, pl.title, tuple(pl.section_path), pl.text)
            rows.append((chunk.source_file, pl.chunk_index, chunk))
        if offset is None:
            break
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows]


def supports_mode(retriever: Retriever | type[Retriever]) -> bool:
    return "mode" in inspect.signature(retriever.search).parameters


class MedciteSystem:
    def __init__(
        self, retriever: Retriever, mode: str, access_groups: list[str], name: str = ""
    ) -> None:
        self.name = name or f"medcite-{mode}"
        self._retriever, self._mode, self._groups = retriever, mode, access_groups
        self._with_mode = supports_mode(retriever)
        # Before hybrid search existed, Retriever.search was dense only.
        if not self._with_mode and mode != "dense":
            raise SystemUnavailable(
                f"{self.name}: this retrieval/search.py has no `mode` parameter "
                "(dense search only)"
            )

    def search(self, question: str, k: int, as_of: date | None = None) -> list[Hit]:
        extra = {"mode": self._mode} if self._with_mode else {}
        filters = SearchFilters(as_of=as_of) if as_of else None
        passages = self._retriever.search(
            question, access_groups=self._groups, limit=k, filters=filters,
            **extra,  # type: ignore[arg-type]
        )
        return [Hit(p.provenance.source_file, p.text, p.score) for p in passages]


class BM25System:
    name = "bm25"

    def __init__(self, chunks: list[IndexedChunk]) -> None:
        try:
            import bm25s
        except ImportError as exc:
            raise SystemUnavailable("bm25: bm25s is not installed (extra `eval`)") from exc

        self._bm25s = bm25s
        self._chunks = chunks
        self._index = bm25s.BM25()
        self._index.index(self._tokenize([c.embedding_text for c in chunks]), show_progress=False)

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        return self._bm25s.tokenize(  # type: ignore[no-any-return]
            texts, stopwords="en", return_ids=False, show_progress=False
        )

    def search(self, question: str, k: int, as_of: date | None = None) -> list[Hit]:
        query = self._tokenize([question])
        if not query[0] or not self._chunks:
            return []
        ids, scores = self._index.retrieve(query, k=min(k, len(self._chunks)), show_progress=False)
        return [
            Hit(self._chunks[i].source_file, self._chunks[i].text, float(s))
            for i, s in zip(ids[0], scores[0], strict=True)
            if s > 0  # bm25s pads with zero-score chunks that share no term
        ]


class LlamaIndexSystem:
    name = "llamaindex"

    def __init__(self, chunks: list[IndexedChunk], model_path: str, device: str) -> None:
        try:
            from llama_index.core import StorageContext, VectorStoreIndex
            from llama_index.core.schema import TextNode
            from llama_index.embeddings.huggingface import HuggingFaceEmbedding
            from llama_index.vector_stores.qdrant import QdrantVectorStore
        except ImportError as exc:
            raise SystemUnavailable(
                f"llamaindex: {exc.name} is not installed (extra `eval`)"
            ) from exc
        embed = HuggingFaceEmbedding(model_name=model_path, device=device, embed_batch_size=32)
        store = QdrantVectorStore(client=QdrantClient(location=":memory:"), collection_name="li")
        nodes = [
            TextNode(
                text=c.text, metadata={"source_file": c.source_file},
                # The file name is bookkeeping for judging, not content to embed.
                excluded_embed_metadata_keys=["source_file"],
                excluded_llm_metadata_keys=["source_file"],
            )
            for c in chunks
        ]
        index = VectorStoreIndex(
            nodes, storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=embed,
        )
        self._index = index

    def search(self, question: str, k: int, as_of: date | None = None) -> list[Hit]:
        nodes = self._index.as_retriever(similarity_top_k=k).retrieve(question)
        return [
            Hit(str(n.node.metadata.get("source_file", "")), n.node.get_content(), n.score or 0.0)
            for n in nodes
        ]


def configured_reranker(settings: Settings) -> Reranker | None:
    """The reranker the settings name. The LLM one needs LLM_BASE_URL here: an evaluation
    does not start the embedded generator."""
    try:
        return build_reranker(
            settings.reranker, path=settings.reranker_path,
            device=pick_device(settings.embedding_device), llm_base_url=settings.llm_base_url,
            llm_model=settings.llm_model, llm_api_key=settings.llm_api_key,
            llm_timeout_s=settings.llm_timeout_s,
        )
    except RerankerUnavailable as exc:
        raise SystemUnavailable(f"medcite-hybrid-rerank: {exc}") from exc


def variant(name: str, retriever: Retriever, reranker: Callable[[], Reranker | None]) -> Retriever:
    """The product's retriever over the same collection with one option changed."""
    if name == "medcite-hybrid-dbsf":
        return dataclasses.replace(retriever, reranker=None, expansion="off", fusion="dbsf")
    if name.startswith("medcite-hybrid-rrf-dense"):
        weight = float(name.removeprefix("medcite-hybrid-rrf-dense"))
        return dataclasses.replace(retriever, reranker=None, expansion="off", fusion="rrf",
                                   dense_weight=weight)
    if name.startswith("medcite-hybrid-rrf-k"):
        k = int(name.removeprefix("medcite-hybrid-rrf-k"))
        return dataclasses.replace(retriever, reranker=None, expansion="off", fusion="rrf",
                                   rrf_k=k)
    if name == "medcite-hybrid-plain":
        return dataclasses.replace(retriever, reranker=None, expansion="off", structure="off")
    if name == "medcite-hybrid-section-filter":
        return dataclasses.replace(retriever, reranker=None, expansion="off",
                                   structure="filter")
    if name == "medcite-hybrid-no-drug-arms":
        return dataclasses.replace(retriever, reranker=None, expansion="off", drug_arms=False)
    if name == "medcite-hybrid-rerank":
        built = reranker()
        if built is None:
            raise SystemUnavailable(
                f"{name}: no reranker configured (set MEDCITE_RERANKER_PATH to a "
                "CrossEncoder folder, or MEDCITE_RERANKER=llm)"
            )
        return dataclasses.replace(retriever, reranker=built, expansion="off")
    mode = name.removeprefix("medcite-hybrid-expand-")
    return dataclasses.replace(retriever, reranker=None, expansion=mode)  # type: ignore[arg-type]


def build_system(
    name: str,
    *,
    retriever: Retriever,
    chunks: Callable[[], list[IndexedChunk]],
    embedder: Embedder,
    model_path: str,
    access_groups: list[str],
    reranker: Callable[[], Reranker | None] = lambda: None,
) -> System:
    if name in VARIANT_SYSTEMS:
        return MedciteSystem(variant(name, retriever, reranker), "hybrid", access_groups, name)
    if name.startswith("medcite-"):
        return MedciteSystem(retriever, name.removeprefix("medcite-"), access_groups)
    if name == "bm25":
        return BM25System(chunks())
    if name == "llamaindex":
        return LlamaIndexSystem(chunks(), model_path, embedder.device)
    raise SystemUnavailable(f"unknown system {name!r}; choose from {', '.join(ALL_SYSTEMS)}")
