"""The vector store: opening the client (an embedded engine or a server), its schema, and
snapshots of it.

Three engines answer the same `QdrantClient` calls (one interface, qdrant-client's
`models` types in and out; `tests/retrieval/test_store_congruence.py` compares them):

- `QDRANT_URL` set: `QdrantClient(url=...)` against a Qdrant server or cluster.
- `MEDCITE_VECTOR_ENGINE=edge` (the default): Qdrant's own engine in process
  (`qdrant-edge-py`, `retrieval/engines/edge.py`) in `<data>/qdrant/edge/`.
- `MEDCITE_VECTOR_ENGINE=local`: qdrant-client's local mode (`QdrantClient(path=...)`,
  pure Python, every query scans every point) in `<data>/qdrant/`.

A folder written by local mode is migrated to the edge engine when the edge engine first
opens it (`migrate_local_mode`); the old files are kept in `<data>/qdrant/local-mode-backup`.

One collection holds every passage. Vectors are named so a sparse lexical vector joins
the dense one in the same points (hybrid search).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from qdrant_client import QdrantClient, models

from retrieval.engines.edge import EdgeClient, StoreLocked
from retrieval.schema import INTEGER_FIELDS, KEYWORD_FIELDS

log = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "lexical"

VectorEngine = Literal["edge", "local"]
DEFAULT_ENGINE: VectorEngine = "edge"
# Where the edge engine keeps a local-mode folder it migrated (and one being migrated).
LOCAL_BACKUP = "local-mode-backup"
LOCAL_MIGRATING = "local-mode.migrating"


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

    @property
    def vector_engine(self) -> VectorEngine: ...


def engine_name(settings: StoreSettings) -> str:
    """"server", "edge" or "local": which engine `open_client` opens for `settings`."""
    if settings.qdrant_url:
        return "server"
    return getattr(settings, "vector_engine", DEFAULT_ENGINE) or DEFAULT_ENGINE


def _in_use(path: Path, exc: Exception) -> StoreUnavailable:
    # Embedded engines take a file lock: only one process may open the folder.
    return StoreUnavailable(
        f"the embedded Qdrant storage at {path} is in use by another process "
        "(is `medcite serve` running?). Stop it, or run Qdrant as a server and set "
        f"QDRANT_URL. ({exc})"
    )


def open_client(settings: StoreSettings) -> Any:
    """A `QdrantClient`, or an `EdgeClient` answering the same calls."""
    engine = engine_name(settings)
    if engine == "server":
        return QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=30)
    path: Path = settings.resolved_qdrant_path
    path.mkdir(parents=True, exist_ok=True)
    if engine == "edge":
        try:
            edge = EdgeClient(path)
        except StoreLocked as exc:
            raise _in_use(path, exc) from exc
        try:
            migrate_local_mode(path, edge)
        except Exception as exc:
            edge.close()
            raise StoreUnavailable(
                f"the store at {path} was written by qdrant-client's local mode and could "
                f"not be migrated to the edge engine ({exc}). Nothing was deleted: run "
                "`medcite ingest --rebuild` to rebuild it with the edge engine, or set "
                "MEDCITE_VECTOR_ENGINE=local to keep using local mode."
            ) from exc
        return edge
    if engine != "local":
        raise StoreUnavailable(f"unknown vector engine {engine!r} (edge or local)")
    if _has_edge_data(path) and not _has_local_data(path):
        raise StoreUnavailable(
            f"the store at {path} was written by the edge engine "
            f"(MEDCITE_VECTOR_ENGINE=edge); local mode cannot read it. Set "
            "MEDCITE_VECTOR_ENGINE=edge, or move a local-mode folder (e.g. "
            f"{path / LOCAL_BACKUP}) back in place."
        )
    try:
        client = QdrantClient(path=str(path))
    except RuntimeError as exc:
        raise _in_use(path, exc) from exc
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


def settle(client: Any) -> None:
    """After a batch of writes (an ingest run): let the engine index and persist them.
    The edge engine builds its HNSW graphs here; the others need nothing."""
    if isinstance(client, EdgeClient):
        client.settle()


# --- migration: local mode -> edge ---------------------------------------------------------


def store_present(path: Path) -> bool:
    """Whether an embedded store (either engine's files) is in the folder `path`."""
    return _has_local_data(path) or _has_edge_data(path)


def _has_local_data(path: Path) -> bool:
    return (path / "meta.json").exists() or (path / "collection").is_dir()


def _has_edge_data(path: Path) -> bool:
    return any((path / "edge").glob("*/edge_config.json"))


def migrate_local_mode(path: Path, client: EdgeClient) -> list[str]:
    """Copy every collection of a local-mode folder at `path` into the edge engine: the
    points with their vectors and payloads, the collection's vector parameters, the
    product's payload indexes. The local-mode files are first moved aside (to
    `local-mode.migrating`, so a crash mid-way redoes the migration at the next start)
    and kept, once every count matched, as `local-mode-backup`. Returns the collections
    migrated."""
    migrating = path / LOCAL_MIGRATING
    if _has_local_data(path):
        migrating.mkdir(exist_ok=True)
        for name in ("meta.json", "collection"):
            if (path / name).exists():
                (path / name).rename(migrating / name)
    if not migrating.exists():
        return []
    started = time.perf_counter()
    old = QdrantClient(path=str(migrating))
    names: list[str] = []
    try:
        for desc in old.get_collections().collections:
            name = desc.name
            if client.collection_exists(name):  # a partial copy from an interrupted run
                client.delete_collection(name)
            params = old.get_collection(name).config.params
            client.create_collection(name, vectors_config=params.vectors,
                                     sparse_vectors_config=params.sparse_vectors)
            _create_indexes(client, name)
            offset = None
            while True:
                records, offset = old.scroll(name, limit=1024, offset=offset,
                                             with_payload=True, with_vectors=True)
                if records:
                    client.upsert(name, points=[
                        models.PointStruct(id=r.id, vector=r.vector or {}, payload=r.payload)
                        for r in records])
                if offset is None:
                    break
            want, got = old.count(name, exact=True).count, client.count(name).count
            if want != got:
                raise StoreUnavailable(f"collection {name!r}: {got} of {want} points copied")
            names.append(name)
    finally:
        old.close()
    client.settle()
    backup = path / LOCAL_BACKUP
    if backup.exists():
        backup = path / f"{LOCAL_BACKUP}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    migrating.rename(backup)
    (backup / "MIGRATED.txt").write_text(
        f"Migrated to the edge engine ({path / 'edge'}) on "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}: {', '.join(names) or 'nothing'}.\n"
        "This is the old qdrant-client local-mode store, kept untouched. To use it again:\n"
        f"move meta.json and collection/ back to {path} and set MEDCITE_VECTOR_ENGINE=local.\n"
    )
    log.warning("migrated the local-mode store to the edge engine",
                extra={"collections": names, "backup": str(backup),
                       "seconds": round(time.perf_counter() - started, 1)})
    return names


