"""The monitoring deployment (README, "Operations"): Prometheus scrapes the API's
/metrics with a key file, Grafana is provisioned with that Prometheus and a dashboard
whose every expression names a metric the API exports, and the compose file runs both
with the files it mounts present. Read as `docker compose config` would
(tests/test_deployment.py's interpolation); no Docker engine runs here.

Prometheus's own checker, promtool (Debian's `prometheus` package; scripts/test.sh
installs it with scripts/ci_prometheus.sh), then checks the config, the alert rules, every
dashboard expression as PromQL, and runs the alerts' unit tests
(deploy/prometheus/alerts_test.yml)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.settings import REPO_ROOT
from tests.test_deployment import COMPOSE, _env_example, _interpolate

DEPLOY = REPO_ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "medcite.json"
PROMETHEUS = DEPLOY / "prometheus"
PROMTOOL = os.environ.get("MEDCITE_PROMTOOL") or shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None or not Path(PROMTOOL).exists(),
    reason="no promtool on PATH: run scripts/ci_prometheus.sh (installs Debian's prometheus "
    "package, which ships it) or set MEDCITE_PROMTOOL",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(_interpolate(COMPOSE.read_text(), _env_example()))  # type: ignore[no-any-return]


def _exported_metric_names() -> set[str]:
    """Every family the API's registry serves, the scrape-time ones included."""
    from types import SimpleNamespace

    from app.api.admission import AdmissionGate
    from app.audit.models import AuditPage
    from app.operations.metrics import Metrics, ServiceCollector

    metrics = Metrics()
    services = SimpleNamespace(
        admission=AdmissionGate(1, 1, 1.0),
        audit=SimpleNamespace(write_failures=0, search=lambda q: AuditPage(records=[])),
    )
    metrics.registry.register(ServiceCollector(lambda: services))  # type: ignore[arg-type,return-value]
    return {family.name for family in metrics.registry.collect()}


def _base(name: str, known: set[str]) -> str:
    for suffix in ("_bucket", "_count", "_sum", "_total", ""):
        if name.endswith(suffix) and name[: len(name) - len(suffix)] in known:
            return name[: len(name) - len(suffix)]
    return name


