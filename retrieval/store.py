"""The Qdrant collection: opening the client (embedded or server) and its schema.

One collection holds every passage. Vectors are named so a sparse lexical vector can
join the dense one in the same points later (hybrid search).
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any, Protocol

from qdrant_client import QdrantClient, models

from retrieval.schema import INTEGER_FIELDS, KEYWORD_FIELDS

DENSE = "dense"
SPARSE = "lexical"


class StoreUnavailable(RuntimeError):
    pass


class StoreSettings(Protocol):
    """Where the store lives; the application's settings object satisfies it."""

    @property
    def qdrant_url(self) -> str | None: ...

    @property
    def qdrant_api_key(self) -> str | None: ...

    @property
    def resolved_qdrant_path(self) -> Path: ...


def open_client(settings: StoreSettings) -> QdrantClient:
    if settings.qdrant_url:
        return QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=30)
    path: Path = settings.resolved_qdrant_path
    path.mkdir(parents=True, exist_ok=True)
    try:
        client = QdrantClient(path=str(path))
    except RuntimeError as exc:
        # Embedded Qdrant takes a file lock: only one process may open the folder.
        raise StoreUnavailable(
            f"the embedded Qdrant storage at {path} is in use by another process "
            "(is `medcite serve` running?). Stop it, or run Qdrant as a server and set "
            f"QDRANT_URL. ({exc})"
        ) from exc
    # The embedded engine is not thread-safe, and the API's request threads and an
    # upload's ingest job share one client: serialise every call into it.
    client._client = _Serialised(client._client)  # type: ignore[attr-defined]
    return client


class _Serialised:
    """Forwards every method call to `inner` under one re-entrant lock."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


def ensure_collection(client: QdrantClient, name: str, dim: int) -> None:
    if client.collection_exists(name):
        info = client.get_collection(name)
        vectors = info.config.params.vectors
        size = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
        sparse = info.config.params.sparse_vectors or {}
        if size != dim or SPARSE not in sparse:
            if count(client, name) == 0:
                client.delete_collection(name)
                return ensure_collection(client, name, dim)
            raise StoreUnavailable(
                f"collection {name!r} was built for another schema ({size}-dimensional "
                f"dense vectors, sparse: {sorted(sparse)}; this version needs {dim} and "
                f"{SPARSE!r}); run `medcite ingest --rebuild` or set MEDCITE_COLLECTION"
            )
        return
    client.create_collection(
        collection_name=name,
        vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
        # IDF is computed by Qdrant over the collection, so sparse values carry only TF.
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    with warnings.catch_warnings():
        # Embedded Qdrant ignores payload indexes (and says so); a server uses them.
        warnings.simplefilter("ignore", UserWarning)
        for field in KEYWORD_FIELDS:
            client.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
        for field in INTEGER_FIELDS:
            client.create_payload_index(name, field, models.PayloadSchemaType.INTEGER)


def count(client: QdrantClient, name: str, flt: models.Filter | None = None) -> int:
    if not client.collection_exists(name):
        return 0
    return client.count(name, count_filter=flt, exact=True).count


def match(field: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=field, match=models.MatchValue(value=value))


def match_any(field: str, values: list[str]) -> models.FieldCondition:
    return models.FieldCondition(key=field, match=models.MatchAny(any=values))
