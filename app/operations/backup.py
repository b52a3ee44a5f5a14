"""`medcite backup` and `medcite restore`: one archive holding everything a data folder
needs to answer again as it did, with a manifest and the SHA-256 of every part.

Parts: the vector store (`retrieval.store.snapshot_store`: the embedded folder, or Qdrant
snapshots in server mode), the document catalog and the audit log (SQLite's online backup:
a consistent copy while the API writes), the API keys and the local key, and the corpus
folder's `manifest.toml`. PostgreSQL databases are not copied: `pg_dump` them (the
manifest and the command's output say so).

Consistency while the API serves. A query sees a version only once the catalog commits
it, and the catalog commits a version only after all its chunks are in the store. So
the catalog is copied first and the store second: every version the copied catalog shows
has its chunks in the copied store (a version committed in between has chunks in the
store that the copied catalog does not show, which nothing can see). The one change that
breaks this is a rebuild or other removal between the two copies; every catalog change
bumps its generation, so the generation is read before the catalog copy and after the
store copy, and the pair is taken again (up to `attempts` times) if it moved.

This was chosen over holding an ingest lock: ingest may run in another process (`medcite
ingest` against a Qdrant server, workers sharing a PostgreSQL catalog) where no lock of
this process reaches, and a lock would make a backup wait for a whole ingest, or an
upload wait for a whole backup.

Restore unpacks into a temporary folder beside the target, checks every part's size and
hash, that no part is missing or extra, that the audit chain verifies and ends at the
head the manifest recorded, and that the target's store is not in use; only then are the
parts moved into place, what they replace kept under `.pre-restore-<time>/`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.core.settings import Settings
from ingest.catalog import generation_table
from ingest.database import engine_url, make_engine
from retrieval.store import (
    StoreUnavailable,
    restore_store,
    snapshot_store,
    snapshot_store_path,
    store_present,
)

FORMAT = "medcite-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STORE = "store"
CATALOG = "catalog.db"
AUDIT = "audit.db"
KEYS = "keys/api_keys.json"
LOCAL_KEY = "keys/local.key"
INGEST_MANIFEST = "ingest/manifest.toml"
RESTORED_INGEST_MANIFEST = "ingest-manifest.toml"  # in the data folder, never the corpus's

PG_DUMP = ("PostgreSQL is not copied into the archive: back it up with its own tools, "
           "e.g. `pg_dump --format=custom --file=medcite-{what}.dump \"$URL\"` at the same "
           "time (restore with `pg_restore --clean --dbname \"$URL\" medcite-{what}.dump`, "
           "then run `medcite audit verify`).")


class BackupError(RuntimeError):
    pass


class RestoreRefused(RuntimeError):
    """The archive was not restored; nothing in the target was changed."""


@dataclass
class Part:
    name: str
    sha256: str
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "bytes": self.bytes}


@dataclass
class BackupReport:
    path: Path
    parts: list[Part]
    seconds: float
    archive_bytes: int
    attempts: int
    audit_records: int | None
    notes: list[str] = field(default_factory=list)


@dataclass
class RestoreReport:
    data_dir: Path
    parts: list[str]
    audit_records: int | None
    set_aside: Path | None
    notes: list[str] = field(default_factory=list)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for any other database (PostgreSQL)."""
    parsed = make_url(engine_url(url))
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_sqlite(src: Path, dest: Path) -> None:
    """A consistent copy of a live SQLite database (WAL included), as one self-contained
    file: SQLite's online backup, then the copy switched out of WAL mode."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=60)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
        source.close()


def catalog_generations(url: str) -> dict[str, int]:
    """Every collection's catalog generation: any commit, retirement or drop bumps it."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return {}
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(generation_table)).all()
        return {r.collection: int(r.generation) for r in rows}
    except SQLAlchemyError:
        return {}  # no catalog table yet: nothing was ever ingested
    finally:
        engine.dispose()


def _store_mode(settings: Settings) -> str:
    return "server" if settings.qdrant_url else "embedded"


