"""Quality alarms: rolling rates of what users get, against thresholds in settings.

Signals, each a share of its own events over the last `window_s` seconds:

* abstention, evidence_only, off_topic: of the answers given (HTTP 200), those with that
  status;
* generator_errors: of the asks that needed the generator, those it failed (unreachable
  or timed out);
* negative_feedback: of the feedback given, the thumbs-down.

A signal is judged once it has `min_events` events in the window (three abstentions out
of four questions is not yet a trend). Crossing the threshold raises the alarm once: a
structured log line `quality alarm raised` (signal, rate, threshold, counts; no question
or answer), the gauge `medcite_quality_alarm{signal}` set to 1, and GET /alarms shows it;
falling back below clears it the same way.

The window is shared: with a `history` (the audit log, which every API worker appends
to before it counts an event), the monitor rebuilds its window from the records of the
last `window_s` seconds at most every `refresh_s` seconds, so each worker judges all
workers' traffic and a restart starts with the window it left. Events a worker sees
between two refreshes are counted in memory until the next one replaces them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.answering.models import AnswerStatus
from app.operations.metrics import Metrics, error_class
from app.operations.models import AlarmState

log = logging.getLogger("medcite.alarms")

DEFAULT_THRESHOLDS: dict[str, float] = {
    "abstention": 0.5,
    "evidence_only": 0.3,
    "off_topic": 0.15,
    "generator_errors": 0.1,
    "negative_feedback": 0.3,
}
SIGNALS = tuple(DEFAULT_THRESHOLDS)
# Which event stream each signal is a share of.
_STREAM = {"abstention": "answers", "evidence_only": "answers", "off_topic": "answers",
           "generator_errors": "generation", "negative_feedback": "feedback"}
_STATUS_SIGNAL = {AnswerStatus.abstained: "abstention",
                  AnswerStatus.evidence_only: "evidence_only",
                  AnswerStatus.off_topic: "off_topic"}


GENERATOR_ERRORS = frozenset({"generator_timeout", "generator_unavailable"})
DEFAULT_REFRESH_S = 15.0

# (when, in epoch seconds; the stream it belongs to; the signal it counts for, or None)
Observation = tuple[float, str, str | None]
# The shared record of events since a moment (epoch seconds), oldest first.
History = Callable[[float], Iterable[Observation]]


def ask_observations(at: float, status: AnswerStatus | None, generated: bool | None,
                     http_status: int | None, error: str | None) -> list[Observation]:
    """What one /ask outcome counts for: an answer (and a generation, when the model was
    asked), or a generation the generator failed."""
    if status is not None:
        out: list[Observation] = [(at, "answers", _STATUS_SIGNAL.get(status))]
        return out + [(at, "generation", None)] if generated else out
    if error_class(http_status or 0, error) in GENERATOR_ERRORS:
        return [(at, "generation", "generator_errors")]
    return []


def record_observations(at: datetime, action: str, http_status: int | None,
                        payload: dict[str, Any]) -> list[Observation]:
    """The same, read back from an audit record (ask or feedback)."""
    when = at.timestamp()
    if action == "feedback":
        return [(when, "feedback",
                 "negative_feedback" if payload.get("rating") == "down" else None)]
    raw = payload.get("answer_status")
    try:
        status = AnswerStatus(raw) if raw is not None else None
    except ValueError:
        return []
    return ask_observations(when, status, payload.get("generated"), http_status,
                            payload.get("error"))


@dataclass
class _Stream:
    events: deque[tuple[float, str | None]] = field(default_factory=deque)
    counts: dict[str, int] = field(default_factory=dict)


def thresholds_from(overrides: dict[str, float]) -> dict[str, float]:
    unknown = set(overrides) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ValueError(f"MEDCITE_ALARM_THRESHOLDS: unknown signal(s) {sorted(unknown)}; "
                         f"known: {', '.join(SIGNALS)}")
    return {**DEFAULT_THRESHOLDS, **overrides}


class QualityMonitor:
    def __init__(
        self, metrics: Metrics, thresholds: dict[str, float], window_s: float,
        min_events: int, clock: Callable[[], float] = time.time,
        history: History | None = None, refresh_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        self.metrics = metrics
        self.thresholds = thresholds_from(thresholds)
        self.window_s = window_s
        self.min_events = min_events
        self._clock = clock
        self.history = history
        self.refresh_s = refresh_s
        self._synced: float | None = None
        self._lock = threading.Lock()
        self._streams = {name: _Stream() for name in set(_STREAM.values())}
        self._since: dict[str, datetime] = {}
        for signal in SIGNALS:
            metrics.alarm.labels(signal).set(0)

    # -- events --------------------------------------------------------------------------

    def answered(self, status: AnswerStatus, used_generator: bool) -> None:
        self._add(ask_observations(self._clock(), status, used_generator, 200, None))

    def ask_failed(self, http_status: int, error: str | None) -> None:
        self._add(ask_observations(self._clock(), None, None, http_status, error))

    def feedback(self, negative: bool) -> None:
        self._add([(self._clock(), "feedback", "negative_feedback" if negative else None)])

    def _add(self, observations: list[Observation]) -> None:
        if not observations:
            return
        with self._lock:
            for observation in observations:
                self._count(self._streams, observation)
            changed = self._judge()
        for state in changed:
            self._announce(state)

    @staticmethod
    def _count(streams: dict[str, _Stream], observation: Observation) -> None:
        at, stream, hit = observation
        s = streams[stream]
        s.events.append((at, hit))
        if hit:
            s.counts[hit] = s.counts.get(hit, 0) + 1

    def _refresh(self) -> None:
        """The window rebuilt from the shared history, at most every `refresh_s`."""
        now = self._clock()
        if self.history is None or (self._synced is not None
                                    and now - self._synced < self.refresh_s):
            return
        self._synced = now
        try:
            observations = sorted(self.history(now - self.window_s), key=lambda o: o[0])
        except Exception as exc:  # the in-memory window goes on; the next refresh retries
            log.warning("quality alarm history unavailable",
                        extra={"error": type(exc).__name__})
            return
        streams = {name: _Stream() for name in self._streams}
        for observation in observations:
            if observation[1] in streams:
                self._count(streams, observation)
        self._streams = streams

    # -- judging -------------------------------------------------------------------------

    def _expire(self) -> None:
        cutoff = self._clock() - self.window_s
        for s in self._streams.values():
            while s.events and s.events[0][0] <= cutoff:
                _, hit = s.events.popleft()
                if hit:
                    s.counts[hit] -= 1

    def _state(self, signal: str) -> AlarmState:
        s = self._streams[_STREAM[signal]]
        events, hits = len(s.events), s.counts.get(signal, 0)
        return AlarmState(
            signal=signal, rate=hits / events if events else None,
            threshold=self.thresholds[signal], events=events, hits=hits,
            min_events=self.min_events, window_s=self.window_s,
            active=signal in self._since, since=self._since.get(signal))

    def _judge(self) -> list[AlarmState]:
        """Update every signal; returns the states whose alarm was raised or cleared."""
        self._refresh()
        self._expire()
        changed = []
        for signal in SIGNALS:
            state = self._state(signal)
            self.metrics.quality_events.labels(signal).set(state.events)
            if state.rate is not None:
                self.metrics.quality_rate.labels(signal).set(state.rate)
            over = (state.events >= self.min_events and state.rate is not None
                    and state.rate > state.threshold)
            if over and not state.active:
                self._since[signal] = datetime.now(UTC)
                changed.append(state.model_copy(update={"active": True,
                                                        "since": self._since[signal]}))
            elif not over and state.active:
                del self._since[signal]
                changed.append(state.model_copy(update={"active": False, "since": None}))
        return changed

    def _announce(self, state: AlarmState) -> None:
        self.metrics.alarm.labels(state.signal).set(1 if state.active else 0)
        extra = {"signal": state.signal, "rate": round(state.rate or 0.0, 4),
                 "threshold": state.threshold, "hits": state.hits, "events": state.events,
                 "window_s": state.window_s}
        if state.active:
            log.warning("quality alarm raised", extra=extra)
        else:
            log.info("quality alarm cleared", extra=extra)

    def states(self) -> list[AlarmState]:
        with self._lock:
            changed = self._judge()
            states = [self._state(signal) for signal in SIGNALS]
        for state in changed:
            self._announce(state)
        return states