def _create_indexes(client: Any, name: str) -> None:
    with warnings.catch_warnings():
        # Local mode ignores payload indexes (and says so); the others use them.
        warnings.simplefilter("ignore", UserWarning)
        for field in KEYWORD_FIELDS:
            client.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
        for field in INTEGER_FIELDS:
            client.create_payload_index(name, field, models.PayloadSchemaType.INTEGER)


# int8 copies of the dense vectors, searched first (a quarter of the memory and bandwidth),
# the best candidates then rescored with the originals.
QUANTIZATION = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
    type=models.ScalarType.INT8, quantile=0.99, always_ram=True))


def ensure_collection(client: Any, name: str, dim: int, *, quantize: bool = False) -> None:
    if client.collection_exists(name):
        info = client.get_collection(name)
        vectors = info.config.params.vectors
        size = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
        sparse = info.config.params.sparse_vectors or {}
        if size != dim or SPARSE not in sparse:
            if count(client, name) == 0:
                client.delete_collection(name)
                return ensure_collection(client, name, dim, quantize=quantize)
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
        quantization_config=QUANTIZATION if quantize else None,
    )
    _create_indexes(client, name)


def count(client: Any, name: str, flt: models.Filter | None = None) -> int:
    if not client.collection_exists(name):
        return 0
    return client.count(name, count_filter=flt, exact=True).count


# More distinct drug keys than any formulary names (the shipped ones: ~1,500).
MAX_DRUG_KEYS = 100_000


def drug_keys(client: Any, name: str, flt: models.Filter | None = None) -> frozenset[str]:
    """Every value of the payload's `drugs` field in the collection (a facet over its
    keyword index), e.g. to recognise a formulary's products in a question."""
    if not client.collection_exists(name):
        return frozenset()
    response = client.facet(name, key="drugs", facet_filter=flt, limit=MAX_DRUG_KEYS,
                            exact=True)
    return frozenset(str(h.value) for h in response.hits)


def match(field: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=field, match=models.MatchValue(value=value))


def match_any(field: str, values: list[str]) -> models.FieldCondition:
    return models.FieldCondition(key=field, match=models.MatchAny(any=values))


# Snapshots (`medcite backup` / `medcite restore`) -----------------------------------------

SNAPSHOT_SUFFIX = ".snapshot"
EDGE_SUFFIX = ".edge.tar"


def snapshot_store(client: QdrantClient, dest_dir: Path) -> list[Path]:
    """Write a point-in-time copy of every collection under `dest_dir`; return the files.

    Embedded: the folder's `meta.json` and each collection's `storage.sqlite`, copied
    while holding the client's lock (every call into the embedded engine takes it, so no
    write lands mid-copy), each SQLite file through SQLite's online backup. Server: one
    Qdrant snapshot per collection (`<name>.snapshot`), made by the server's snapshot API
    and downloaded."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(client, EdgeClient):
        # Each collection's shard folder as `<name>.edge.tar`, after a flush, under the
        # client's lock (qdrant-edge has no snapshot-making call of its own: its
        # snapshot API applies snapshots a Qdrant server made).
        return client.snapshot(dest_dir)
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

    if _has_edge_data(path):
        return _snapshot_edge_path(path, dest_dir)
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
    shards = sorted(src_dir.glob(f"*{EDGE_SUFFIX}"))
    if shards and not settings.qdrant_url:
        # The edge engine's snapshot: its shard folders, into a folder holding no store.
        dest = settings.resolved_qdrant_path
        if _has_edge_data(dest) or _has_local_data(dest):
            raise StoreUnavailable(f"{dest} already holds a store; restore into an empty folder")
        try:
            EdgeClient.restore(dest, shards)
        except StoreLocked as exc:
            raise _in_use(dest, exc) from exc
        return
    if shards:
        raise StoreUnavailable(f"{src_dir} holds an embedded (edge engine) store: restore it "
                               "without QDRANT_URL")
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


def _snapshot_edge_path(path: Path, dest_dir: Path) -> list[Path]:
    """The edge engine's folder, opened for the copy: its shard files are consistent
    only with no writer, so a folder another process holds is refused."""
    try:
        client = EdgeClient(path)
    except StoreLocked as exc:
        raise StoreUnavailable(
            f"the embedded store at {path} is open in another process (is `medcite serve` "
            "running?): the edge engine's files can only be copied by the process that "
            "holds them; stop it, or back up through it") from exc
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        return client.snapshot(dest_dir)
    finally:
        client.close()


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
