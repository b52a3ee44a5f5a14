"""The Qdrant collection: opening the client (embedded or server) and its schema.

One collection holds every passage. Vectors are named so a sparse lexical vector can
join the dense one in the same points later (hybrid search).
"""

from __future__ import annotations

import json
import shutil
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


# Snapshots (`medcite backup` / `medcite restore`) -----------------------------------------

SNAPSHOT_SUFFIX = ".snapshot"


def snapshot_store(client: QdrantClient, dest_dir: Path) -> list[Path]:
    """Write a point-in-time copy of every collection under `dest_dir`; return the files.

    Embedded: the folder's `meta.json` and each collection's `storage.sqlite`, copied
    while holding the client's lock (every call into the embedded engine takes it, so no
    write lands mid-copy), each SQLite file through SQLite's online backup. Server: one
    Qdrant snapshot per collection (`<name>.snapshot`), made by the server's snapshot API
    and downloaded."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    inner = client._client  # type: ignore[attr-defined]
    if isinstance(inner, _Serialised):
        with inner._lock:
            return snapshot_store_path(Path(inner.location), dest_dir)
    location = getattr(inner, "location", None)
    if location is not None and location != ":memory:" and not hasattr(inner, "rest_uri"):
        return snapshot_store_path(Path(location), dest_dir)
    return _snapshot_server(client, dest_dir)


def snapshot_store_path(path: Path, dest_dir: Path) -> list[Path]:
    """Copy an embedded store's folder without opening it, for when another process (a
    running `medcite serve`) holds it. Each collection is one SQLite file, read through
    SQLite's online backup, so each is a consistent copy even while the other process
    writes; `meta.json` is only ever replaced whole."""
    import sqlite3

    meta = path / "meta.json"
    if not meta.is_file():
        raise StoreUnavailable(f"no embedded Qdrant store at {path} (no meta.json)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = [dest_dir / "meta.json"]
    out[0].write_bytes(meta.read_bytes())
    collections = json.loads(out[0].read_text()).get("collections", {})
    for name in sorted(collections):
        src = path / "collection" / name / "storage.sqlite"
        if not src.is_file():
            continue  # an empty collection has no points file yet
        dest = dest_dir / "collection" / name / "storage.sqlite"
        dest.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=60)
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        out.append(dest)
    return out


def restore_store(src_dir: Path, settings: StoreSettings) -> None:
    """Put a `snapshot_store` copy back where `settings` say the store lives.

    Embedded: the files go into the (new or empty) store folder; refuses a folder that
    holds a store, so nothing is overwritten. Server: each `<name>.snapshot` is uploaded
    to the server, which replaces that collection with it."""
    snapshots = sorted(src_dir.glob(f"*{SNAPSHOT_SUFFIX}"))
    if settings.qdrant_url:
        if not snapshots:
            raise StoreUnavailable(f"{src_dir} holds no server snapshot (*{SNAPSHOT_SUFFIX})")
        for snap in snapshots:
            _upload_snapshot(settings, snap.name[: -len(SNAPSHOT_SUFFIX)], snap)
        return
    if snapshots:
        raise StoreUnavailable(
            f"{src_dir} holds Qdrant server snapshots: restore them with QDRANT_URL set")
    if not (src_dir / "meta.json").is_file():
        raise StoreUnavailable(f"{src_dir} holds no embedded store snapshot (no meta.json)")
    dest = settings.resolved_qdrant_path
    if dest.exists() and any(p.name != ".lock" for p in dest.iterdir()):
        raise StoreUnavailable(f"{dest} already holds a store; restore into an empty folder")
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted(src_dir.rglob("*")):
        if src.is_file():
            target = dest / src.relative_to(src_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)


def _rest(client_or_settings: Any) -> tuple[str, dict[str, str]]:
    if isinstance(client_or_settings, QdrantClient):
        inner = client_or_settings._client  # type: ignore[attr-defined]
        return str(inner.rest_uri).rstrip("/"), dict(inner._rest_headers)
    headers = {"api-key": client_or_settings.qdrant_api_key} \
        if client_or_settings.qdrant_api_key else {}
    return str(client_or_settings.qdrant_url).rstrip("/"), headers


def _snapshot_server(client: QdrantClient, dest_dir: Path) -> list[Path]:
    import httpx

    base, headers = _rest(client)
    out = []
    for collection in client.get_collections().collections:
        name = collection.name
        snap = client.create_snapshot(name, wait=True)
        if snap is None:
            raise StoreUnavailable(f"Qdrant made no snapshot of {name!r}")
        dest = dest_dir / f"{name}{SNAPSHOT_SUFFIX}"
        try:
            with httpx.stream("GET", f"{base}/collections/{name}/snapshots/{snap.name}",
                              headers=headers, timeout=600) as resp:
                resp.raise_for_status()
                with dest.open("wb") as handle:
                    for block in resp.iter_bytes(1 << 20):
                        handle.write(block)
        finally:
            client.delete_snapshot(name, snap.name, wait=True)
        out.append(dest)
    return out


def _upload_snapshot(settings: StoreSettings, name: str, snap: Path) -> None:
    import httpx

    base, headers = _rest(settings)
    with snap.open("rb") as handle:
        resp = httpx.post(
            f"{base}/collections/{name}/snapshots/upload",
            params={"priority": "snapshot", "wait": "true"}, headers=headers,
            files={"snapshot": (snap.name, handle, "application/octet-stream")}, timeout=3600,
        )
    if resp.status_code >= 400:
        raise StoreUnavailable(
            f"Qdrant refused the snapshot of {name!r}: {resp.status_code} {resp.text[:200]}")
