"""Tamper-evident, append-only audit log in SQLite or PostgreSQL (SQLAlchemy Core).

Every record stores `hash` = SHA-256 of its canonical JSON (time, action, actor, HTTP
status, details and `prev_hash`), and `prev_hash` = the previous record's hash; the first
record chains to GENESIS. Editing a record breaks its hash; deleting one leaves a gap in
`seq` and a link to nothing; swapping two makes them link to the wrong neighbours. The
hash leaves `seq` out on purpose: the chain, not the column, defines the order, so a
record moved to another position still matches its own hash and shows up as *reordered*.

Appends are serialised (an in-process lock plus SQLite's write lock or a PostgreSQL
advisory lock) and `prev_hash` is unique, so two concurrent requests can never fork the
chain. A one-row `audit_head` table remembers the last seq and hash, which exposes
records cut off the end. Someone who can rewrite the database can still rebuild the whole
chain; comparing with a head hash recorded elsewhere (`verify(anchors=...)`) catches that.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from app.audit.models import (
    AskDetails,
    AuditAction,
    AuditActor,
    AuditPage,
    AuditRecord,
    AuditUnavailable,
    Details,
    PurgeDetails,
    RetireDetails,
    UnreadableDetails,
)
from ingest.database import WRITE_LOCK, engine_url, make_engine

GENESIS = "0" * 64
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width, so text order is time order
_LOCK_ID = zlib.crc32(b"medcite-audit-append")  # PostgreSQL advisory lock key
_BATCH = 1000
_details_adapter: TypeAdapter[Details] = TypeAdapter(Details)

metadata = MetaData()
records = Table(
    "audit_records", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", String(27), nullable=False, index=True),
    Column("action", String(32), nullable=False, index=True),
    Column("key_id", String, index=True),
    Column("actor_name", String, nullable=False, index=True),
    Column("actor_role", String, nullable=False),
    Column("http_status", Integer),
    Column("payload", Text, nullable=False),
    # Unique: two records claiming the same predecessor would be a fork.
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False, index=True),
)
# Which documents an /ask retrieved, for `doc_id` searches. Derived from the payload (and
# checked against it by verify), so it carries no hash of its own.
record_docs = Table(
    "audit_record_docs", metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("doc_id", String, primary_key=True, index=True),
)
head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)


class ProblemKind(StrEnum):
    edited = "edited"
    deleted = "deleted"
    reordered = "reordered"
    inserted = "inserted"


@dataclass
class Problem:
    kind: ProblemKind
    seq: int
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.value.upper()} at seq {self.seq}: {self.detail}"


@dataclass
class VerifyReport:
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head_hash: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditTampered(RuntimeError):
    """The log does not verify; carries the report."""

    def __init__(self, report: VerifyReport) -> None:
        super().__init__("; ".join(str(p) for p in report.problems))
        self.report = report


@dataclass
class AuditQuery:
    user: str | None = None  # key id or key name
    since: date | None = None
    until: date | None = None  # inclusive
    doc_id: str | None = None
    action: AuditAction | None = None
    limit: int = 50
    cursor: int | None = None  # records with seq below this

    def as_filters(self) -> dict[str, Any]:
        return {k: (str(v) if v is not None else None) for k, v in vars(self).items()}


def canonical(obj: Any) -> str:
    # ASCII-only: the same bytes on every database, and lone surrogates can't break it.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def record_hash(row: dict[str, Any]) -> str:
    envelope = {
        "v": 1,
        "ts": row["ts"],
        "action": row["action"],
        "key_id": row["key_id"],
        "actor_name": row["actor_name"],
        "actor_role": row["actor_role"],
        "http_status": row["http_status"],
        "payload": json.loads(row["payload"]),
        "prev_hash": row["prev_hash"],
    }
    return hashlib.sha256(canonical(envelope).encode("ascii")).hexdigest()


def doc_ids_of(details: Details) -> set[str]:
    if isinstance(details, RetireDetails):
        return {details.doc_key}
    return {p.doc_id for p in details.passages} if isinstance(details, AskDetails) else set()


class AuditLog:
    def __init__(self, url: str, clock: Callable[[], datetime] | None = None) -> None:
        """`clock` is the time source (UTC-aware); tests move it to make records old."""
        self.url = engine_url(url)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        # Appends that failed (AuditUnavailable), for the metrics endpoint.
        self.write_failures = 0
        try:
            self.engine = make_engine(self.url)
            self.is_postgres = self.engine.dialect.name == "postgresql"
            metadata.create_all(self.engine)
        except (SQLAlchemyError, OSError) as exc:
            raise AuditUnavailable(f"audit database unavailable: {type(exc).__name__}") from exc

    def close(self) -> None:
        self.engine.dispose()

    # Writing ---------------------------------------------------------------------------

    def _write(self) -> Any:
        return self.engine.execution_options(**{WRITE_LOCK: True}).begin()

    def _lock_chain(self, conn: Connection) -> None:
        if self.is_postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})

    def _append(
        self, conn: Connection, action: AuditAction, actor: AuditActor, details: Details,
        http_status: int | None,
    ) -> AuditRecord:
        last = conn.execute(select(head.c.seq, head.c.hash).where(head.c.id == 1)).first()
        seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
        row: dict[str, Any] = {
            "seq": seq,
            "ts": self._clock().astimezone(UTC).strftime(TS_FORMAT),
            "action": action.value,
            "key_id": actor.key_id,
            "actor_name": actor.name,
            "actor_role": actor.role,
            "http_status": http_status,
            "payload": canonical(details.model_dump(mode="json")),
            "prev_hash": prev,
        }
        row["hash"] = record_hash(row)
        conn.execute(insert(records).values(**row))
        docs = sorted(doc_ids_of(details))
        if docs:
            conn.execute(insert(record_docs), [{"seq": seq, "doc_id": d} for d in docs])
        if last:
            conn.execute(update(head).where(head.c.id == 1).values(seq=seq, hash=row["hash"]))
        else:
            conn.execute(insert(head).values(id=1, seq=seq, hash=row["hash"]))
        return _to_record(row)

    def append(
        self, action: AuditAction, actor: AuditActor, details: Details,
        http_status: int | None = None,
    ) -> AuditRecord:
        """Append one record, or raise AuditUnavailable: never return without a record."""
        try:
            with self._lock, self._write() as conn:
                self._lock_chain(conn)
                return self._append(conn, action, actor, details, http_status)
        except SQLAlchemyError as exc:
            self.write_failures += 1
            raise AuditUnavailable(f"audit log write failed: {type(exc).__name__}") from exc

    def purge(self, older_than_days: int, actor: AuditActor) -> AuditRecord:
        """Delete the oldest records (a prefix of the chain) recorded before the cutoff and
        append a purge record saying where the chain now starts and what it links to.

        Refuses (AuditTampered) when the log does not verify: purging would otherwise
        launder an edit or a deletion into a clean-looking chain."""
        if older_than_days < 1:
            raise ValueError("older_than_days must be at least 1")
        report = self.verify()
        if not report.ok:
            raise AuditTampered(report)
        cutoff = (self._clock() - timedelta(days=older_than_days)).astimezone(UTC)
        cutoff_ts = cutoff.strftime(TS_FORMAT)
        try:
            with self._lock, self._write() as conn:
                self._lock_chain(conn)
                return self._purge(conn, older_than_days, cutoff_ts, actor)
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"audit purge failed: {type(exc).__name__}") from exc

    def _purge(
        self, conn: Connection, days: int, cutoff_ts: str, actor: AuditActor
    ) -> AuditRecord:
        # Only a prefix goes, so what is left is still one unbroken chain: a record newer
        # than the cutoff protects everything after it, even if a clock stepped back.
        keep_from = conn.execute(
            select(func.min(records.c.seq)).where(records.c.ts >= cutoff_ts)
        ).scalar()
        if keep_from is None:
            top = conn.execute(select(head.c.seq)).scalar()
            keep_from = (top or 0) + 1
        last = conn.execute(
            select(records.c.seq, records.c.hash).where(records.c.seq < keep_from)
            .order_by(records.c.seq.desc()).limit(1)
        ).first()
        first = conn.execute(
            select(func.min(records.c.seq)).where(records.c.seq < keep_from)
        ).scalar()
        if last is not None:
            conn.execute(delete(record_docs).where(record_docs.c.seq < keep_from))
            purged = conn.execute(delete(records).where(records.c.seq < keep_from)).rowcount
            start_seq, start_prev = keep_from, last.hash
        else:
            purged = 0
            start_seq, start_prev = expected_start(conn)
        details = PurgeDetails(
            older_than_days=days, cutoff=cutoff_ts, purged=purged,
            purged_from_seq=first, purged_to_seq=last.seq if last else None,
            first_kept_seq=start_seq, last_purged_hash=start_prev,
        )
        return self._append(conn, AuditAction.purge, actor, details, None)

    # Reading ---------------------------------------------------------------------------

    def search(self, q: AuditQuery) -> AuditPage:
        stmt = select(records).order_by(records.c.seq.desc()).limit(q.limit + 1)
        if q.user:
            stmt = stmt.where(or_(records.c.key_id == q.user, records.c.actor_name == q.user))
        if q.since:
            stmt = stmt.where(records.c.ts >= f"{q.since.isoformat()}T00:00:00.000000Z")
        if q.until:
            stmt = stmt.where(records.c.ts <= f"{q.until.isoformat()}T23:59:59.999999Z")
        if q.action:
            stmt = stmt.where(records.c.action == q.action.value)
        if q.cursor is not None:
            stmt = stmt.where(records.c.seq < q.cursor)
        if q.doc_id:
            stmt = stmt.where(
                records.c.seq.in_(select(record_docs.c.seq).where(record_docs.c.doc_id == q.doc_id))
            )
        try:
            with self.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(stmt)]
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"audit log read failed: {type(exc).__name__}") from exc
        more = len(rows) > q.limit
        page = [_to_record(r) for r in rows[: q.limit]]
        return AuditPage(records=page, next_cursor=page[-1].seq if more and page else None)

    def recent(
        self, since: datetime, actions: tuple[AuditAction, ...]
    ) -> list[tuple[datetime, str, int | None, dict[str, Any]]]:
        """(time, action, HTTP status, payload) of the records of these actions since a
        moment, oldest first: what every API worker appended, for the quality alarms'
        shared window. The payload is read as plain JSON: no model per record."""
        stmt = (select(records.c.ts, records.c.action, records.c.http_status,
                       records.c.payload)
                .where(records.c.ts >= since.astimezone(UTC).strftime(TS_FORMAT))
                .where(records.c.action.in_([a.value for a in actions]))
                .order_by(records.c.seq))
        try:
            with self.engine.connect() as conn:
                rows = list(conn.execute(stmt))
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"audit log read failed: {type(exc).__name__}") from exc
        out = []
        for r in rows:
            try:
                payload = json.loads(r.payload)
            except ValueError:
                continue  # `medcite audit verify` reports it; an alarm cannot use it
            out.append((datetime.strptime(r.ts, TS_FORMAT).replace(tzinfo=UTC), r.action,
                        r.http_status, payload if isinstance(payload, dict) else {}))
        return out

    def _rows(self, conn: Connection) -> Iterator[dict[str, Any]]:
        after = None
        while True:
            stmt = select(records).order_by(records.c.seq).limit(_BATCH)
            if after is not None:
                stmt = stmt.where(records.c.seq > after)
            batch = [dict(r._mapping) for r in conn.execute(stmt)]
            if not batch:
                return
            seqs = [r["seq"] for r in batch]
            docs: dict[int, set[str]] = {}
            for d in conn.execute(select(record_docs).where(
                record_docs.c.seq.between(seqs[0], seqs[-1])
            )):
                docs.setdefault(d.seq, set()).add(d.doc_id)
            for r in batch:
                r["_docs"] = docs.get(r["seq"], set())
                yield r
            after = seqs[-1]

    def verify(self, anchors: dict[int, str] | None = None) -> VerifyReport:
        """Walk the chain and report every edited, deleted, reordered or inserted record."""
        try:
            with self.engine.connect() as conn:
                return _Verifier(conn, anchors or {}).run(self._rows(conn))
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"audit log read failed: {type(exc).__name__}") from exc


def expected_start(conn: Connection) -> tuple[int, str]:
    """Where the chain starts: seq 1 at GENESIS, unless a purge moved it; then the latest
    purge record says where (it is in the chain itself, so it can't be forged without
    breaking the chain after it)."""
    row = conn.execute(
        select(records.c.payload).where(records.c.action == AuditAction.purge.value)
        .order_by(records.c.seq.desc()).limit(1)
    ).first()
    if row is None:
        return 1, GENESIS
    try:
        purge = PurgeDetails.model_validate_json(row.payload)
    except ValidationError:
        return 1, GENESIS  # the edit itself is reported by the walk
    return purge.first_kept_seq, purge.last_purged_hash


class _Verifier:
    def __init__(self, conn: Connection, anchors: dict[int, str]) -> None:
        self.conn = conn
        self.anchors = anchors
        self.report = VerifyReport()

    def problem(self, kind: ProblemKind, seq: int, detail: str) -> None:
        self.report.problems.append(Problem(kind, seq, detail))

    def seq_of_hash(self, digest: str) -> int | None:
        return self.conn.execute(
            select(records.c.seq).where(records.c.hash == digest).limit(1)
        ).scalar()

    def check_link(self, row: dict[str, Any], expected_prev: str) -> None:
        if row["prev_hash"] == expected_prev:
            return
        seq = row["seq"]
        other = self.seq_of_hash(row["prev_hash"])
        if other is not None:
            self.problem(ProblemKind.reordered, seq,
                         f"links to record {other}, not to the record before it")
        else:
            self.problem(ProblemKind.deleted, seq,
                         "links to a record that is not in the log: the record before it "
                         "was deleted (or rewritten and re-hashed)")

    def check_row(self, row: dict[str, Any]) -> None:
        seq = row["seq"]
        try:
            if record_hash(row) != row["hash"]:
                self.problem(ProblemKind.edited, seq, "content does not match its hash")
        except (ValueError, TypeError):
            self.problem(ProblemKind.edited, seq, "payload is not valid JSON")
            return
        try:
            details = _details_adapter.validate_json(row["payload"])
        except ValidationError:
            return  # only an edit can get here, and the hash check reported it
        if doc_ids_of(details) != row["_docs"]:
            self.problem(ProblemKind.edited, seq, "document index does not match the record")
        if seq in self.anchors and self.anchors[seq] != row["hash"]:
            self.problem(ProblemKind.edited, seq,
                         "hash differs from the anchor recorded for it: the chain was rebuilt")

    def run(self, rows: Iterator[dict[str, Any]]) -> VerifyReport:
        rep = self.report
        expected_seq, expected_prev = expected_start(self.conn)
        last: dict[str, Any] | None = None
        for row in rows:
            seq = row["seq"]
            rep.records += 1
            rep.first_seq = seq if rep.first_seq is None else rep.first_seq
            self.check_row(row)
            if seq < expected_seq:
                self.problem(ProblemKind.inserted, seq,
                             f"precedes the start of the chain (seq {expected_seq})")
            elif seq > expected_seq:
                self.problem(ProblemKind.deleted, expected_seq,
                             f"records {expected_seq}..{seq - 1} are missing")
            else:
                self.check_link(row, expected_prev)
            # Follow the stored hash so one edit is reported once, not at every later link.
            expected_seq, expected_prev, last = seq + 1, row["hash"], row
        self.check_head(last, expected_seq)
        for seq in sorted(self.anchors):
            if last is None or seq > last["seq"]:
                self.problem(ProblemKind.deleted, seq, "an anchored record is not in the log")
        return rep

    def check_head(self, last: dict[str, Any] | None, expected_seq: int) -> None:
        top = self.conn.execute(select(head.c.seq, head.c.hash)).first()
        if last is None:
            if top is not None:
                self.problem(ProblemKind.deleted, top.seq, "every record is gone")
            return
        self.report.last_seq, self.report.head_hash = last["seq"], last["hash"]
        if top is None:
            self.problem(ProblemKind.inserted, last["seq"], "records exist but the head is gone")
        elif top.seq > last["seq"]:
            self.problem(ProblemKind.deleted, expected_seq,
                         f"records {expected_seq}..{top.seq} are missing from the end")
        elif top.seq < last["seq"]:
            self.problem(ProblemKind.inserted, top.seq + 1,
                         f"records {top.seq + 1}..{last['seq']} were added outside the log")
        elif top.hash != last["hash"]:
            self.problem(ProblemKind.edited, last["seq"], "the last record differs from the head")


def _to_record(row: dict[str, Any]) -> AuditRecord:
    try:
        details: Details = _details_adapter.validate_json(row["payload"])
    except ValidationError as exc:
        details = UnreadableDetails(error=f"{exc.error_count()} validation error(s)")
    return AuditRecord(
        seq=row["seq"],
        ts=datetime.strptime(row["ts"], TS_FORMAT).replace(tzinfo=UTC),
        action=row["action"],
        actor=AuditActor(key_id=row["key_id"], name=row["actor_name"], role=row["actor_role"]),
        http_status=row["http_status"],
        details=details,
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
