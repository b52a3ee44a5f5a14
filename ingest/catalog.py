"""The document catalog: every document's versions and which one is in force when.

Chunks of every version stay in Qdrant, tagged with their `version_id`; what a query may
see is decided here. A version becomes visible in one transaction, after all its chunks
are written, so a query (which reads the set of visible versions once, then searches with
it as a filter) sees the old version or the new one, never half of one or neither.

SQLite under the data folder by default; PostgreSQL (`MEDCITE_CATALOG_URL`) when several
ingest workers or API replicas share one Qdrant cluster.
"""

from __future__ import annotations

import json
import threading
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import SQLAlchemyError

from ingest.database import WRITE_LOCK, make_engine
from ingest.diff import Snapshot

metadata = MetaData()

documents_table = Table(
    "catalog_documents",
    metadata,
    Column("collection", String(200), primary_key=True),
    Column("doc_key", String(400), primary_key=True),
    Column("title", Text, nullable=False),
    Column("doc_type", String(40), nullable=False),
    Column("payer", String(200)),
    Column("access_groups", Text, nullable=False),  # JSON list
    Column("retired_on", String(10)),  # ISO date from which it is no longer in force
    Column("retired_at", String(40)),
    Column("retired_by", String(200)),
    Column("retired_reason", Text),
)

versions_table = Table(
    "catalog_versions",
    metadata,
    Column("version_id", String(64), primary_key=True),
    Column("collection", String(200), nullable=False, index=True),
    Column("doc_key", String(400), nullable=False, index=True),
    Column("number", Integer),  # assigned when committed: 1, 2, ... per document
    Column("state", String(16), nullable=False),  # pending | committed | replaced
    Column("title", Text, nullable=False),
    Column("doc_type", String(40), nullable=False),
    Column("payer", String(200)),
    Column("access_groups", Text, nullable=False),
    Column("source_file", Text, nullable=False),
    Column("effective_date", String(10)),
    Column("content_hash", String(64), nullable=False),
    Column("chunks", Integer, nullable=False, default=0),
    Column("started_at", String(40), nullable=False),
    Column("committed_at", String(40)),
    Column("replaced_at", String(40)),
    Column("snapshot", LargeBinary),  # zlib JSON of the parsed sections, for diffs
)

generation_table = Table(
    "catalog_generation",
    metadata,
    Column("collection", String(200), primary_key=True),
    Column("generation", Integer, nullable=False),
)

# Versions with no stated effective date are in force from their ingestion, except a
# document's first version, which stands for everything before it.
_BEGINNING = "0001-01-01"

VersionStatus = Literal["current", "superseded", "retired", "pending", "replaced", "scheduled"]


class CatalogError(RuntimeError):
    pass


class VersionInfo(BaseModel):
    doc_key: str
    version: int | None = Field(description="1, 2, ... in the order versions were published.")
    version_id: str
    title: str
    doc_type: str
    payer: str | None = None
    source_file: str
    effective_date: str | None = None
    ingested_at: str = Field(description="When the version became visible (or started).")
    chunks: int
    content_hash: str
    status: VersionStatus


class DocumentInfo(BaseModel):
    doc_key: str
    title: str
    doc_type: str
    payer: str | None = None
    access_groups: list[str]
    retired_on: str | None = None
    retired_at: str | None = None
    retired_by: str | None = None
    retired_reason: str | None = None
    versions: int
    current: VersionInfo | None = None


@dataclass(frozen=True)
class NewVersion:
    """What the ingest pipeline knows about a version before writing its chunks."""

    version_id: str
    doc_key: str
    title: str
    doc_type: str
    payer: str | None
    access_groups: tuple[str, ...]
    source_file: str
    effective_date: str | None
    content_hash: str


@dataclass(frozen=True)
class CommitResult:
    number: int
    previous: int | None  # the version in force before this one, if any
    replaced: list[str]  # version ids of earlier builds of the same version


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def pack_snapshot(snapshot: Snapshot) -> bytes:
    rows = [{"path": list(p), "text": t, "table": tbl} for p, t, tbl in snapshot.sections]
    data = {"title": snapshot.title, "sections": rows}
    return zlib.compress(json.dumps(data, ensure_ascii=False).encode())


def unpack_snapshot(blob: bytes | None) -> Snapshot:
    if not blob:
        return Snapshot("", [])
    data = json.loads(zlib.decompress(blob))
    return Snapshot(data["title"], [(tuple(r["path"]), r["text"], bool(r["table"]))
                                    for r in data["sections"]])


