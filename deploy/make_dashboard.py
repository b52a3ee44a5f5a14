"""Writes deploy/grafana/dashboards/medcite.json (run after changing a panel:
`python deploy/make_dashboard.py`); tests/test_deployment_monitoring.py checks that every
expression names a metric the API exports."""

from __future__ import annotations

import json
from pathlib import Path

DS = {"type": "prometheus", "uid": "medcite-prometheus"}
OUT = Path(__file__).parent / "grafana" / "dashboards" / "medcite.json"

# (title, kind, unit, [(expr, legend)])
PANELS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    ("Requests per second by endpoint", "timeseries", "reqps", [
        ('sum by (endpoint, status) (rate(medcite_http_requests_total[5m]))',
         "{{endpoint}} {{status}}")]),
    ("HTTP latency p95 by endpoint", "timeseries", "s", [
        ("histogram_quantile(0.95, sum by (le, endpoint) "
         "(rate(medcite_http_request_duration_seconds_bucket[5m])))", "{{endpoint}}")]),
    ("Stage latency p50 / p95", "timeseries", "s", [
        ("histogram_quantile(0.5, sum by (le, stage) "
         "(rate(medcite_stage_duration_seconds_bucket[15m])))", "p50 {{stage}}"),
        ("histogram_quantile(0.95, sum by (le, stage) "
         "(rate(medcite_stage_duration_seconds_bucket[15m])))", "p95 {{stage}}")]),
    ("Answers by status (per hour)", "timeseries", "short", [
        ("sum by (status) (increase(medcite_answers_total[1h]))", "{{status}}")]),
    ("Why answers were not verified (per hour)", "timeseries", "short", [
        ("sum by (status, reason_class) "
         '(increase(medcite_answers_total{reason_class!="none"}[1h]))',
         "{{status}}: {{reason_class}}")]),
    ("Citations by verification status (per hour)", "timeseries", "short", [
        ("sum by (status) (increase(medcite_citations_total[1h]))", "{{status}}")]),
    ("Quality signals over the alarm window", "timeseries", "percentunit", [
        ("max by (signal) (medcite_quality_rate)", "{{signal}}")]),
    ("Quality alarms raised", "stat", "short", [
        ("max by (signal) (medcite_quality_alarm)", "{{signal}}")]),
    ("Generator tokens per second (p50)", "timeseries", "short", [
        ("histogram_quantile(0.5, sum by (le, endpoint) "
         "(rate(medcite_generator_tokens_per_second_bucket[15m])))", "{{endpoint}}"),
        ("sum by (endpoint) (rate(medcite_generator_completion_tokens_total[5m]))",
         "{{endpoint}} total tokens/s")]),
    ("Generator errors (per 15 min)", "timeseries", "short", [
        ("sum by (endpoint, kind) (increase(medcite_generator_errors_total[15m]))",
         "{{endpoint}} {{kind}}")]),
    ("Asks not answered by class (per 15 min)", "timeseries", "short", [
        ("sum by (error_class) (increase(medcite_ask_failures_total[15m]))",
         "{{error_class}}")]),
    ("Admission: in flight, queued, shed/s, rate-limited/s", "timeseries", "short", [
        ("sum(medcite_admission_in_flight)", "in flight"),
        ("sum(medcite_admission_queue_depth)", "queued"),
        ("sum(rate(medcite_admission_rejections_total[5m]))", "shed / s"),
        ("sum(rate(medcite_rate_limit_hits_total[5m]))", "rate-limited / s")]),
    ("Clinician feedback (per day)", "timeseries", "short", [
        ("sum by (rating, reason) (increase(medcite_feedback_total[1d]))",
         "{{rating}} {{reason}}")]),
    ("Review labels (per day)", "timeseries", "short", [
        ("sum by (verdict) (increase(medcite_reviews_total[1d]))", "{{verdict}}")]),
    ("Ingest: files by outcome and chunks (per day)", "timeseries", "short", [
        ("sum by (status) (increase(medcite_ingest_files_total[1d]))", "files {{status}}"),
        ("sum(increase(medcite_ingest_chunks_total[1d]))", "chunks")]),
    ("Audit-write failures (per hour)", "stat", "short", [
        ("sum(increase(medcite_audit_write_failures_total[1h]))", "failures")]),
]


def panel(i: int, title: str, kind: str, unit: str, targets: list[tuple[str, str]]) -> dict:
    return {
        "id": i + 1, "type": kind, "title": title, "datasource": DS,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [{"refId": chr(65 + n), "datasource": DS, "expr": expr,
                     "legendFormat": legend} for n, (expr, legend) in enumerate(targets)],
    }


def dashboard() -> dict:
    return {
        "uid": "medcite-operations", "title": "medcite operations", "tags": ["medcite"],
        "timezone": "utc", "schemaVersion": 39, "version": 1, "editable": False,
        "refresh": "30s", "time": {"from": "now-24h", "to": "now"},
        "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {OUT}")
