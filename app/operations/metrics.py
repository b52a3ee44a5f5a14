"""The Prometheus metrics of one API process (GET /metrics), defined in one place.

Every label value comes from a closed set the code defines (route templates, statuses,
reason and error classes, endpoint names of the generator router): never a question,
an answer, a document name or anything from a patient bundle. Free text that the
pipeline produces (an abstention reason can name the drugs asked about) is reduced to a
fixed class before it becomes a label.

Each `Metrics` has its own registry, so two apps in one process (tests) never share
counters. Values read from other objects at scrape time (the admission gate, failed
audit writes, ingest runs recorded in the audit log) come from `ServiceCollector`.
With several API worker processes, each serves its own figures: scrape each one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.answering.models import AskResponse

if TYPE_CHECKING:
    from app.core.container import Services

# Seconds; answers on a CPU take up to minutes, retrieval milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
                   30.0, 60.0, 120.0, 300.0)
TOKENS_PER_S_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 200.0, 500.0,
                        1000.0)
# The stages the pipeline times (AskResponse.timings_ms); anything else is "other".
STAGES = frozenset({"retrieval", "queue", "generation", "verification"})

# Why an answer is not (fully) verified, as a fixed class: the reason text itself may
# quote the question (it names drugs the sources do not mention).
REASON_CLASSES = (
    ("No passage in the knowledge base", "no_relevant_passages"),
    ("The retrieved sources do not mention", "drug_not_in_sources"),
    ("The model did not return a well-formed", "malformed_output"),
    ("No sentence of the generated answer could be verified", "not_verified"),
    ("The generated answer does not address the question", "not_addressed"),
    ("The answer names some of the items", "list_incomplete"),
)


def reason_class(response: AskResponse) -> str:
    reason = response.abstain_reason or response.status_reason
    if not reason:
        return "none"
    for prefix, name in REASON_CLASSES:
        if reason.startswith(prefix):
            return name
    # The model's own words: it declined to answer.
    return "model_abstained" if response.abstained else "other"


def error_class(status: int, error: str | None) -> str:
    """An ask that was not answered, as a fixed class (`error` is routes.ask.error_of's)."""
    text = error or ""
    if text.startswith("generator timed out"):
        return "generator_timeout"
    if text.startswith("generator unavailable"):
        return "generator_unavailable"
    if text.startswith("store unavailable"):
        return "store_unavailable"
    if status == 429:
        return "rate_limited"
    if status == 413:
        return "too_large"
    if status == 422:
        return "invalid_request"
    if status == 503 and "capacity" in text:
        return "at_capacity"
    if status == 503:
        return "unavailable"
    return "internal" if status >= 500 else f"http_{status}"


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "medcite_http_requests", "HTTP requests by route template and status.",
            ["method", "endpoint", "status"], registry=r)
        self.request_seconds = Histogram(
            "medcite_http_request_duration_seconds",
            "HTTP request time, to the last byte of the response (a stream's whole length).",
            ["method", "endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.stage_seconds = Histogram(
            "medcite_stage_duration_seconds",
            "Time per answering stage (retrieval, queue, generation, verification).",
            ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.ask_seconds = Histogram(
            "medcite_ask_duration_seconds",
            "Whole /ask or /ask/stream time as audited, by outcome (answered or failed).",
            ["outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.answers = Counter(
            "medcite_answers", "Answers given, by status and reason class.",
            ["status", "reason_class"], registry=r)
        self.ask_failures = Counter(
            "medcite_ask_failures", "Asks not answered, by HTTP status and error class.",
            ["http_status", "error_class"], registry=r)
        self.citations = Counter(
            "medcite_citations", "Citations of answer sentences by verification status "
            "(sentences removed by strict mode included).", ["status"], registry=r)
        self.rate_limited = Counter(
            "medcite_rate_limit_hits", "Asks refused by the per-key rate limit (429).",
            registry=r)
        self.generator_seconds = Histogram(
            "medcite_generator_request_duration_seconds",
            "Completion time per generator endpoint of the router.", ["endpoint"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.generator_tokens = Counter(
            "medcite_generator_completion_tokens",
            "Completion tokens per endpoint (a stream counts its chunks).", ["endpoint"],
            registry=r)
        self.generator_tps = Histogram(
            "medcite_generator_tokens_per_second", "Completion tokens per second per request.",
            ["endpoint"], buckets=TOKENS_PER_S_BUCKETS, registry=r)
        self.generator_errors = Counter(
            "medcite_generator_errors", "Failed generator calls per endpoint "
            "(timeout or unavailable; each retry counts).", ["endpoint", "kind"], registry=r)
        self.feedback = Counter(
            "medcite_feedback", "Clinician feedback on answers, by rating and reason.",
            ["rating", "reason"], registry=r)
        self.reviews = Counter(
            "medcite_reviews", "Review labels given, by verdict.", ["verdict"], registry=r)
        self.alarm = Gauge(
            "medcite_quality_alarm", "1 while a quality signal is over its threshold.",
            ["signal"], registry=r)
        self.quality_rate = Gauge(
            "medcite_quality_rate", "A quality signal's rate over the alarm window.",
            ["signal"], registry=r)
        self.quality_events = Gauge(
            "medcite_quality_events", "Events a quality signal's rate is computed from.",
            ["signal"], registry=r)

    # -- observations --------------------------------------------------------------------

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(method, endpoint, str(status)).inc()
        self.request_seconds.labels(method, endpoint).observe(seconds)

    def observe_ask(
        self, status: int, response: AskResponse | None, error: str | None, latency_ms: float,
    ) -> None:
        if response is None:
            self.ask_failures.labels(str(status), error_class(status, error)).inc()
            self.ask_seconds.labels("failed").observe(latency_ms / 1000)
            if status == 429:
                self.rate_limited.inc()
            return
        self.ask_seconds.labels("answered").observe(latency_ms / 1000)
        self.answers.labels(response.status.value, reason_class(response)).inc()
        for stage, ms in response.timings_ms.items():
            self.stage_seconds.labels(stage if stage in STAGES else "other").observe(ms / 1000)
        for sentence in (*response.sentences, *response.removed_sentences):
            for citation in sentence.citations:
                self.citations.labels(citation.status.value).inc()

    # The generator router's observer (app/llm/router.py).

    def generator_completed(self, endpoint: str, seconds: float, tokens: int | None) -> None:
        self.generator_seconds.labels(endpoint).observe(seconds)
        if tokens:
            self.generator_tokens.labels(endpoint).inc(tokens)
            if seconds > 0:
                self.generator_tps.labels(endpoint).observe(tokens / seconds)

    def generator_failed(self, endpoint: str, timed_out: bool) -> None:
        self.generator_errors.labels(endpoint, "timeout" if timed_out else "unavailable").inc()



class ServiceCollector(Collector):
    """Figures read from the services at scrape time: the admission gate, failed audit
    writes, and ingest runs (from their audit records, so `medcite ingest` runs in other
    processes count too; read incrementally, newest records only)."""

    def __init__(self, services: Callable[[], Services | None]) -> None:
        self._services = services
        self._lock = threading.Lock()
        self._ingest_seen = 0  # the highest ingest record seq already counted
        self._files: dict[str, int] = {}
        self._chunks = 0
        self._runs = 0

    def describe(self) -> Iterable[Metric]:
        return []  # collected lazily; nothing to describe up front

    def collect(self) -> Iterable[Metric]:
        services = self._services()
        if services is None:
            return []
        stats = services.admission.stats()
        out: list[Metric] = [
            GaugeMetricFamily("medcite_admission_in_flight", "Answers being generated.",
                              value=stats.in_flight),
            GaugeMetricFamily("medcite_admission_queue_depth",
                              "Asks waiting for a generation slot.", value=stats.queued),
            GaugeMetricFamily("medcite_admission_slots", "Answers generated at once at most.",
                              value=services.admission.max_in_flight),
            CounterMetricFamily("medcite_admission_admitted", "Asks given a generation slot.",
                                value=stats.admitted),
            CounterMetricFamily("medcite_admission_rejections",
                                "Asks shed with 503 (queue full or wait over).",
                                value=stats.shed),
            CounterMetricFamily("medcite_audit_write_failures",
                                "Audit appends that failed (the request was refused).",
                                value=services.audit.write_failures),
        ]
        self._read_ingest(services)
        files = CounterMetricFamily("medcite_ingest_files", "Files ingested, by outcome "
                                    "(from the audit log's ingest records).", labels=["status"])
        for status, n in sorted(self._files.items()):
            files.add_metric([status], n)
        out += [
            files,
            CounterMetricFamily("medcite_ingest_failures", "Files whose ingest failed.",
                                value=self._files.get("failed", 0)),
            CounterMetricFamily("medcite_ingest_chunks", "Chunks written by ingest runs.",
                                value=self._chunks),
            CounterMetricFamily("medcite_ingest_runs", "Ingest runs and uploads recorded.",
                                value=self._runs),
        ]
        return out

    def _read_ingest(self, services: Services) -> None:
        from app.audit.log import AuditQuery
        from app.audit.models import AuditAction, AuditUnavailable, IngestDetails

        with self._lock:
            newest, cursor = self._ingest_seen, None
            try:
                while True:
                    page = services.audit.search(AuditQuery(
                        action=AuditAction.ingest, limit=200, cursor=cursor))
                    fresh = [r for r in page.records if r.seq > self._ingest_seen]
                    for rec in fresh:
                        newest = max(newest, rec.seq)
                        if isinstance(rec.details, IngestDetails):
                            self._runs += 1
                            self._chunks += rec.details.chunks_written
                            for status, n in rec.details.counts.items():
                                self._files[status[:32]] = self._files.get(status[:32], 0) + n
                    if len(fresh) < len(page.records) or page.next_cursor is None:
                        break
                    cursor = page.next_cursor
            except AuditUnavailable:
                return  # counted again next scrape; the failure is the audit metric's
            self._ingest_seen = newest


def _route_template(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Pure ASGI: counts every HTTP request by its route template (never the raw path,
    which can hold ids) and times it to the response's last byte."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            services = getattr(scope["app"].state, "services", None)
            if services is not None:
                services.ops.metrics.observe_request(
                    scope["method"], _route_template(scope), status[0],
                    time.perf_counter() - start)
