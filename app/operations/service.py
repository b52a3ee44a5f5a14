"""One object per API's services that every operational signal goes through: the
metrics registry and the quality monitor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.answering.models import AskResponse
from app.audit.models import AuditAction, FeedbackDetails, FeedbackRating
from app.core.settings import Settings
from app.operations.alarms import Observation, QualityMonitor, record_observations
from app.operations.metrics import Metrics, ServiceCollector

if TYPE_CHECKING:
    from app.audit.log import AuditLog
    from app.core.container import Services


def audit_history(audit: AuditLog) -> Callable[[float], list[Observation]]:
    """The quality alarms' shared window: every worker's asks and feedback, read back
    from the audit log they all append to."""
    def since(moment: float) -> list[Observation]:
        return [o for ts, action, status, payload in audit.recent(
                    datetime.fromtimestamp(moment, UTC),
                    (AuditAction.ask, AuditAction.feedback))
                for o in record_observations(ts, action, status, payload)]
    return since


class Operations:
    def __init__(self, settings: Settings) -> None:
        self.metrics = Metrics()
        self.monitor = QualityMonitor(
            self.metrics, settings.alarm_thresholds, settings.alarm_window_s,
            settings.alarm_min_events, refresh_s=settings.alarm_refresh_s)

    def attach(self, services: Services) -> None:
        """Read the services' own figures at scrape time; observe the generator router."""
        self.metrics.registry.register(ServiceCollector(lambda: services))
        services.generator.observer = self.metrics
        if self.monitor.history is None:
            self.monitor.history = audit_history(services.audit)

    def observe_ask(
        self, status: int, response: AskResponse | None, error: str | None, latency_ms: float,
    ) -> None:
        """Every audited /ask and /ask/stream outcome (routes/ask.py append_ask_record)."""
        self.metrics.observe_ask(status, response, error, latency_ms)
        if response is not None:
            self.monitor.answered(response.status, "generation" in response.timings_ms)
        else:
            self.monitor.ask_failed(status, error)

    def observe_feedback(self, details: FeedbackDetails) -> None:
        reason = details.reason.value if details.reason else "none"
        self.metrics.feedback.labels(details.rating.value, reason).inc()
        self.monitor.feedback(details.rating is FeedbackRating.down)
