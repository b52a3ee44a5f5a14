from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool

from app.auth import Principal, Role
from app.deps import get_services, require_role
from app.fhir_context import InvalidBundle
from app.schemas import AskRequest, AskResponse
from app.services import Services

router = APIRouter(tags=["answers"])
log = logging.getLogger("medcite.ask")


@router.post(
    "/ask",
    response_model=AskResponse,
    responses={
        401: {"description": "Missing or invalid API key"},
        403: {"description": "Role may not ask"},
        413: {"description": "Request or question too large"},
        422: {"description": "Invalid request or FHIR bundle"},
        503: {"description": "Generator or store unavailable"},
    },
)
async def ask(
    body: AskRequest,
    principal: Principal = Depends(require_role(Role.clinician, Role.integration)),
    services: Services = Depends(get_services),
) -> AskResponse:
    limit = services.settings.max_question_chars
    if len(body.question) > limit:
        raise HTTPException(
            413,
            f"question is {len(body.question)} characters; the limit is {limit}",
        )
    started = time.perf_counter()
    try:
        response = await run_in_threadpool(services.answers.ask, body, principal)
    except InvalidBundle as exc:
        raise HTTPException(422, str(exc)) from exc
    log.info(
        "ask answered",
        extra={
            "key_id": principal.key_id,
            "status": response.status.value,
            "passages": len(response.passages),
            "sentences": len(response.sentences),
            "with_fhir": body.fhir_bundle is not None,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return response
