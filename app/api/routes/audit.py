from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from app.api.deps import actor_of, get_services, require_role
from app.audit.log import AuditQuery
from app.audit.models import AuditAction, AuditPage, AuditQueryDetails
from app.core.container import Services
from app.security.api_keys import Principal, Role

router = APIRouter(tags=["audit"])

# PostgreSQL text can't hold NUL; refusing it here keeps a stray byte from becoming a 5xx.
_NO_NUL = r"^[^\x00]*$"


@router.get(
    "/audit",
    response_model=AuditPage,
    responses={
        401: {"description": "Missing or invalid API key"},
        403: {"description": "Role is not auditor or admin"},
        422: {"description": "Invalid filter"},
        503: {"description": "Audit log unavailable"},
    },
)
async def list_audit(
    user: str | None = Query(
        None, max_length=200, pattern=_NO_NUL, description="Key id or key name."
    ),
    date_from: date | None = Query(
        None, alias="from", description="First day (UTC), inclusive, e.g. 2025-01-31."
    ),
    date_to: date | None = Query(None, alias="to", description="Last day (UTC), inclusive."),
    doc_id: str | None = Query(
        None, max_length=500, pattern=_NO_NUL,
        description="Only /ask records whose retrieved passages include this document.",
    ),
    action: AuditAction | None = Query(None),
    limit: int = Query(50, ge=1, le=200),
    cursor: int | None = Query(
        None, ge=1, le=2**62, description="`next_cursor` of the previous page."
    ),
    principal: Principal = Depends(require_role(Role.auditor)),
    services: Services = Depends(get_services),
) -> AuditPage:
    """Audit records, newest first. Reading them is itself recorded."""
    if date_from and date_to and date_from > date_to:
        raise HTTPException(422, "`from` is after `to`")
    query = AuditQuery(user=user, since=date_from, until=date_to, doc_id=doc_id,
                       action=action, limit=limit, cursor=cursor)
    page = await run_in_threadpool(services.audit.search, query)
    await run_in_threadpool(
        services.audit.append, AuditAction.audit_query, actor_of(principal),
        AuditQueryDetails(filters=query.as_filters(), returned=len(page.records)), 200,
    )
    return page