def valid_from(row: RowMapping | dict, first_number: int | None) -> str:
    if row["effective_date"]:
        return str(row["effective_date"])
    if row["number"] == first_number:
        return _BEGINNING
    return str(row["committed_at"] or row["started_at"])[:10]


def in_force(
    committed: list[RowMapping], retired_on: str | None, as_of: str
) -> RowMapping | None:
    """The version of one document in force on `as_of` (ISO date), or None."""
    if retired_on and retired_on <= as_of:
        return None
    first = min((r["number"] for r in committed), default=None)
    candidates = [r for r in committed if valid_from(r, first) <= as_of]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (valid_from(r, first), r["number"]))


class Catalog:
    def __init__(self, url: str) -> None:
        try:
            self.engine = make_engine(url)
            metadata.create_all(self.engine)
        except (SQLAlchemyError, OSError) as exc:
            raise CatalogError(f"document catalog unavailable: {type(exc).__name__}") from exc
        self._cache_lock = threading.Lock()
        self._cache: dict[tuple[str, int, str], dict[str, RowMapping]] = {}
        self._known: dict[tuple[str, int], frozenset[str]] = {}

    def close(self) -> None:
        self.engine.dispose()

    def _write(self):  # type: ignore[no-untyped-def]
        return self.engine.execution_options(**{WRITE_LOCK: True}).begin()

    # Reading ---------------------------------------------------------------------------

    def generation(self, collection: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(generation_table.c.generation).where(
                    generation_table.c.collection == collection)
            ).scalar()
        return int(value or 0)

    def version(self, version_id: str) -> RowMapping | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(versions_table).where(versions_table.c.version_id == version_id)
            ).mappings().first()

    def committed_with_content(
        self, collection: str, doc_key: str, content: str
    ) -> RowMapping | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(versions_table).where(
                    versions_table.c.collection == collection,
                    versions_table.c.doc_key == doc_key,
                    versions_table.c.content_hash == content,
                    versions_table.c.state == "committed",
                ).order_by(versions_table.c.number.desc())
            ).mappings().first()

    def _committed_by_doc(
        self, conn: Connection, collection: str, doc_keys: list[str] | None = None
    ) -> tuple[dict[str, list[RowMapping]], dict[str, RowMapping]]:
        query = select(versions_table).where(
            versions_table.c.collection == collection, versions_table.c.state == "committed")
        if doc_keys is not None:
            query = query.where(versions_table.c.doc_key.in_(doc_keys))
        by_doc: dict[str, list[RowMapping]] = {}
        for row in conn.execute(query.execution_options(yield_per=1000)).mappings():
            by_doc.setdefault(row["doc_key"], []).append(row)
        docs_query = select(documents_table).where(documents_table.c.collection == collection)
        if doc_keys is not None:
            docs_query = docs_query.where(documents_table.c.doc_key.in_(doc_keys))
        docs = {r["doc_key"]: r for r in conn.execute(docs_query).mappings()}
        return by_doc, docs

    def in_force_versions(self, collection: str, as_of: str | None = None) -> dict[str, RowMapping]:
        """version_id -> row of every version in force on `as_of` (default: today).

        Cached per catalog generation, so a query costs one small read while nothing
        changes; any commit or retirement, by any process, bumps the generation.
        """
        day = as_of or today()
        gen = self.generation(collection)
        key = (collection, gen, day)
        with self._cache_lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        with self.engine.connect() as conn:
            by_doc, docs = self._committed_by_doc(conn, collection)
        out: dict[str, RowMapping] = {}
        for doc_key, rows in by_doc.items():
            doc = docs.get(doc_key)
            row = in_force(rows, doc["retired_on"] if doc else None, day)
            if row is not None:
                out[row["version_id"]] = row
        with self._cache_lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = out
        return out

    def known_versions(self, collection: str) -> frozenset[str]:
        """Every version id the catalog holds for `collection`, in any state (pending,
        committed, replaced): the ids a stored chunk can carry. Search filters on the
        shorter of the in-force set and the rest of this one (retrieval/search.py).
        Cached per generation; `begin` bumps it, so a version being written is known
        before its first chunk is."""
        gen = self.generation(collection)
        with self._cache_lock:
            hit = self._known.get((collection, gen))
        if hit is not None:
            return hit
        with self.engine.connect() as conn:
            out = frozenset(conn.execute(select(versions_table.c.version_id).where(
                versions_table.c.collection == collection)).scalars())
        with self._cache_lock:
            if len(self._known) > 8:
                self._known.clear()
            self._known[(collection, gen)] = out
        return out

    def versions(self, collection: str, doc_key: str) -> list[VersionInfo]:
        """Every version of a document, newest first (by effective date, then number)."""
        with self.engine.connect() as conn:
            rows = list(conn.execute(
                select(versions_table).where(
                    versions_table.c.collection == collection,
                    versions_table.c.doc_key == doc_key,
                    versions_table.c.state != "replaced",
                )
            ).mappings())
            doc = conn.execute(select(documents_table).where(
                documents_table.c.collection == collection,
                documents_table.c.doc_key == doc_key)).mappings().first()
        committed = [r for r in rows if r["state"] == "committed"]
        first = min((r["number"] for r in committed), default=None)
        day = today()
        current = in_force(committed, doc["retired_on"] if doc else None, day)
        infos = [self._info(r, current, doc, first, day) for r in rows]
        return sorted(
            infos, key=lambda v: (v.status == "pending", v.effective_date or "", v.version or 0),
            reverse=True,
        )

    def _info(
        self, row: RowMapping, current: RowMapping | None, doc: RowMapping | None,
        first: int | None, day: str,
    ) -> VersionInfo:
        status: VersionStatus
        if row["state"] == "pending":
            status = "pending"
        elif row["state"] == "replaced":
            status = "replaced"
        elif current is not None and row["version_id"] == current["version_id"]:
            status = "current"
        elif doc is not None and doc["retired_on"] and doc["retired_on"] <= day:
            status = "retired"
        elif valid_from(row, first) > day:
            status = "scheduled"
        else:
            status = "superseded"
        return VersionInfo(
            doc_key=row["doc_key"], version=row["number"], version_id=row["version_id"],
            title=row["title"], doc_type=row["doc_type"], payer=row["payer"],
            source_file=row["source_file"], effective_date=row["effective_date"],
            ingested_at=row["committed_at"] or row["started_at"], chunks=row["chunks"],
            content_hash=row["content_hash"], status=status,
        )

    def documents(
        self, collection: str, *, include_retired: bool = False,
        groups: list[str] | None = None,
    ) -> list[DocumentInfo]:
        with self.engine.connect() as conn:
            by_doc, docs = self._committed_by_doc(conn, collection)
        day = today()
        out = []
        for doc_key, doc in sorted(docs.items()):
            doc_groups = json.loads(doc["access_groups"])
            if groups is not None and not set(doc_groups) & set(groups):
                continue
            retired = bool(doc["retired_on"] and doc["retired_on"] <= day)
            if retired and not include_retired:
                continue
            rows = by_doc.get(doc_key, [])
            first = min((r["number"] for r in rows), default=None)
            current = in_force(rows, doc["retired_on"], day)
            out.append(DocumentInfo(
                doc_key=doc_key, title=doc["title"], doc_type=doc["doc_type"],
                payer=doc["payer"], access_groups=doc_groups, retired_on=doc["retired_on"],
                retired_at=doc["retired_at"], retired_by=doc["retired_by"],
                retired_reason=doc["retired_reason"], versions=len(rows),
                current=self._info(current, current, doc, first, day) if current else None,
            ))
        return out

    def document(self, collection: str, doc_key: str) -> DocumentInfo | None:
        found = [d for d in self.documents(collection, include_retired=True)
                 if d.doc_key == doc_key]
        return found[0] if found else None

    def snapshot(self, version_id: str) -> Snapshot:
        with self.engine.connect() as conn:
            blob = conn.execute(select(versions_table.c.snapshot).where(
                versions_table.c.version_id == version_id)).scalar()
        return unpack_snapshot(blob)

    def by_number(self, collection: str, doc_key: str, number: int) -> RowMapping | None:
        with self.engine.connect() as conn:
            return conn.execute(select(versions_table).where(
                versions_table.c.collection == collection,
                versions_table.c.doc_key == doc_key,
                versions_table.c.number == number,
                versions_table.c.state == "committed",
            )).mappings().first()

    def stale_versions(self, collection: str, before: str) -> list[str]:
        """Pending versions abandoned before `before` (ISO time) and replaced builds:
        their chunks are invisible and can be removed."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(versions_table.c.version_id).where(
                versions_table.c.collection == collection,
                (and_(versions_table.c.state == "pending", versions_table.c.started_at < before))
                | and_(versions_table.c.state == "replaced",
                       versions_table.c.replaced_at < before),
            )).scalars())

    # Writing ---------------------------------------------------------------------------

    def begin(self, collection: str, new: NewVersion, snapshot: bytes) -> list[str]:
        """Record `new` as pending (idempotent). Returns the ids of other pending versions
        of the same document: an interrupted run left them, nobody can see them, and
        their chunks should go."""
        with self._write() as conn:
            row = conn.execute(select(versions_table.c.state).where(
                versions_table.c.version_id == new.version_id)).first()
            if row is None:
                conn.execute(insert(versions_table).values(
                    version_id=new.version_id, collection=collection, doc_key=new.doc_key,
                    number=None, state="pending", title=new.title, doc_type=new.doc_type,
                    payer=new.payer, access_groups=json.dumps(list(new.access_groups)),
                    source_file=new.source_file, effective_date=new.effective_date,
                    content_hash=new.content_hash, chunks=0, started_at=_now(),
                    snapshot=snapshot,
                ))
            others = list(conn.execute(select(versions_table.c.version_id).where(
                versions_table.c.collection == collection,
                versions_table.c.doc_key == new.doc_key,
                versions_table.c.state == "pending",
                versions_table.c.version_id != new.version_id,
            )).scalars())
            if others:
                conn.execute(delete(versions_table).where(
                    versions_table.c.version_id.in_(others)))
            # Searches read the known versions per generation (`known_versions`).
            self._bump(conn, collection)
        return others

    def commit(self, collection: str, new: NewVersion, chunks: int) -> CommitResult:
        """Make a fully written version visible, in one transaction."""
        now = _now()
        with self._write() as conn:
            row = conn.execute(select(versions_table).where(
                versions_table.c.version_id == new.version_id)).mappings().first()
            if row is None:
                raise CatalogError(f"version {new.version_id} was never begun")
            by_doc, docs = self._committed_by_doc(conn, collection, [new.doc_key])
            committed = by_doc.get(new.doc_key, [])
            doc = docs.get(new.doc_key)
            before = in_force(committed, doc["retired_on"] if doc else None, today())
            if row["state"] == "committed":
                return CommitResult(row["number"], before["number"] if before else None, [])
            # The same bytes and date built again (other chunking, model or groups):
            # the same version, rebuilt; it keeps its number.
            rebuilt = [r for r in committed if r["content_hash"] == new.content_hash
                       and r["effective_date"] == new.effective_date]
            if rebuilt:
                number = rebuilt[0]["number"]
            else:
                number = 1 + (conn.execute(select(func.max(versions_table.c.number)).where(
                    versions_table.c.collection == collection,
                    versions_table.c.doc_key == new.doc_key)).scalar() or 0)
            replaced = [r["version_id"] for r in rebuilt]
            if replaced:
                conn.execute(update(versions_table).where(
                    versions_table.c.version_id.in_(replaced)).values(
                        state="replaced", replaced_at=now))
            conn.execute(update(versions_table).where(
                versions_table.c.version_id == new.version_id).values(
                    state="committed", number=number, chunks=chunks, committed_at=now))
            doc_values = {
                "title": new.title, "doc_type": new.doc_type, "payer": new.payer,
                "access_groups": json.dumps(list(new.access_groups)),
                # Publishing a new version of a retired document brings it back.
                "retired_on": None, "retired_at": None, "retired_by": None,
                "retired_reason": None,
            }
            if doc is None:
                conn.execute(insert(documents_table).values(
                    collection=collection, doc_key=new.doc_key, **doc_values))
            else:
                conn.execute(update(documents_table).where(
                    documents_table.c.collection == collection,
                    documents_table.c.doc_key == new.doc_key).values(**doc_values))
            self._bump(conn, collection)
        return CommitResult(number, before["number"] if before else None, replaced)

    def retire(
        self, collection: str, doc_key: str, *, by: str, reason: str = "",
        on: date | None = None,
    ) -> None:
        with self._write() as conn:
            found = conn.execute(update(documents_table).where(
                documents_table.c.collection == collection,
                documents_table.c.doc_key == doc_key).values(
                    retired_on=(on or datetime.now(UTC).date()).isoformat(),
                    retired_at=_now(), retired_by=by, retired_reason=reason or None,
                )).rowcount
            if not found:
                raise KeyError(doc_key)
            self._bump(conn, collection)

    def forget(self, version_ids: list[str]) -> None:
        if version_ids:
            with self._write() as conn:
                conn.execute(delete(versions_table).where(
                    versions_table.c.version_id.in_(version_ids)))

    def drop_collection(self, collection: str) -> None:
        with self._write() as conn:
            for table in (versions_table, documents_table):
                conn.execute(delete(table).where(table.c.collection == collection))
            self._bump(conn, collection)

    def _bump(self, conn: Connection, collection: str) -> None:
        updated = conn.execute(update(generation_table).where(
            generation_table.c.collection == collection).values(
                generation=generation_table.c.generation + 1)).rowcount
        if not updated:
            conn.execute(insert(generation_table).values(collection=collection, generation=1))
