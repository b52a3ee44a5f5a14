from __future__ import annotations

from fastapi import APIRouter, Depends

from app.answering.models import HealthResponse
from app.api.deps import get_services
from app.core.container import Services

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
def health(services: Services = Depends(get_services)) -> HealthResponse:
    llm_ok = services.generator.ping()
    return HealthResponse(
        status="ok" if llm_ok else "degraded",
        collection=services.settings.collection,
        passages=services.passage_count(),
        llm=f"{services.generator.model} at {services.generator.base_url}"
        + ("" if llm_ok else " (unreachable)"),
    )
