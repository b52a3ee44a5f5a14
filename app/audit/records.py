"""The audit records of actions taken from the command line (ingest, keys, retire):
who the operator is, and the one place those records are built."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

from app.audit.models import (
    AuditAction,
    AuditActor,
    Details,
    IngestDetails,
    IngestedFile,
    KeyDetails,
)
from app.core.settings import Settings
from app.security.api_keys import KeyStore

if TYPE_CHECKING:  # SQLAlchemy is imported only by the commands that write or read
    from app.audit.log import AuditLog


def operator() -> AuditActor:
    """CLI actions have no API key: the operator is who runs the command on the host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # containers may run a uid with no passwd entry
        user = "unknown"
    return AuditActor(key_id=None, name=f"cli:{user}", role="operator")


def open_log(settings: Settings) -> AuditLog:
    from app.audit.log import AuditLog

    return AuditLog(settings.database_url)


def ensure_available(settings: Settings) -> None:
    """Called before an action, so an unreachable audit log stops it before it starts;
    AuditUnavailable reaches `medcite`'s main, which exits 2."""
    open_log(settings).close()


def record(settings: Settings, action: AuditAction, details: Details) -> None:
    log = open_log(settings)
    try:
        log.append(action, operator(), details)
    finally:
        log.close()


def record_new_keys(settings: Settings, store: KeyStore, before: set[str]) -> None:
    """One key_create record per key that is not in `before` (the key itself never)."""
    for k in store.list():
        if k.key_id not in before:
            record(settings, AuditAction.key_create, KeyDetails(
                kind="key_create", key_id=k.key_id, name=k.name, role=k.role.value,
                groups=k.groups))


def ingest_details(root: str, groups: tuple[str, ...] | None, report: Any) -> IngestDetails:
    counts: dict[str, int] = {}
    for r in report.results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return IngestDetails(
        path=root, groups=list(groups) if groups is not None else None,
        files=len(report.results), counts=counts, chunks_written=report.chunks_written,
        elapsed_s=round(report.elapsed_s, 2),
        changed=[
            IngestedFile(relpath=r.relpath, status=r.status, doc_id=r.doc_id, reason=r.reason,
                         doc_key=r.doc_key, version=r.version, changes=r.changes)
            for r in report.results if r.status in ("ingested", "failed")
        ],
    )
