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
    monitor.generator_failed()
    monitor.feedback(negative=True)
    monitor.feedback(negative=False)
    states = {s.signal: s for s in monitor.states()}
    assert states["generator_errors"].rate == 0.5 and states["generator_errors"].active
    assert states["negative_feedback"].rate == 0.5 and states["negative_feedback"].active
    assert states["abstention"].events == 1 and not states["abstention"].active


def test_unknown_signal_in_settings_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        QualityMonitor(Metrics(), {"abstension": 0.5}, window_s=60, min_events=1)
