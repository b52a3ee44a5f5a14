from __future__ import annotations

from fastapi import APIRouter, Depends

from app.deps import get_services
from app.schemas import HealthResponse
from app.services import Services

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
