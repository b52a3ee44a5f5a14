"""Qdrant's own Rust engine, in process, behind the two `QdrantClient` calls that
`Retriever.search` makes — so the product's search code can be timed on the engine that
Qdrant server runs (HNSW, payload indexes, native sparse index, Query API fusion) on a
machine where no Qdrant server can be installed.

The engine is `qdrant-edge-py` (PyPI, Apache-2.0, by the Qdrant team): the server's
segment and shard code compiled into a Python extension, without the HTTP/gRPC layer,
replication or the collection API. It is a benchmark stand-in for `QDRANT_URL`, not a
product backend: the product keeps `QdrantClient(path=...)` embedded and `QdrantClient(
url=...)` for servers, one client API for both. What a server adds on top of these
figures is a local network round trip (~0.1–0.5 ms on 127.0.0.1 / a LAN).

Only what the search path uses is translated: dense / sparse nearest queries, prefetch
with RRF or DBSF fusion, `must` filters of `MatchAny` / `MatchValue` field conditions,
and retrieve-by-id with vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from qdrant_client import models

# The product's own translation of qdrant-client filters into the engine's.
from retrieval.engines.edge import to_filter as to_edge_filter
from retrieval.engines.edge import to_query
from retrieval.schema import INTEGER_FIELDS, KEYWORD_FIELDS
from retrieval.store import DENSE, SPARSE


@dataclass
class QueryResponse:
    points: list[models.ScoredPoint]


def create_shard(path: Path, dim: int, *, on_disk: bool) -> qe.EdgeShard:
    """A shard shaped like the product's collection: a named cosine dense vector and a
    named sparse vector with Qdrant's IDF modifier, payload indexes on the filter fields."""
    # Cold: memory-mapped from disk, read on demand (collections larger than RAM);
    # Cached: the engine's default, kept resident in the page cache.
    memory = qe.Memory.Cold if on_disk else qe.Memory.Cached
    config = qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine,
                                            memory=memory)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000,
                                       memory=memory),
        payload_memory=memory,
    )
    path.mkdir(parents=True, exist_ok=True)
    shard = qe.EdgeShard.create(str(path), config)
    # The same payload indexes as every product backend (retrieval/schema.py).
    for field in KEYWORD_FIELDS:
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
    for field in INTEGER_FIELDS:
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Integer))
    return shard


def to_edge_point(point: models.PointStruct) -> qe.Point:
    vector: dict[str, Any] = {}
    for name, v in (point.vector or {}).items():  # type: ignore[union-attr]
        if isinstance(v, models.SparseVector):
            vector[name] = qe.SparseVector(indices=list(v.indices), values=list(v.values))
        else:
            vector[name] = list(v)
    return qe.Point(point.id, vector, point.payload or {})


def _params(params: models.SearchParams | None) -> qe.SearchParams | None:
    if params is None or not params.hnsw_ef:
        return None
    return qe.SearchParams(hnsw_ef=params.hnsw_ef)


class EdgeClient:
    """`query_points` / `retrieve` / `close` of `QdrantClient`, on an `EdgeShard`."""

    def __init__(self, shard: qe.EdgeShard) -> None:
        self.shard = shard

    def query_points(
        self, collection_name: str, query: Any = None, *, using: str | None = None,
        prefetch: list[models.Prefetch] | None = None, query_filter: models.Filter | None = None,
        search_params: models.SearchParams | None = None, limit: int = 10,
        with_payload: bool = True, **_: Any,
    ) -> QueryResponse:
        flt = to_edge_filter(query_filter)
        prefetches = None
        if prefetch:
            # Give the filter to every arm as well: the server propagates the query's
            # filter into prefetches, and this must not depend on whether edge does.
            prefetches = [qe.Prefetch(limit=p.limit or limit, query=to_query(p.query, p.using),
                                      filter=flt, params=_params(p.params)) for p in prefetch]
        request = qe.QueryRequest(
            limit=limit, query=to_query(query, using), prefetches=prefetches,
            filter=flt, with_payload=with_payload, with_vector=False,
            params=_params(search_params),
        )
        return QueryResponse([
            models.ScoredPoint(id=p.id, version=p.version, score=p.score,
                               payload=p.payload if with_payload else None)
            for p in self.shard.query(request)
        ])

    def retrieve(
        self, collection_name: str, ids: list[Any], *, with_payload: bool = True,
        with_vectors: bool | list[str] = False, **_: Any,
    ) -> list[models.Record]:
        records = self.shard.retrieve(list(ids), with_payload=with_payload,
                                      with_vector=with_vectors)
        return [models.Record(id=r.id, payload=r.payload if with_payload else None,
                              vector=r.vector) for r in records]

    def close(self) -> None:
        self.shard.close()