def _snapshot(settings: Settings, client: Any, dest: Path) -> None:
    """The store's snapshot through `client` when given; else, embedded, through the
    folder itself (a running `medcite serve` holds it), or a client of our own."""
    if client is not None:
        snapshot_store(client, dest)
        return
    if not settings.qdrant_url:
        if not store_present(settings.resolved_qdrant_path):
            raise BackupError(f"no vector store at {settings.resolved_qdrant_path}: "
                              "nothing has been ingested into this data folder")
        snapshot_store_path(settings.resolved_qdrant_path, dest)
        return
    from retrieval.store import open_client

    own = open_client(settings)
    try:
        snapshot_store(own, dest)
    finally:
        own.close()


def _verify_audit_copy(path: Path) -> tuple[int, int | None, str | None]:
    """(records, last seq, head hash) of an audit database file; raises if its chain does
    not verify. Read from a scratch copy: opening a database through the audit log
    switches it to WAL mode, and `path` must stay byte for byte what was hashed."""
    from app.audit.log import AuditLog

    with tempfile.TemporaryDirectory(prefix=".audit-verify-", dir=path.parent) as scratch:
        copy = Path(scratch) / "audit.db"
        copy_sqlite(path, copy)
        log = AuditLog(f"sqlite:///{copy}")
        try:
            report = log.verify()
        finally:
            log.close()
    if not report.ok:
        raise AuditChainBroken([str(p) for p in report.problems])
    return report.records, report.last_seq, report.head_hash


class AuditChainBroken(RuntimeError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
        self.problems = problems


def create_backup(
    settings: Settings, out: Path, *, client: Any = None, attempts: int = 3,
) -> BackupReport:
    """Write the archive to `out` (replaced only once it is complete). `client` is the
    store client of the process that serves, when the backup runs inside it."""
    started = time.perf_counter()
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    staging = Path(tempfile.mkdtemp(prefix=".medcite-backup-", dir=out.parent))
    try:
        catalog_file = sqlite_path(settings.catalog_url)
        tries = 0
        generation: dict[str, int] = {}
        for tries in range(1, attempts + 1):  # noqa: B007 (reported below)
            shutil.rmtree(staging / STORE, ignore_errors=True)
            (staging / CATALOG).unlink(missing_ok=True)
            before = catalog_generations(settings.catalog_url)
            if catalog_file is not None and catalog_file.exists():
                copy_sqlite(catalog_file, staging / CATALOG)
            _snapshot(settings, client, staging / STORE)
            generation = catalog_generations(settings.catalog_url)
            if generation == before:
                break
        else:
            raise BackupError(
                f"the catalog changed during each of {attempts} attempts (an ingest is "
                "publishing versions); run the backup again when it is done")
        if catalog_file is None:
            notes.append("catalog: " + PG_DUMP.format(what="catalog"))

        audit_records = audit_head = audit_seq = None
        audit_file = sqlite_path(settings.database_url)
        if audit_file is None:
            notes.append("audit log: " + PG_DUMP.format(what="audit"))
        elif not audit_file.exists():
            notes.append(f"audit log: none at {audit_file} yet (nothing was served or "
                         "recorded)")
        else:
            copy_sqlite(audit_file, staging / AUDIT)
            try:
                audit_records, audit_seq, audit_head = _verify_audit_copy(staging / AUDIT)
            except AuditChainBroken as exc:
                raise BackupError(
                    f"the audit log does not verify ({exc}); run `medcite audit verify`. "
                    "A backup would carry the damage, and restore would refuse it") from exc

        for src, name in ((settings.keys_file, KEYS), (settings.local_key_file, LOCAL_KEY),
                          (settings.corpora_dir / "manifest.toml", INGEST_MANIFEST)):
            if src.is_file():
                dest = staging / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)

        parts = [Part(p.relative_to(staging).as_posix(), sha256_of(p), p.stat().st_size)
                 for p in sorted(staging.rglob("*")) if p.is_file()]
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "collection": settings.collection,
            "store": {"mode": _store_mode(settings)},
            "catalog": {"kind": "sqlite" if catalog_file else "external",
                        "generations": generation},
            "audit": {"kind": ("external" if audit_file is None else
                               "sqlite" if audit_records is not None else "none"),
                      "records": audit_records, "last_seq": audit_seq, "head": audit_head},
            "attempts": tries,
            "notes": notes,
            "parts": [p.as_dict() for p in parts],
        }
        tmp = out.with_name(out.name + ".partial")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)  # it holds keys
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz",
                                                      compresslevel=6) as tar:
            blob = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(blob), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(blob))
            for part in parts:
                tar.add(staging / part.name, arcname=part.name, recursive=False)
        os.replace(tmp, out)
        return BackupReport(out, parts, time.perf_counter() - started, out.stat().st_size,
                            tries, audit_records, notes)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# Restore ----------------------------------------------------------------------------------

