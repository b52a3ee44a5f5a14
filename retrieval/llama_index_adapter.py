"""medcite retrieval as a LlamaIndex retriever.

Teams with LlamaIndex query engines can plug in medcite's access-group-filtered,
provenance-carrying retrieval instead of a bare `VectorStoreIndex` retriever.
"""

from __future__ import annotations

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from retrieval.models import SearchFilters
from retrieval.search import Retriever


class MedciteRetriever(BaseRetriever):
    def __init__(
        self,
        retriever: Retriever,
        access_groups: list[str],
        filters: SearchFilters | None = None,
        top_k: int = 5,
    ) -> None:
        super().__init__()
        self._inner = retriever
        self._groups = access_groups
        self._filters = filters
        self._top_k = top_k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        passages = self._inner.search(
            query_bundle.query_str, access_groups=self._groups, filters=self._filters,
            limit=self._top_k,
        )
        return [
            NodeWithScore(
                node=TextNode(
                    id_=p.id,
                    text=p.text,
                    metadata=p.provenance.model_dump(exclude_none=True),
                    start_char_idx=p.provenance.char_start,
                    end_char_idx=p.provenance.char_end,
                ),
                score=p.score,
            )
            for p in passages
        ]
