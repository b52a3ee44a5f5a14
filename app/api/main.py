"""The FastAPI application: thin routers over the services built at start-up."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response, status
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.api.routes import (
    ask,
    audit,
    backup,
    documents,
    feedback,
    health,
    me,
    operations,
    review,
    stream,
)
from app.audit.models import AuditUnavailable
from app.core.container import Services, build_services
from app.core.settings import Settings, get_settings
from app.llm.client import GeneratorUnavailable, generation_timed_out
from app.operations.metrics import MetricsMiddleware
from retrieval.store import StoreUnavailable

log = logging.getLogger("medcite.api")


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = services is None
        app.state.services = services or build_services(settings)
        log.info("api ready", extra={"collection": settings.collection})
        try:
            yield
        finally:
            if own:
                app.state.services.close()

    app = FastAPI(
        title="medcite",
        version="0.1.0",
        description="Clinical question answering with verified citations.",
        lifespan=lifespan,
    )

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_request_bytes:
            return JSONResponse(
                {"detail": f"request body is {declared} bytes; the limit is "
                 f"{settings.max_request_bytes}"},
                status_code=413,
            )
        return await call_next(request)

    @app.exception_handler(GeneratorUnavailable)
    async def generator_down(request: Request, exc: GeneratorUnavailable) -> JSONResponse:
        timed_out = generation_timed_out(exc)
        timeout_s = request.app.state.services.settings.llm_timeout_s
        log.warning("generator unavailable",
                    extra={"error": type(exc).__name__, "timed_out": timed_out})
        detail = (
            f"The answer generator did not answer within {timeout_s:g} s (LLM_TIMEOUT_S); "
            "try again shortly." if timed_out else
            "The answer generator is unavailable (unreachable, failing, or slower than "
            f"LLM_TIMEOUT_S = {timeout_s:g} s); try again shortly."
        )
        return JSONResponse({"detail": detail}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(AuditUnavailable)
    async def audit_down(_: Request, exc: AuditUnavailable) -> JSONResponse:
        log.error("audit log unavailable", extra={"error": str(exc)})
        return JSONResponse(
            {"detail": "The audit log could not be written, so the request was refused "
             "(nothing is answered unaudited); try again shortly or tell the operator."},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # The caller was authenticated before the body was rejected: audit the attempt.
        principal = getattr(request.state, "principal", None)
        if principal is not None and request.url.path == "/ask":
            try:
                await ask.record_ask(
                    request.app.state.services, principal, None, time.perf_counter(), 422,
                    error=f"invalid request ({len(exc.errors())} error(s))",
                )
            except AuditUnavailable as down:
                return await audit_down(request, down)
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(StoreUnavailable)
    async def store_down(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    app.include_router(health.router)
    app.include_router(ask.router)
    app.include_router(stream.router)
    app.include_router(audit.router)
    app.include_router(documents.router)
    app.include_router(me.router)
    app.include_router(feedback.router)
    app.include_router(review.router)
    app.include_router(operations.router)
    app.include_router(backup.router)
    # Outermost: it sees every request, the refused ones too, and a stream's whole length.
    app.add_middleware(MetricsMiddleware)
    return app
