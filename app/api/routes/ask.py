from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool

from app.answering.fhir_context import InvalidBundle
from app.answering.models import AskRequest, AskResponse
from app.answering.pipeline import Draft
from app.api.admission import Overloaded
from app.api.deps import actor_of, get_services, require_role
from app.audit.models import AuditAction, AuditUnavailable, ask_details
from app.core.container import Services
from app.llm.client import GeneratorUnavailable, generation_timed_out
from app.security.api_keys import Principal, Role
from retrieval.store import StoreUnavailable

router = APIRouter(tags=["answers"])
log = logging.getLogger("medcite.ask")


def status_of(exc: Exception) -> int:
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, GeneratorUnavailable | StoreUnavailable | AuditUnavailable):
        return 503
    return 500


def error_of(exc: Exception) -> str:
    if isinstance(exc, HTTPException):
        return f"HTTP {exc.status_code}: {exc.detail}"
    if isinstance(exc, GeneratorUnavailable):
        return "generator timed out" if generation_timed_out(exc) else "generator unavailable"
    if isinstance(exc, StoreUnavailable):
        return "store unavailable"
    return type(exc).__name__


def log_failure(exc: BaseException, principal: Principal) -> None:
    """An unexpected failure, logged without its message or traceback text: either may
    quote the question or patient data. The type and place are enough to find it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
    log.error("ask failed", extra={"key_id": principal.key_id,
                                   "error": type(exc).__name__, "where": where})


P = ParamSpec("P")
R = TypeVar("R")


def append_ask_record(
    services: Services,
    principal: Principal,
    body: AskRequest | None,
    started: float,
    status: int,
    response: AskResponse | None = None,
    error: str | None = None,
) -> int:
    """Append the audit record of one /ask or /ask/stream, or raise AuditUnavailable: an
    answer that could not be recorded is not given. Returns the record's seq: the
    answer's id. Every outcome is also counted (metrics, quality alarms)."""
    # The router names its first endpoint; the response names the model that answered.
    details = ask_details(
        body, response,
        endpoint=services.generator.base_url,
        model=response.model if response else services.generator.model,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        max_question_chars=services.settings.max_question_chars, error=error,
    )
    seq = services.audit.append(AuditAction.ask, actor_of(principal), details, status).seq
    services.ops.observe_ask(status, response, error, details.latency_ms)
    return seq


def _off_loop(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`fn` (blocking: the audit database) run in the thread pool, awaitable."""

    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return await run_in_threadpool(fn, *args, **kwargs)

    return call


# The same record, from async routes.
record_ask = _off_loop(append_ask_record)


INTERNAL = "internal error; see the server log"


async def record_failure(
    services: Services, principal: Principal, body: AskRequest, started: float,
    exc: Exception,
) -> int:
    """Audit a failed ask and return its HTTP status: 422 for a bad bundle, else as
    `status_of` says; a 500's place (never its message) goes to the log."""
    if isinstance(exc, InvalidBundle):
        await record_ask(services, principal, body, started, 422, error=str(exc))
        return 422
    status = status_of(exc)
    await record_ask(services, principal, body, started, status, error=error_of(exc))
    if status == 500:
        log_failure(exc, principal)
    return status


def check_limits(body: AskRequest, principal: Principal, services: Services) -> None:
    """The per-key rate limit (429 with Retry-After), then the question length (413)."""
    wait = services.limiter.hit(principal.key_id)
    if wait is not None:
        per_minute = services.limiter.per_minute
        raise HTTPException(
            429,
            f"rate limit exceeded: {per_minute} requests per minute per API key; "
            f"retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )
    limit = services.settings.max_question_chars
    if len(body.question) > limit:
        raise HTTPException(
            413,
            f"question is {len(body.question)} characters; the limit is {limit}",
        )


def at_capacity(exc: Overloaded) -> HTTPException:
    """The admission gate's refusal as a 503 that says when to come back."""
    return HTTPException(
        503,
        f"medcite is answering at capacity ({exc}); retry after {exc.retry_after_s} s",
        headers={"Retry-After": str(exc.retry_after_s)},
    )


async def generate_admitted(services: Services, draft: Draft) -> AskResponse:
    """Generation and verification, through the admission gate (its wait is reported
    as `queue` in timings_ms)."""
    try:
        async with services.admission.slot() as waited_s:
            draft.timings["queue"] = round(waited_s * 1000, 1)
            return await run_in_threadpool(services.answers.generate_answer, draft)
    except Overloaded as exc:
        raise at_capacity(exc) from None


@router.post(
    "/ask",
    response_model=AskResponse,
    responses={
        401: {"description": "Missing or invalid API key"},
        403: {"description": "Role may not ask"},
        413: {"description": "Request or question too large"},
        422: {"description": "Invalid request or FHIR bundle"},
        429: {"description": "Rate limit exceeded; see the Retry-After header"},
        503: {"description": "Generator, store or audit log unavailable, generation "
                             "timed out, or at capacity (see the Retry-After header)"},
    },
)
async def ask(
    body: AskRequest,
    principal: Principal = Depends(require_role(Role.clinician, Role.integration)),
    services: Services = Depends(get_services),
) -> AskResponse:
    started = time.perf_counter()
    try:
        check_limits(body, principal, services)
        draft, response = await run_in_threadpool(services.answers.prepare, body, principal)
        if response is None:
            response = await generate_admitted(services, draft)
    except Exception as exc:
        if await record_failure(services, principal, body, started, exc) == 422:
            raise HTTPException(422, str(exc)) from exc
        if status_of(exc) == 500:
            raise HTTPException(500, INTERNAL) from None
        raise
    response.answer_id = await record_ask(services, principal, body, started, 200,
                                          response=response)
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
