"""QualityMonitor on synthetic events with a moved clock: the window rolls, the minimum
event count holds an alarm back, thresholds come from settings."""

from __future__ import annotations

import pytest

from app.answering.models import AnswerStatus
from app.operations.alarms import QualityMonitor
from app.operations.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _states(monitor: QualityMonitor) -> dict[str, bool]:
    return {s.signal: s.active for s in monitor.states()}


def test_rates_roll_over_the_window() -> None:
    clock = Clock()
    metrics = Metrics()
    monitor = QualityMonitor(metrics, {"off_topic": 0.2}, window_s=60, min_events=5,
                             clock=clock)
    for _ in range(4):
        monitor.answered(AnswerStatus.off_topic, used_generator=True)
    assert not _states(monitor)["off_topic"], "4 events: under the minimum"
    monitor.answered(AnswerStatus.verified, used_generator=True)
    assert _states(monitor)["off_topic"]  # 4 of 5 > 0.2
    assert metrics.alarm.labels("off_topic")._value.get() == 1
    clock.now += 61  # the burst leaves the window
    for _ in range(5):
        monitor.answered(AnswerStatus.verified, used_generator=True)
    states = {s.signal: s for s in monitor.states()}
    assert not states["off_topic"].active and states["off_topic"].events == 5
    assert metrics.alarm.labels("off_topic")._value.get() == 0


def test_feedback_and_generator_signals_have_their_own_denominators() -> None:
    monitor = QualityMonitor(Metrics(), {}, window_s=60, min_events=2, clock=Clock())
    monitor.answered(AnswerStatus.verified, used_generator=True)
    monitor.ask_failed(503, "generator unavailable: all endpoints failed")
    monitor.ask_failed(429, None)  # a refusal is not a generation
    monitor.feedback(negative=True)
    monitor.feedback(negative=False)
    states = {s.signal: s for s in monitor.states()}
    assert states["generator_errors"].rate == 0.5 and states["generator_errors"].active
    assert states["negative_feedback"].rate == 0.5 and states["negative_feedback"].active
    assert states["abstention"].events == 1 and not states["abstention"].active


def test_unknown_signal_in_settings_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        QualityMonitor(Metrics(), {"abstension": 0.5}, window_s=60, min_events=1)


def test_every_worker_judges_all_workers_traffic_through_the_audit_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two API workers (two monitors) append to one audit log: a burst of off-topic
    answers on one raises the alarm on the other at its next refresh, and a worker that
    restarts starts with the window the log holds, not an empty one."""
    from datetime import UTC, datetime

    from app.audit.log import AuditLog
    from app.audit.models import AskDetails, AuditAction, AuditActor, FeedbackDetails
    from app.operations.service import audit_history

    clock = Clock()
    clock.now = datetime(2026, 12, 5, 12, tzinfo=UTC).timestamp()
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}",
                     clock=lambda: datetime.fromtimestamp(clock.now, UTC))
    who = AuditActor(key_id="k1", name="clinician", role="clinician")

    def worker() -> QualityMonitor:
        return QualityMonitor(Metrics(), {"off_topic": 0.2}, window_s=600, min_events=5,
                              clock=clock, history=audit_history(audit), refresh_s=15)

    one, two = worker(), worker()
    assert not {s.signal: s.active for s in two.states()}["off_topic"]
    for i in range(6):  # what the ask route does: audit, then count
        audit.append(AuditAction.ask, who, AskDetails(
            model_endpoint="http://llm", model="m", latency_ms=1.0,
            answer_status=AnswerStatus.off_topic if i % 2 else AnswerStatus.verified,
            generated=True), 200)
        one.answered(AnswerStatus.off_topic if i % 2 else AnswerStatus.verified, True)
    audit.append(AuditAction.ask, who, AskDetails(
        model_endpoint="http://llm", model="m", latency_ms=1.0,
        error="generator unavailable"), 503)
    audit.append(AuditAction.feedback, who, FeedbackDetails(answer_id=1, rating="down"))
    assert _states(one)["off_topic"]
    assert not _states(two)["off_topic"], "two refreshed 0 s ago: not yet"
    clock.now += 16
    states = {s.signal: s for s in two.states()}
    assert states["off_topic"].active and states["off_topic"].events == 6
    assert states["off_topic"].hits == 3
    assert states["generator_errors"].events == 7 and states["generator_errors"].hits == 1
    assert states["negative_feedback"].hits == 1
    # A restarted worker: the window it left.
    assert {s.signal: s for s in worker().states()}["off_topic"].events == 6
    # The burst leaves the window everywhere.
    clock.now += 601
    assert not _states(two)["off_topic"] and not _states(one)["off_topic"]
