"""The FastAPI application: thin routers over the services built at start-up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response, status
from fastapi.responses import JSONResponse

from app.generator import GeneratorUnavailable
from app.routers import ask, health
from app.services import Services, build_services
from app.settings import Settings, get_settings
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
    async def generator_down(_: Request, exc: GeneratorUnavailable) -> JSONResponse:
        log.warning("generator unavailable", extra={"error": type(exc).__name__})
        return JSONResponse(
            {"detail": "The answer generator is unavailable; try again shortly."},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.exception_handler(StoreUnavailable)
    async def store_down(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    app.include_router(health.router)
    app.include_router(ask.router)
    return app
