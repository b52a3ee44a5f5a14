"""The embedded store on Qdrant's own engine: `EdgeClient`, the subset of `QdrantClient`'s
methods the product calls, answered by `qdrant-edge-py`'s `EdgeShard` (the segment and
shard code of Qdrant server compiled into the process: HNSW, payload indexes, a native
sparse index with the IDF modifier, Query API fusion).

qdrant-client's own split is the model: one client API, the engine behind it chosen when
the client is opened (`retrieval/store.py open_client`). Arguments and results are
qdrant-client `models` types, so no call site knows which engine answers; what is not
translated raises `NotImplementedError` rather than answering something else
(`tests/retrieval/test_store_congruence.py` runs the same operations on both engines).

Layout: one shard per collection under `<path>/edge/<collection>/`, and `<path>/.lock`
held (flock) while a client is open, the same lock file qdrant-client's local mode
takes, so either engine refuses a folder the other process holds.

Concurrency: every call runs under one re-entrant lock (the API's request threads and
an upload's ingest job share one client). `EdgeShard` holds the GIL while it works, so
the lock costs no parallelism and keeps the facade's own state (open shards, pending
counts) consistent.

Durability: the shard writes every update to its write-ahead log before it returns
(a killed process replays it on the next load); segments are flushed at most every
`FLUSH_INTERVAL_S` after a write, on `settle`, snapshot and close.

Indexing: points land in an appendable segment searched exactly; `optimize` builds the
HNSW graph (and merges segments) the way a server's background optimizer does. It runs
when `AUTO_OPTIMIZE_POINTS` points were written since the last run, and in `settle`,
which ingest calls at the end of a run. It blocks the process (the GIL) while it works.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tarfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from qdrant_client import models
from qdrant_client.http.models import QueryResponse

# Qdrant's reciprocal-rank-fusion constant when none is given (the server's, local mode's).
RRF_K = 2
# HNSW: m and ef_construct as Qdrant server's defaults (16, 100) raised so the true
# top-10 is found (recall >= 0.95, bench/RESULTS.md #17); segments smaller than
# FULL_SCAN_KB of vectors (and filters matching fewer points) are searched exactly.
HNSW_M = 16
HNSW_EF_CONSTRUCT = 128
FULL_SCAN_KB = 10_000
# The search beam when a query gives none (MEDCITE_HNSW_EF overrides it per query).
DEFAULT_HNSW_EF = 128
# On an int8-quantized collection the graph is walked with the small copies and twice
# the candidates rescored with the originals, unless a query says otherwise (recall@10
# on the shipped corpora's embeddings 0.959 without oversampling, 0.977 with, 0.983
# unquantized; bench/RESULTS.md); a collection without quantization ignores it.
RESCORE = qe.QuantizationSearchParams(rescore=True, oversampling=2.0)
AUTO_OPTIMIZE_POINTS = 20_000
FLUSH_INTERVAL_S = 2.0
SHARDS_DIR = "edge"
LOCK_FILE = ".lock"

_DISTANCE = {
    models.Distance.COSINE: qe.Distance.Cosine,
    models.Distance.DOT: qe.Distance.Dot,
    models.Distance.EUCLID: qe.Distance.Euclid,
    models.Distance.MANHATTAN: qe.Distance.Manhattan,
}
_DISTANCE_NAME = {"Cosine": models.Distance.COSINE, "Dot": models.Distance.DOT,
                  "Euclid": models.Distance.EUCLID, "Manhattan": models.Distance.MANHATTAN}
_SCHEMA = {
    models.PayloadSchemaType.KEYWORD: qe.PayloadSchemaType.Keyword,
    models.PayloadSchemaType.INTEGER: qe.PayloadSchemaType.Integer,
    models.PayloadSchemaType.FLOAT: qe.PayloadSchemaType.Float,
    models.PayloadSchemaType.BOOL: qe.PayloadSchemaType.Bool,
    models.PayloadSchemaType.DATETIME: qe.PayloadSchemaType.Datetime,
    models.PayloadSchemaType.TEXT: qe.PayloadSchemaType.Text,
    models.PayloadSchemaType.UUID: qe.PayloadSchemaType.Uuid,
    models.PayloadSchemaType.GEO: qe.PayloadSchemaType.Geo,
}
_SCHEMA_NAME = {v: k for k, v in _SCHEMA.items()}


class StoreLocked(RuntimeError):
    """Another client (in this or another process) has the folder open."""


# --- translation: qdrant-client models -> qdrant_edge --------------------------------------


def point_id(value: Any) -> int | str:
    """qdrant-client's id normalisation: ints stay, UUIDs in any spelling become the
    canonical lower-case hyphenated string."""
    if isinstance(value, bool):
        raise ValueError(f"invalid point id {value!r}")
    if isinstance(value, int):
        return value
    return str(uuid.UUID(str(value)))


def _out_id(value: Any) -> int | str:
    return value if isinstance(value, int) else str(value)


def _vector(value: Any) -> Any:
    if isinstance(value, models.SparseVector):
        return qe.SparseVector(indices=list(value.indices), values=list(value.values))
    if hasattr(value, "tolist"):
        return value.tolist()
    return list(value)


def _point(point: models.PointStruct) -> qe.Point:
    vector = point.vector
    if isinstance(vector, dict):
        out: Any = {name: _vector(v) for name, v in vector.items()}
    elif vector is None:
        out = {}
    else:
        out = _vector(vector)
    return qe.Point(point_id(point.id), out, dict(point.payload or {}))


def _match(match: Any) -> Any:
    if isinstance(match, models.MatchValue):
        return qe.MatchValue(value=match.value)
    if isinstance(match, models.MatchAny):
        return qe.MatchAny(any=list(match.any))
    if isinstance(match, models.MatchExcept):
        return qe.MatchExcept(except_=list(match.except_))
    if isinstance(match, models.MatchText):
        return qe.MatchText(text=match.text)
    raise NotImplementedError(f"match not translated: {type(match).__name__}")


def _condition(cond: Any) -> Any:
    if isinstance(cond, models.Filter):
        return to_filter(cond)
    if isinstance(cond, models.FieldCondition):
        if cond.match is not None:
            return qe.FieldCondition(key=cond.key, match=_match(cond.match))
        if cond.range is not None:
            r = cond.range
            if isinstance(r, models.DatetimeRange):
                raise NotImplementedError("datetime ranges are not translated")
            return qe.FieldCondition(key=cond.key, range=qe.RangeFloat(
                gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt))
        if cond.is_empty is not None:
            return qe.FieldCondition(key=cond.key, is_empty=cond.is_empty)
        if cond.is_null is not None:
            return qe.FieldCondition(key=cond.key, is_null=cond.is_null)
        raise NotImplementedError(f"field condition not translated: {cond!r}")
    if isinstance(cond, models.IsEmptyCondition):
        return qe.IsEmptyCondition(key=cond.is_empty.key)
    if isinstance(cond, models.IsNullCondition):
        return qe.IsNullCondition(key=cond.is_null.key)
    if isinstance(cond, models.HasIdCondition):
        return qe.HasIdCondition(point_ids={point_id(i) for i in cond.has_id})
    raise NotImplementedError(f"condition not translated: {type(cond).__name__}")


def to_filter(flt: models.Filter | None) -> qe.Filter | None:
    if flt is None:
        return None
    if flt.min_should is not None:
        raise NotImplementedError("min_should is not translated")

    def conds(items: Any) -> list[Any] | None:
        if items is None:
            return None
        return [_condition(c) for c in (items if isinstance(items, list) else [items])]

    return qe.Filter(must=conds(flt.must), should=conds(flt.should),
                     must_not=conds(flt.must_not))


def _both(a: models.Filter | None, b: models.Filter | None) -> models.Filter | None:
    if a is None or b is None:
        return a or b
    return models.Filter(must=[a, b])


def _with_payload(value: Any) -> Any:
    if isinstance(value, bool | list):
        return value
    if isinstance(value, models.PayloadSelectorInclude):
        return qe.PayloadSelector.Include(list(value.include))
    if isinstance(value, models.PayloadSelectorExclude):
        return qe.PayloadSelector.Exclude(list(value.exclude))
    raise NotImplementedError(f"with_payload not translated: {value!r}")


def _with_vectors(value: Any) -> Any:
    if isinstance(value, bool | list):
        return value
    raise NotImplementedError(f"with_vectors not translated: {value!r}")


def _params(params: models.SearchParams | None, default_ef: int | None) -> qe.SearchParams:
    if params is None:
        return qe.SearchParams(hnsw_ef=default_ef, quantization=RESCORE)
    quant = params.quantization
    return qe.SearchParams(
        hnsw_ef=params.hnsw_ef or default_ef, exact=bool(params.exact),
        indexed_only=bool(params.indexed_only),
        quantization=qe.QuantizationSearchParams(
            ignore=bool(quant.ignore), rescore=quant.rescore,
            oversampling=quant.oversampling) if quant is not None else RESCORE)


def _quantization(config: Any) -> Any:
    """qdrant-client's scalar quantization as the engine's (the only kind translated)."""
    if config is None:
        return None
    if not isinstance(config, models.ScalarQuantization):
        raise NotImplementedError(f"quantization not translated: {type(config).__name__}")
    scalar = config.scalar
    return qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=scalar.quantile,
                                       always_ram=scalar.always_ram)


def to_query(query: Any, using: str | None) -> Any:
    if query is None:
        return None
    if isinstance(query, models.NearestQuery):
        query = query.nearest
    if isinstance(query, models.RrfQuery):
        return qe.Fusion.Rrf(k=query.rrf.k or RRF_K, weights=query.rrf.weights)
    if isinstance(query, models.FusionQuery):
        if query.fusion == models.Fusion.DBSF:
            return qe.Fusion.Dbsf()
        return qe.Fusion.Rrf(k=RRF_K)
    if isinstance(query, models.SparseVector):
        return qe.Query.Nearest(_vector(query), using=using)
    if isinstance(query, list) or hasattr(query, "tolist"):
        return qe.Query.Nearest(_vector(query), using=using)
    raise NotImplementedError(f"query not translated: {type(query).__name__}")


# --- translation back: qdrant_edge -> qdrant-client models ---------------------------------


def _out_vector(vector: Any) -> Any:
    if vector is None:
        return None
    if isinstance(vector, dict):
        return {name: _out_vector(v) for name, v in vector.items()}
    if isinstance(vector, qe.SparseVector):
        return models.SparseVector(indices=list(vector.indices), values=list(vector.values))
    return list(vector)


# The engine's points become qdrant-client models without pydantic validation: their
# fields already have the model's types, and validating 50 hits with their 384-float
# vectors was ~1 ms of a hybrid search at 1M chunks (bench/serve_rss.py: p50 15.7 ms
# validated, 14.7 ms not).
def _record(r: Any) -> models.Record:
    return models.Record.model_construct(id=_out_id(r.id), payload=r.payload,
                                         vector=_out_vector(r.vector), shard_key=None,
                                         order_value=None)


def _scored(p: Any) -> models.ScoredPoint:
    return models.ScoredPoint.model_construct(id=_out_id(p.id), version=p.version,
                                              score=p.score, payload=p.payload,
                                              vector=_out_vector(p.vector), shard_key=None,
                                              order_value=None)


def _done() -> models.UpdateResult:
    return models.UpdateResult(operation_id=0, status=models.UpdateStatus.COMPLETED)


# --- the client ---------------------------------------------------------------------------


class EdgeClient:
    """`QdrantClient`'s methods that medcite uses, on one `EdgeShard` per collection."""

    def __init__(self, path: str | Path, *, hnsw_ef: int | None = DEFAULT_HNSW_EF,
                 auto_optimize_points: int = AUTO_OPTIMIZE_POINTS) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.root = self.path / SHARDS_DIR
        self.hnsw_ef = hnsw_ef
        self.auto_optimize_points = auto_optimize_points
        self._lock = threading.RLock()
        self._shards: dict[str, qe.EdgeShard] = {}
        self._pending: dict[str, int] = {}  # points written since the last optimize
        self._filter_cache: dict[int, tuple[models.Filter, Any]] = {}
        self._dirty: set[str] = set()
        self._flushed_at = time.monotonic()
        self._lockfile = lock_folder(self.path)
        self._closed = False

    # Collections ------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid collection name {name!r}")
        return self.root / name

    def _shard(self, name: str) -> qe.EdgeShard:
        if self._closed:
            raise RuntimeError("the store client is closed")
        shard = self._shards.get(name)
        if shard is None:
            path = self._dir(name)
            if not (path / "edge_config.json").exists():
                raise ValueError(f"Collection {name} not found")
            shard = qe.EdgeShard.load(str(path))
            self._shards[name] = shard
            info = shard.info()
            self._pending[name] = max(0, info.points_count - info.indexed_vectors_count)
        return shard

    def collection_exists(self, collection_name: str) -> bool:
        with self._lock:
            return (self._dir(collection_name) / "edge_config.json").exists()

    def get_collections(self) -> models.CollectionsResponse:
        with self._lock:
            names = sorted(p.parent.name for p in self.root.glob("*/edge_config.json"))
        return models.CollectionsResponse(
            collections=[models.CollectionDescription(name=n) for n in names])

    def create_collection(
        self, collection_name: str, vectors_config: Any = None, *,
        sparse_vectors_config: dict[str, models.SparseVectorParams] | None = None,
        hnsw_config: models.HnswConfigDiff | None = None,
        on_disk_payload: bool | None = None,
        quantization_config: models.ScalarQuantization | None = None, **_: Any,
    ) -> bool:
        dense: dict[str, qe.EdgeVectorParams] = {}
        named = vectors_config if isinstance(vectors_config, dict) else (
            {"": vectors_config} if vectors_config is not None else {})
        for name, params in named.items():
            memory = qe.Memory.Cold if params.on_disk else None
            dense[name] = qe.EdgeVectorParams(size=params.size,
                                              distance=_DISTANCE[params.distance],
                                              memory=memory)
        sparse = {}
        for name, params in (sparse_vectors_config or {}).items():
            modifier = qe.Modifier.Idf if params.modifier == models.Modifier.IDF else None
            sparse[name] = qe.EdgeSparseVectorParams(modifier=modifier)
        hnsw = hnsw_config or models.HnswConfigDiff()
        config = qe.EdgeConfig(
            vectors=dense or None, sparse_vectors=sparse or None,
            hnsw_config=qe.HnswIndexConfig(
                m=hnsw.m or HNSW_M, ef_construct=hnsw.ef_construct or HNSW_EF_CONSTRUCT,
                full_scan_threshold=hnsw.full_scan_threshold or FULL_SCAN_KB),
            payload_memory=qe.Memory.Cold if on_disk_payload else qe.Memory.Cached,
            quantization_config=_quantization(quantization_config),
        )
        with self._lock:
            if self.collection_exists(collection_name):
                raise ValueError(f"Collection {collection_name} already exists")
            path = self._dir(collection_name)
            self.root.mkdir(parents=True, exist_ok=True)
            self._shards[collection_name] = qe.EdgeShard.create(str(path), config)
            self._pending[collection_name] = 0
        return True

    def delete_collection(self, collection_name: str, **_: Any) -> bool:
        with self._lock:
            shard = self._shards.pop(collection_name, None)
            if shard is not None:
                shard.close()
            self._pending.pop(collection_name, None)
            self._dirty.discard(collection_name)
            path = self._dir(collection_name)
            if not path.exists():
                return False
            shutil.rmtree(path)
            return True

    def get_collection(self, collection_name: str) -> models.CollectionInfo:
        with self._lock:
            shard = self._shard(collection_name)
            info = shard.info()
            config = json.loads((self._dir(collection_name) / "edge_config.json").read_text())
        vectors = {name: models.VectorParams(size=v["size"], distance=_DISTANCE_NAME[v["distance"]])
                   for name, v in (config.get("vectors") or {}).items()}
        sparse = {name: models.SparseVectorParams(
                      modifier=models.Modifier.IDF if v.get("modifier") == "idf" else None)
                  for name, v in (config.get("sparse_vectors") or {}).items()}
        hnsw = config.get("hnsw_config") or {}
        schema = {key: models.PayloadIndexInfo(data_type=_SCHEMA_NAME[idx.data_type],
                                               points=idx.points)
                  for key, idx in info.payload_schema.items() if idx.data_type in _SCHEMA_NAME}
        return models.CollectionInfo(
            status=models.CollectionStatus.GREEN,
            optimizer_status=models.OptimizersStatusOneOf.OK,
            points_count=info.points_count, indexed_vectors_count=info.indexed_vectors_count,
            segments_count=info.segments_count,
            config=models.CollectionConfig(
                params=models.CollectionParams(
                    vectors=vectors.get("") if set(vectors) == {""} else vectors,
                    sparse_vectors=sparse or None),
                hnsw_config=models.HnswConfig(
                    m=hnsw.get("m", HNSW_M),
                    ef_construct=hnsw.get("ef_construct", HNSW_EF_CONSTRUCT),
                    full_scan_threshold=hnsw.get("full_scan_threshold", FULL_SCAN_KB)),
                optimizer_config=models.OptimizersConfig(default_segment_number=0,
                                                         flush_interval_sec=int(FLUSH_INTERVAL_S)),
            ),
            payload_schema=schema,
        )

    def create_payload_index(
        self, collection_name: str, field_name: str, field_schema: Any = None, **_: Any
    ) -> models.UpdateResult:
        if isinstance(field_schema, str):
            field_schema = models.PayloadSchemaType(field_schema)
        if not isinstance(field_schema, models.PayloadSchemaType):
            field_schema = models.PayloadSchemaType(field_schema.type)
        return self._update(collection_name, qe.UpdateOperation.create_field_index(
            field_name, _SCHEMA[field_schema]))

    # Writes -----------------------------------------------------------------------------

    def _update(self, name: str, op: qe.UpdateOperation, written: int = 0) -> models.UpdateResult:
        with self._lock:
            shard = self._shard(name)
            shard.update(op)
            self._dirty.add(name)
            self._pending[name] = self._pending.get(name, 0) + written
            if self.auto_optimize_points and self._pending[name] >= self.auto_optimize_points:
                self._optimize(name)
            if time.monotonic() - self._flushed_at >= FLUSH_INTERVAL_S:
                self.flush()
        return _done()

    def upsert(self, collection_name: str, points: Any, wait: bool = True,
               **_: Any) -> models.UpdateResult:
        if isinstance(points, models.Batch):
            raise NotImplementedError("upsert of a Batch is not translated; pass PointStructs")
        edge = [_point(p) for p in points]
        return self._update(collection_name, qe.UpdateOperation.upsert_points(edge),
                            written=len(edge))

    @staticmethod
    def _selector(points: Any) -> tuple[list[int | str] | None, qe.Filter | None]:
        if isinstance(points, models.FilterSelector):
            return None, to_filter(points.filter)
        if isinstance(points, models.Filter):
            return None, to_filter(points)
        if isinstance(points, models.PointIdsList):
            return [point_id(i) for i in points.points], None
        if isinstance(points, Iterable) and not isinstance(points, str | bytes):
            return [point_id(i) for i in points], None
        raise NotImplementedError(f"points selector not translated: {points!r}")

    def delete(self, collection_name: str, points_selector: Any, wait: bool = True,
               **_: Any) -> models.UpdateResult:
        ids, flt = self._selector(points_selector)
        op = (qe.UpdateOperation.delete_points(ids) if ids is not None
              else qe.UpdateOperation.delete_points_by_filter(flt))
        return self._update(collection_name, op)

    def set_payload(self, collection_name: str, payload: dict[str, Any], points: Any,
                    key: str | None = None, wait: bool = True, **_: Any) -> models.UpdateResult:
        ids, flt = self._selector(points)
        op = (qe.UpdateOperation.set_payload(ids, payload, key) if ids is not None
              else qe.UpdateOperation.set_payload_by_filter(flt, payload, key))
        return self._update(collection_name, op)

    def overwrite_payload(self, collection_name: str, payload: dict[str, Any], points: Any,
                          wait: bool = True, **_: Any) -> models.UpdateResult:
        ids, flt = self._selector(points)
        op = (qe.UpdateOperation.overwrite_payload(ids, payload) if ids is not None
              else qe.UpdateOperation.overwrite_payload_by_filter(flt, payload))
        return self._update(collection_name, op)

    def delete_payload(self, collection_name: str, keys: Sequence[str], points: Any,
                       wait: bool = True, **_: Any) -> models.UpdateResult:
        ids, flt = self._selector(points)
        op = (qe.UpdateOperation.delete_payload(ids, list(keys)) if ids is not None
              else qe.UpdateOperation.delete_payload_by_filter(flt, list(keys)))
        return self._update(collection_name, op)

    # Reads ------------------------------------------------------------------------------

    def count(self, collection_name: str, count_filter: models.Filter | None = None,
              exact: bool = True, **_: Any) -> models.CountResult:
        request = qe.CountRequest(exact=True, filter=to_filter(count_filter))
        with self._lock:
            return models.CountResult(count=self._shard(collection_name).count(request))

    def scroll(
        self, collection_name: str, scroll_filter: models.Filter | None = None,
        limit: int = 10, offset: Any = None, with_payload: Any = True,
        with_vectors: Any = False, order_by: Any = None, **_: Any,
    ) -> tuple[list[models.Record], Any]:
        if order_by is not None:
            raise NotImplementedError("scroll order_by is not translated")
        request = qe.ScrollRequest(
            offset=None if offset is None else point_id(offset), limit=limit,
            filter=to_filter(scroll_filter), with_payload=_with_payload(with_payload),
            with_vector=_with_vectors(with_vectors))
        with self._lock:
            records, next_offset = self._shard(collection_name).scroll(request)
        return ([_record(r) for r in records],
                None if next_offset is None else _out_id(next_offset))

    def retrieve(self, collection_name: str, ids: Sequence[Any], with_payload: Any = True,
                 with_vectors: Any = False, **_: Any) -> list[models.Record]:
        wanted = [point_id(i) for i in ids]
        with self._lock:
            records = self._shard(collection_name).retrieve(
                wanted, with_payload=_with_payload(with_payload),
                with_vector=_with_vectors(with_vectors))
        return [_record(r) for r in records]

    def facet(self, collection_name: str, key: str, facet_filter: models.Filter | None = None,
              limit: int = 10, exact: bool = False, **_: Any) -> models.FacetResponse:
        request = qe.FacetRequest(key=key, limit=limit, exact=exact,
                                  filter=to_filter(facet_filter))
        with self._lock:
            hits = self._shard(collection_name).facet(request).hits
        return models.FacetResponse(
            hits=[models.FacetValueHit(value=h.value, count=h.count) for h in hits])

    def _prefetch(self, p: models.Prefetch, outer: models.Filter | None,
                  translated: qe.Filter | None) -> qe.Prefetch:
        # A server propagates the query's filter into every prefetch; so does this,
        # explicitly, together with the prefetch's own filter. A prefetch without one
        # shares the query's translation (`translated`): the versions filter holds
        # hundreds of ids, translated once per search, not once per arm.
        nested = p.prefetch if isinstance(p.prefetch, list) else (
            [p.prefetch] if p.prefetch else [])
        flt = _both(outer, p.filter)
        own = translated if p.filter is None else to_filter(flt)
        return qe.Prefetch(
            limit=p.limit if p.limit is not None else 10,
            query=to_query(p.query, p.using),
            prefetches=[self._prefetch(n, flt, own) for n in nested] or None,
            params=_params(p.params, self.hnsw_ef), filter=own,
            score_threshold=p.score_threshold)

    def query_points(
        self, collection_name: str, query: Any = None, *, using: str | None = None,
        prefetch: models.Prefetch | list[models.Prefetch] | None = None,
        query_filter: models.Filter | None = None,
        search_params: models.SearchParams | None = None, limit: int = 10,
        offset: int | None = None, with_payload: Any = True, with_vectors: Any = False,
        score_threshold: float | None = None, **_: Any,
    ) -> QueryResponse:
        prefetches = prefetch if isinstance(prefetch, list) else (
            [prefetch] if prefetch else [])
        if query is None and not prefetches:
            raise NotImplementedError("a query without a vector or prefetch is not translated")
        translated = self._translated(query_filter)
        request = qe.QueryRequest(
            limit=limit, offset=offset, query=to_query(query, using),
            prefetches=[self._prefetch(p, query_filter, translated)
                        for p in prefetches] or None,
            # With prefetches the filter is in every one of them, so what they return
            # already passes it. The engine plans a filter each time it meets one (with
            # a versions filter of 5,000 ids, ~7 ms a search at 1M chunks,
            # bench/RESULTS.md): it is not given to the fusion a second time.
            filter=None if prefetches else translated,
            with_payload=_with_payload(with_payload),
            with_vector=_with_vectors(with_vectors), score_threshold=score_threshold,
            params=_params(search_params, self.hnsw_ef))
        with self._lock:
            points = self._shard(collection_name).query(request)
        return QueryResponse(points=[_scored(p) for p in points])

    def _translated(self, flt: models.Filter | None) -> qe.Filter | None:
        """`to_filter`, remembered for the filter objects a caller passes again (the
        search reuses one per versions view and access groups): a versions filter of
        5,000 ids took ~1.3 ms to translate. Kept by identity, with the object itself
        so that its id is not reused; filters are not changed after they are built."""
        if flt is None:
            return None
        hit = self._filter_cache.get(id(flt))
        if hit is not None and hit[0] is flt:
            return hit[1]
        if len(self._filter_cache) >= 64:
            self._filter_cache.clear()
        translated = to_filter(flt)
        self._filter_cache[id(flt)] = (flt, translated)
        return translated

    # Maintenance ------------------------------------------------------------------------

    def _optimize(self, name: str) -> None:
        self._shards[name].optimize()
        self._pending[name] = 0

    def optimize(self, collection_name: str | None = None) -> None:
        """Build HNSW graphs and merge segments now (blocking)."""
        with self._lock:
            names = [collection_name] if collection_name else [
                d.name for d in self.get_collections().collections]
            for name in names:
                self._shard(name)
                if self._pending.get(name):
                    self._optimize(name)

    def flush(self) -> None:
        with self._lock:
            for name in sorted(self._dirty):
                if name in self._shards:
                    self._shards[name].flush()
            self._dirty.clear()
            self._flushed_at = time.monotonic()

    def settle(self) -> None:
        """After a batch of writes: index what was written and persist it."""
        with self._lock:
            self.optimize()
            self.flush()

    def snapshot(self, dest_dir: Path) -> list[Path]:
        """Each collection's shard folder as `<name>.edge.tar`, taken after a flush and
        under the client lock, so no write lands while it is copied.

        (qdrant-edge's own snapshot API applies snapshots a Qdrant server made:
        `unpack_snapshot` / `update_from_snapshot`; it does not create them.)"""
        out: list[Path] = []
        with self._lock:
            self.flush()
            for desc in self.get_collections().collections:
                self._shard(desc.name).flush()
                target = dest_dir / f"{desc.name}.edge.tar"
                with tarfile.open(target, "w") as tar:
                    tar.add(self._dir(desc.name), arcname=desc.name)
                out.append(target)
        return out

    @staticmethod
    def restore(path: Path, archives: Sequence[Path]) -> list[str]:
        """Replace the shards under `path` by those in `archives` (made by `snapshot`).
        The folder must not be open: its lock is taken for the duration."""
        lock = lock_folder(path)
        try:
            root = path / SHARDS_DIR
            staging = path / f"{SHARDS_DIR}.restoring"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            names = []
            for archive in archives:
                with tarfile.open(archive) as tar:
                    tar.extractall(staging, filter="data")
                names.append(archive.name.removesuffix(".edge.tar"))
            if root.exists():
                shutil.rmtree(root)
            staging.rename(root)
            return names
        finally:
            unlock_folder(lock)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
                for shard in self._shards.values():
                    shard.close()
            finally:
                self._shards.clear()
                self._closed = True
                unlock_folder(self._lockfile)

    def __del__(self) -> None:  # pragma: no cover - best effort, like QdrantClient
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass


def lock_folder(path: Path) -> int:
    """An exclusive flock on `<path>/.lock` (qdrant-client local mode's lock file), or
    `StoreLocked`. Released by `unlock_folder` or when the process dies."""
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise StoreLocked(f"storage folder {path} is already accessed by another "
                          "instance of the store") from exc
    return fd


def unlock_folder(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
