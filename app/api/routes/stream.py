from __future__ import annotations

import itertools
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterator

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.answering.models import AskRequest, AskResponse
from app.answering.pipeline import GENERATE, StreamEvent
from app.api.admission import Overloaded
from app.api.deps import get_services, require_role
from app.api.routes.ask import (
    INTERNAL,
    append_ask_record,
    at_capacity,
    check_limits,
    error_of,
    log_failure,
    record_ask,
    record_failure,
    status_of,
)
from app.audit.models import AuditUnavailable
from app.core.container import Services
from app.llm.client import GeneratorUnavailable
from app.security.api_keys import Principal, Role

router = APIRouter(tags=["answers"])


def sse(event: StreamEvent) -> str:
    return f"event: {event.event}\ndata: {json.dumps(event.data, default=str)}\n\n"


@router.post(
    "/ask/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "Server-sent events: `passages`, then `token` "
                     "(raw model output as generated), then `answer` (the verified "
                     "AskResponse; only this one is to be shown as the answer), or "
                     "`error`."}},
)
async def ask_stream(
    body: AskRequest,
    principal: Principal = Depends(require_role(Role.clinician, Role.integration)),
    services: Services = Depends(get_services),
) -> StreamingResponse:
    started = time.perf_counter()
    try:
        check_limits(body, principal, services)
    except HTTPException as exc:
        await record_ask(services, principal, body, started, exc.status_code,
                         error=f"HTTP {exc.status_code}: {exc.detail}")
        raise
    events = services.answers.stream(body, principal)
    try:
        # Run the steps before the model now, so a bad bundle is a 422 rather than a
        # broken stream, and so that an answer given without the model (an abstention,
        # a lookup) takes no admission slot: the next event is that answer, or the
        # pipeline's GENERATE mark.
        first = await run_in_threadpool(next, events)
        second = await run_in_threadpool(next, events, None)
    except Exception as exc:
        # Before the first event (retrieval: the store, the embedder) the failure is still
        # an HTTP status, as on /ask: 503 for a service that is down, else 500.
        status = await record_failure(services, principal, body, started, exc)
        if status == 422:
            raise HTTPException(422, str(exc)) from exc
        if status == 500:
            raise HTTPException(500, INTERNAL) from None
        raise HTTPException(503, f"{error_of(exc)}; try again shortly") from None
    # Generation runs while the response streams, so its admission slot is held until
    # the stream ends.
    needs_model = second is not None and second.event == GENERATE
    if needs_model:
        try:
            await services.admission.acquire()
        except Overloaded as exc:
            refused = at_capacity(exc)
            await record_ask(services, principal, body, started, 503,
                             error=f"HTTP 503: {refused.detail}")
            raise refused from None
        release = _release_once(services, time.perf_counter())
    else:
        def release() -> None:
            return None
    rest = events if second is None or needs_model else itertools.chain([second], events)

    def record(status: int, response: AskResponse | None, error: str | None) -> int:
        return append_ask_record(services, principal, body, started, status, response, error)

    def body_iter() -> Iterator[str]:
        try:
            yield from stream_events()
        finally:
            release()

    def stream_events() -> Iterator[str]:
        yield sse(first)
        try:
            for event in rest:
                if event.event == GENERATE:
                    continue
                if event.event != "answer":
                    yield sse(event)
                    continue
                # As with /ask: an answer that could not be audited is not given.
                try:
                    answer_id = record(200, AskResponse.model_validate(event.data), None)
                except AuditUnavailable:
                    yield sse(StreamEvent("error", {"detail": "The audit log could not be "
                                                    "written, so no answer is given."}))
                    return
                yield sse(StreamEvent("answer", {**event.data, "answer_id": answer_id}))
        except GeneratorUnavailable as exc:
            try:
                record(503, None, error_of(exc))
            except AuditUnavailable:
                pass
            yield sse(StreamEvent("error", {
                "detail": "The answer generator is unavailable; try again shortly."}))
        except Exception as exc:
            # Anything else mid-stream: the headers are sent, so the status can only be
            # told by an `error` event; the audit log still records the failure.
            status = status_of(exc)
            try:
                record(status, None, error_of(exc))
            except AuditUnavailable:
                pass
            if status == 500:
                log_failure(exc, principal)
                detail = "Internal error while answering; see the server log."
            else:
                detail = f"The service is unavailable ({error_of(exc)}); try again shortly."
            yield sse(StreamEvent("error", {"detail": detail}))

    chunks = body_iter()
    # A stream the client dropped before its first chunk never runs body_iter's finally.
    weakref.finalize(chunks, release)
    return StreamingResponse(chunks, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})


def _release_once(services: Services, since: float) -> Callable[[], None]:
    """Gives the admission slot back exactly once, from whichever path ends the stream."""
    lock = threading.Lock()
    done = [False]

    def release() -> None:
        with lock:
            if done[0]:
                return
            done[0] = True
        services.admission.release(time.perf_counter() - since)

    return release
