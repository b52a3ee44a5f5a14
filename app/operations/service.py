"""One object per API's services that every operational signal goes through: the
metrics registry and the quality monitor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.answering.models import AskResponse
from app.audit.models import FeedbackDetails, FeedbackRating
from app.core.settings import Settings
from app.operations.alarms import QualityMonitor
from app.operations.metrics import Metrics, ServiceCollector, error_class

if TYPE_CHECKING:
    from app.core.container import Services

GENERATOR_ERRORS = frozenset({"generator_timeout", "generator_unavailable"})


class Operations:
    def __init__(self, settings: Settings) -> None:
        self.metrics = Metrics()
        self.monitor = QualityMonitor(
            self.metrics, settings.alarm_thresholds, settings.alarm_window_s,
            settings.alarm_min_events)

    def attach(self, services: Services) -> None:
        """Read the services' own figures at scrape time; observe the generator router."""
        self.metrics.registry.register(ServiceCollector(lambda: services))
        services.generator.observer = self.metrics

    def observe_ask(
        self, status: int, response: AskResponse | None, error: str | None, latency_ms: float,
    ) -> None:
        """Every audited /ask and /ask/stream outcome (routes/ask.py append_ask_record)."""
        self.metrics.observe_ask(status, response, error, latency_ms)
        if response is not None:
            self.monitor.answered(response.status, "generation" in response.timings_ms)
        elif error_class(status, error) in GENERATOR_ERRORS:
            self.monitor.generator_failed()

    def observe_feedback(self, details: FeedbackDetails) -> None:
        reason = details.reason.value if details.reason else "none"
        self.metrics.feedback.labels(details.rating.value, reason).inc()
        self.monitor.feedback(details.rating is FeedbackRating.down)
