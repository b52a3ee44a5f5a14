"""`POST /backup` (admin): the backup `medcite backup` writes, taken by the API process
itself. The embedded edge engine's files can only be copied by the process that holds
them, so while the API runs on it this is how a consistent backup is taken; with the
other engines `medcite backup` from another process works as well. The archive is written
under the data folder's `backups/` (a caller never names a server path). Each backup is
an audit record: the archive holds every question, answer and key."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from app.api.deps import actor_of, get_services, require_role
from app.audit.models import AuditAction, BackupDetails
from app.core.container import Services
from app.security.api_keys import Principal, Role

router = APIRouter(tags=["operations"])


class BackupResult(BaseModel):
    path: str
    parts: int
    archive_bytes: int
    seconds: float
    audit_records: int | None
    notes: list[str]


@router.post(
    "/backup",
    response_model=BackupResult,
    responses={401: {"description": "Missing or invalid API key"},
               403: {"description": "Role is not admin"},
               503: {"description": "The backup could not be taken; nothing was written"}},
)
async def take_backup(
    principal: Principal = Depends(require_role(Role.admin)),
    services: Services = Depends(get_services),
) -> BackupResult:
    from app.operations.backup import BackupError, create_backup
    from retrieval.store import StoreUnavailable

    settings = services.settings
    out = settings.data_dir / "backups" / f"medcite-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.tar.gz"
    try:
        report = await run_in_threadpool(create_backup, settings, out, client=services.client)
    except (BackupError, StoreUnavailable) as exc:
        raise HTTPException(503, f"backup failed, no archive written: {exc}") from exc
    await run_in_threadpool(services.audit.append, AuditAction.backup, actor_of(principal),
                            BackupDetails(path=str(report.path), parts=len(report.parts),
                                          archive_bytes=report.archive_bytes,
                                          audit_records=report.audit_records), 200)
    return BackupResult(path=str(report.path), parts=len(report.parts),
                        archive_bytes=report.archive_bytes, seconds=round(report.seconds, 2),
                        audit_records=report.audit_records, notes=report.notes)