def _check_gzip(archive: Path) -> None:
    """Read a gzip stream to its end, so its CRC is checked (tarfile stops reading at the
    archive's end marker, before the gzip trailer)."""
    with archive.open("rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            return
    with gzip.open(archive, "rb") as stream:
        while stream.read(1 << 20):
            pass


def _unpack(archive: Path, dest: Path) -> dict[str, Any]:
    try:
        _check_gzip(archive)
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                name = member.name
                if name.startswith("/") or ".." in Path(name).parts:
                    raise RestoreRefused(f"the archive names a path outside it: {name!r}")
                if not (member.isfile() or member.isdir()):
                    raise RestoreRefused(f"the archive holds a link or device: {name!r}")
                tar.extract(member, dest, filter="data")
    except RestoreRefused:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
        raise RestoreRefused(f"the archive is damaged or not a medcite backup "
                             f"({type(exc).__name__}: {exc})") from exc
    try:
        manifest = json.loads((dest / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise RestoreRefused(f"the archive has no readable {MANIFEST}") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise RestoreRefused(f"not a {FORMAT} archive of version {FORMAT_VERSION}")
    return manifest


def verify_unpacked(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Every problem with the unpacked parts: missing, extra, wrong size or hash."""
    problems = []
    listed = {p["name"]: p for p in manifest.get("parts", [])}
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    present.discard(MANIFEST)
    for name in sorted(set(listed) - present):
        problems.append(f"{name}: listed in the manifest but not in the archive")
    for name in sorted(present - set(listed)):
        problems.append(f"{name}: in the archive but not in the manifest")
    for name in sorted(set(listed) & present):
        path, part = root / name, listed[name]
        if path.stat().st_size != part["bytes"] or sha256_of(path) != part["sha256"]:
            problems.append(f"{name}: checksum does not match the manifest")
    return problems


@dataclass(frozen=True)
class _LocalStore:
    resolved_qdrant_path: Path
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None


def _store_in_use(path: Path) -> bool:
    """Whether another process (a running `medcite serve`) holds the embedded store."""
    lock = path / ".lock"
    if not lock.exists():
        return False
    import portalocker

    with lock.open("r+") as handle:
        try:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE
                             | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.exceptions.LockException:
            return True
        portalocker.unlock(handle)
    return False


def _sidecars(path: Path) -> list[Path]:
    return [path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal")]


def restore_backup(archive: Path, settings: Settings, *, force: bool = False) -> RestoreReport:
    """Restore `archive` into the data folder `settings` describe, or raise RestoreRefused
    having changed nothing there."""
    data_dir = settings.data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if not archive.is_file():
        raise RestoreRefused(f"no archive at {archive}")
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restore-", dir=data_dir.parent))
    notes: list[str] = []
    try:
        unpacked = staging / "archive"
        manifest = _unpack(archive, unpacked)
        problems = verify_unpacked(unpacked, manifest)
        if problems:
            raise RestoreRefused("the archive does not verify: " + "; ".join(problems))

        audit = manifest.get("audit", {})
        audit_records = None
        if (unpacked / AUDIT).is_file():
            try:
                audit_records, last_seq, head = _verify_audit_copy(unpacked / AUDIT)
            except AuditChainBroken as exc:
                raise RestoreRefused(f"the audit log in the archive does not verify: {exc}") \
                    from exc
            if (audit_records, last_seq, head) != (
                    audit.get("records"), audit.get("last_seq"), audit.get("head")):
                raise RestoreRefused(
                    "the audit log in the archive does not end where the manifest says "
                    f"(records {audit_records}, head {last_seq}:{head}; manifest: "
                    f"{audit.get('records')}, {audit.get('last_seq')}:{audit.get('head')})")
        elif audit.get("kind") == "sqlite":
            raise RestoreRefused("the manifest names an audit database the archive lacks")
        elif audit.get("kind") == "external":
            notes.append("audit log: " + PG_DUMP.format(what="audit"))
        if (unpacked / CATALOG).is_file():
            with sqlite3.connect(unpacked / CATALOG) as conn:
                check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise RestoreRefused(f"the catalog in the archive is damaged: {check}")

        archived_mode = manifest.get("store", {}).get("mode")
        if archived_mode != _store_mode(settings):
            raise RestoreRefused(
                f"the archive holds a {archived_mode} vector store, but this configuration "
                f"uses a {_store_mode(settings)} one (QDRANT_URL)")

        # (staged file or folder, where it goes)
        moves: list[tuple[Path, Path]] = []
        if archived_mode == "embedded":
            target_store = settings.resolved_qdrant_path.resolve()
            if _store_in_use(target_store):
                raise RestoreRefused(
                    f"the vector store at {target_store} is in use (is `medcite serve` "
                    "running?); stop it first")
            try:
                restore_store(unpacked / STORE, _LocalStore(staging / "qdrant"))
            except StoreUnavailable as exc:
                raise RestoreRefused(str(exc)) from exc
            moves.append((staging / "qdrant", target_store))
        for part, url in ((CATALOG, settings.catalog_url), (AUDIT, settings.database_url)):
            if not (unpacked / part).is_file():
                continue
            dest = sqlite_path(url)
            if dest is None:
                raise RestoreRefused(
                    f"the archive holds a SQLite {part}, but this configuration keeps it in "
                    "PostgreSQL; unset the URL to restore into the data folder")
            moves.append((unpacked / part, dest.resolve()))
        for part, dest in ((KEYS, settings.keys_file), (LOCAL_KEY, settings.local_key_file),
                           (INGEST_MANIFEST, data_dir / RESTORED_INGEST_MANIFEST)):
            if (unpacked / part).is_file():
                moves.append((unpacked / part, dest.resolve()))

        occupied = [d for _, d in moves if d.exists() and not (
            d.is_dir() and not any(p.name != ".lock" for p in d.iterdir()))]
        if occupied and not force:
            raise RestoreRefused(
                f"{data_dir} already holds data ({', '.join(str(p) for p in occupied)}); "
                "restore into an empty data folder, or pass --force to replace it (what is "
                "replaced is kept under .pre-restore-<time>/ there)")

        # Every check passed: only now does anything in the target change.
        aside = None
        if occupied or any(s.exists() for _, d in moves for s in _sidecars(d)):
            aside = data_dir / f".pre-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
            aside.mkdir(parents=True)
        for src, dest in moves:
            dest.parent.mkdir(parents=True, exist_ok=True)
            for old in [dest, *_sidecars(dest)]:
                if old.exists() and aside is not None:
                    shutil.move(str(old), str(aside / old.name))
            if dest.is_dir():  # an empty store folder (or one holding only .lock)
                shutil.rmtree(dest)
            shutil.move(str(src), str(dest))
            if dest.is_file() and dest.name in ("api_keys.json", "local.key", "audit.db",
                                                "catalog.db"):
                dest.chmod(0o600)
        if archived_mode == "server":
            try:
                restore_store(unpacked / STORE, settings)
            except StoreUnavailable as exc:
                raise RestoreRefused(f"the files were restored, the store was not: {exc}") \
                    from exc
        if any(d.name == RESTORED_INGEST_MANIFEST for _, d in moves):
            notes.append(f"the corpus manifest is restored as {data_dir}/"
                         f"{RESTORED_INGEST_MANIFEST}; the corpus folder's own "
                         "manifest.toml was left as it is")
        return RestoreReport(data_dir, [d.as_posix() for _, d in moves], audit_records,
                             aside, notes)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
