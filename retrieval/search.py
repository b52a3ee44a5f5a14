"""Retrieval, top to bottom: embed the question → filtered dense search in Qdrant → passages.

Access groups are enforced inside Qdrant's filter, so a passage outside the caller's
groups is never returned, let alone sent to the generator. The `Retriever` keeps one
entry point so hybrid search and reranking can slot in behind it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from qdrant_client import QdrantClient, models

from retrieval.embedder import Embedder
from retrieval.models import Passage, Provenance, SearchFilters
from retrieval.store import DENSE, match_any


def build_filter(filters: SearchFilters | None, access_groups: list[str]) -> models.Filter:
    # An empty group list must match nothing, never everything.
    must: list[models.Condition] = [match_any("access_groups", access_groups or ["\0none"])]
    if filters:
        if filters.doc_types:
            must.append(match_any("doc_type", filters.doc_types))
        if filters.payers:
            must.append(match_any("payer", filters.payers))
        if filters.doc_ids:
            must.append(match_any("doc_id", filters.doc_ids))
    return models.Filter(must=must)


def to_passage(point: models.ScoredPoint | models.Record, score: float) -> Passage:
    p = point.payload or {}
    return Passage(
        id=str(point.id),
        text=str(p.get("text", "")),
        score=score,
        provenance=Provenance(
            doc_id=str(p.get("doc_id", "")),
            title=str(p.get("title", "")),
            source_file=str(p.get("source_file", "")),
            doc_type=str(p.get("doc_type", "")),
            section_path=list(p.get("section_path") or []),
            page=p.get("page"),
            char_start=int(p.get("char_start", 0)),
            char_end=int(p.get("char_end", 0)),
            effective_date=p.get("effective_date"),
            version=p.get("version"),
            payer=p.get("payer"),
            access_groups=list(p.get("access_groups") or []),
        ),
    )


@dataclass
class Retriever:
    client: QdrantClient
    collection: str
    embedder: Embedder
    # Embedded Qdrant is not safe for concurrent use from the API's worker threads.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def search(
        self,
        question: str,
        *,
        access_groups: list[str],
        filters: SearchFilters | None = None,
        limit: int = 5,
    ) -> list[Passage]:
        vector = self.embedder.embed_query(question)
        with self._lock:
            hits = self.client.query_points(
                self.collection,
                query=vector,
                using=DENSE,
                query_filter=build_filter(filters, access_groups),
                # Over-fetch: repackaged labels and re-published pages repeat passages
                # word for word, and duplicates would crowd out the context.
                limit=limit * 3,
                with_payload=True,
            ).points
        return dedupe([to_passage(h, float(h.score)) for h in hits])[:limit]


def dedupe(passages: list[Passage]) -> list[Passage]:
    """Keep the best-scored copy of passages whose text is the same."""
    seen: set[str] = set()
    out = []
    for p in passages:
        key = " ".join(p.text.casefold().split())
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
