"""GET /metrics (Prometheus) and GET /alarms (the quality alarms' state).

/metrics is served on the API's own port and needs a key: role `metrics` (a scraper's
key, which can do nothing else), auditor or admin. The figures carry no PHI, but they do
tell who uses the service how much, and the API port is the one a hospital network
already guards; a second, unauthenticated port would be one more thing to firewall.
Scrapes are not audited (every 15 s would flood the chain); refused ones are.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import get_services, require_role
from app.core.container import Services
from app.operations.models import AlarmState
from app.security.api_keys import Principal, Role

router = APIRouter(tags=["operations"])

ServicesDep = Annotated[Services, Depends(get_services)]


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                     "description": "Prometheus text exposition format."},
               401: {"description": "Missing or invalid API key"},
               403: {"description": "Role is not metrics, auditor or admin"}},
)
def metrics(
    _: Annotated[Principal, Depends(require_role(Role.metrics, Role.auditor))],
    services: ServicesDep,
) -> Response:
    """This API process's metrics: requests, stage latencies, answers by status and
    reason class, citations, generator throughput and errors, admission, rate limit,
    ingest, audit-write failures and quality alarms."""
    return Response(generate_latest(services.ops.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/alarms",
    response_model=list[AlarmState],
    responses={401: {"description": "Missing or invalid API key"},
               403: {"description": "Role is not auditor or admin"}},
)
def alarms(
    _: Annotated[Principal, Depends(require_role(Role.auditor))],
    services: ServicesDep,
) -> list[AlarmState]:
    """Each quality signal's rate over the window, its threshold and whether its alarm
    is raised (rates only: no question, answer or user)."""
    return services.ops.monitor.states()
