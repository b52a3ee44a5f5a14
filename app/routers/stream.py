from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.answer import StreamEvent
from app.auth import Principal, Role
from app.deps import get_services, require_role
from app.fhir_context import InvalidBundle
from app.generator import GeneratorUnavailable
from app.schemas import AskRequest
from app.services import Services

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
    limit = services.settings.max_question_chars
    if len(body.question) > limit:
        raise HTTPException(413, f"question is {len(body.question)} characters; the limit "
                            f"is {limit}")
    events = services.answers.stream(body, principal)
    try:
        # Run the first step now, so a bad bundle is a 422 rather than a broken stream.
        first = await run_in_threadpool(next, events)
    except InvalidBundle as exc:
        raise HTTPException(422, str(exc)) from exc

    def body_iter() -> Iterator[str]:
        yield sse(first)
        try:
            for event in events:
                yield sse(event)
        except GeneratorUnavailable:
            yield sse(StreamEvent("error", {
                "detail": "The answer generator is unavailable; try again shortly."}))

    return StreamingResponse(body_iter(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})