def test_prometheus_scrapes_the_api_with_a_bearer_key_file(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["api:8000"]
    key_path = job["authorization"]["credentials_file"]
    prometheus = compose["services"]["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    assert key_path in mounts, "the key file is mounted where the config reads it"
    for source in mounts.values():
        if source.startswith("./") and not source.endswith("metrics.key"):
            assert (REPO_ROOT / source).exists(), source
    assert "/deploy/prometheus/metrics.key" in (REPO_ROOT / ".gitignore").read_text()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "/etc/prometheus/alerts.yml" in mounts
    assert any(r["alert"] == "MedciteQualityAlarm" for g in rules["groups"] for r in g["rules"])
    # Prometheus reaches the API on the internal network; it publishes nothing.
    assert "backend" in prometheus["networks"] and "ports" not in prometheus
    assert "backend" in compose["services"]["api"]["networks"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    assert str(grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]) == "change-me"
    assert set(grafana["networks"]) == {"monitoring"}
    assert "monitoring" in compose["services"]["prometheus"]["networks"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    provisioning = REPO_ROOT / mounts["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load(
        (provisioning / "dashboards" / "medcite.yml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert (REPO_ROOT / mounts[provider["options"]["path"]] / DASHBOARD.name).exists()
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}


def test_every_dashboard_expression_names_an_exported_metric() -> None:
    known = _exported_metric_names()
    dashboard = json.loads(DASHBOARD.read_text())
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in re.findall(r"\bmedcite_[a-z_]+", target["expr"]):
                assert _base(name, known) in known, (panel["title"], name)
                used.add(_base(name, known))
    # The list, each on the dashboard.
    for needed in ("medcite_http_requests", "medcite_http_request_duration_seconds",
                   "medcite_stage_duration_seconds", "medcite_answers", "medcite_citations",
                   "medcite_generator_tokens_per_second", "medcite_generator_errors",
                   "medcite_admission_queue_depth", "medcite_admission_rejections",
                   "medcite_rate_limit_hits", "medcite_ingest_files",
                   "medcite_audit_write_failures", "medcite_quality_alarm"):
        assert needed in used, needed
    # The dashboard file is what deploy/make_dashboard.py writes.
    import runpy

    made = runpy.run_path(str(DEPLOY / "make_dashboard.py"))["dashboard"]()
    assert made == dashboard


# -- promtool -----------------------------------------------------------------------------


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


def _prometheus_mounts(compose: dict[str, Any]) -> dict[str, str]:
    volumes = compose["services"]["prometheus"]["volumes"]
    return {v.split(":")[1]: v.split(":")[0] for v in volumes}


@needs_promtool
def test_promtool_accepts_the_prometheus_config(
    compose: dict[str, Any], tmp_path: Path,
) -> None:
    """The config names its files by their paths inside the compose container
    (/etc/prometheus/...), and promtool checks that every rule file and credentials file
    exists. So this checks a copy whose container paths are rewritten, through the compose
    file's own mounts, to the repo's files; the key file (git-ignored, made per install)
    to a stand-in in tmp_path. Everything else is the config as deployed."""
    mounts = _prometheus_mounts(compose)
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    rules = []
    for path in config["rule_files"]:
        assert path in mounts, f"{path} is not mounted into the prometheus container"
        rules.append(str((REPO_ROOT / mounts[path]).resolve()))
    config["rule_files"] = rules
    key = tmp_path / "metrics.key"
    key.write_text("stand-in-key\n")
    for job in config["scrape_configs"]:
        assert job["authorization"]["credentials_file"] in mounts
        job["authorization"]["credentials_file"] = str(key)
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = _promtool("check", "config", "--lint=all", "--lint-fatal", copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_alert_rules() -> None:
    result = _promtool("check", "rules", "--lint=all", "--lint-fatal", PROMETHEUS / "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout + result.stderr


@needs_promtool
def test_alert_unit_tests_pass() -> None:
    """Each alert fires once its condition has held for its `for:`, not before, and not
    when the condition does not hold (deploy/prometheus/alerts_test.yml)."""
    test_file = PROMETHEUS / "alerts_test.yml"
    tested = {t["alertname"] for case in yaml.safe_load(test_file.read_text())["tests"]
              for t in case["alert_rule_test"]}
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    assert tested == {r["alert"] for g in rules["groups"] for r in g["rules"]}
    result = _promtool("test", "rules", test_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


# Grafana's template variables, given a concrete value so promtool can parse the query.
GRAFANA_VARIABLE = re.compile(r"\$(?:\{[^}]*\}|__[a-z_]+|[A-Za-z_][A-Za-z0-9_]*)")


def _check_expressions(exprs: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """promtool parses each expression as the `expr` of a recording rule."""
    rules = [{"record": name, "expr": GRAFANA_VARIABLE.sub("5m", expr)}
             for name, expr in exprs.items()]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return _promtool("check", "rules", path)


def _dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {f"medcite_dashboard:panel{p['id']}_{t['refId']}": t["expr"]
            for p in dashboard["panels"] for t in p["targets"]}


@needs_promtool
def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    exprs = _dashboard_expressions()
    result = _check_expressions(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout + result.stderr


@needs_promtool
def test_a_broken_expression_fails_the_check(tmp_path: Path) -> None:
    """The check above can fail: a missing bracket, or a histogram_quantile without its
    quantile, is rejected."""
    assert GRAFANA_VARIABLE.sub("5m", "rate(x[$__rate_interval]) + y{a=\"${v}\"}") == (
        'rate(x[5m]) + y{a="5m"}')
    for broken in ("sum by (endpoint) (rate(medcite_http_requests_total[5m])",
                   "histogram_quantile(sum by (le) "
                   "(rate(medcite_stage_duration_seconds_bucket[5m])))"):
        result = _check_expressions({"medcite_dashboard:broken": broken}, tmp_path)
        assert result.returncode != 0, broken
