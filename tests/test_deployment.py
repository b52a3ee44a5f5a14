"""The deployment files keep their promises (README, "Deploying on a hospital server"):
every long-running service has a health check, data lives on named volumes, only the API,
the UI and Grafana publish ports (on loopback unless told otherwise), secrets come from the
env file, there is a GPU and a CPU profile, and the image has a pinned slim base.

No Docker engine runs here, so this reads the files the way `docker compose config`
would resolve them (YAML with merge keys, ${VAR} interpolation from .env.example)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from app.core.settings import REPO_ROOT, Settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?([-?])([^}]*))?\}")


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def _interpolate(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if name in env and env[name] != "":
            return env[name]
        if op == "?":
            raise AssertionError(f"{name} is required by the compose file: {arg}")
        return arg

    return VAR.sub(sub, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(_interpolate(COMPOSE.read_text(), _env_example()))  # type: ignore[no-any-return]


def test_required_secrets_come_from_the_env_file() -> None:
    text = COMPOSE.read_text()
    required = {m.group(1) for m in VAR.finditer(text) if m.group(2) == "?"}
    assert "POSTGRES_PASSWORD" in required
    assert required <= set(_env_example()), "every required variable is in .env.example"
    # Without the env file the stack refuses to start rather than run with no password.
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        _interpolate(text, {})
    # Secrets are only ever references to the env file, never values in the compose file.
    raw = yaml.safe_load(text)
    checked = 0
    for service in raw["services"].values():
        for var, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|API_KEY|SECRET", var):
                assert str(value).startswith("${"), (var, value)
                checked += 1
            if var == "DATABASE_URL":
                assert "${POSTGRES_PASSWORD" in str(value)
    assert checked >= 2
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def test_services_profiles_and_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"qdrant", "postgres", "vllm", "ingest", "api", "ui", "local-llm"} <= set(services)
    assert services["vllm"]["profiles"] == ["gpu"]
    assert services["local-llm"]["profiles"] == ["cpu"]
    assert services["ingest"]["restart"] == "no"  # a one-shot job
    for name, service in services.items():
        if name != "ingest":
            assert "healthcheck" in service, f"{name} has no health check"
            assert service["healthcheck"]["test"], name
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on an unknown service {dep}"
    assert services["api"]["depends_on"]["ingest"]["condition"] == \
        "service_completed_successfully"


def test_only_the_api_ui_and_grafana_publish_ports_on_loopback(compose: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in compose["services"].items() if s.get("ports")}
    assert set(published) == {"api", "ui", "grafana"}
    for ports in published.values():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), port
    assert compose["networks"]["backend"]["internal"] is True
    assert "backend" not in compose["services"]["ui"]["networks"]


def test_state_lives_on_named_volumes(compose: dict[str, Any]) -> None:
    volumes = set(compose["volumes"])
    mounts = {name: [str(v).split(":")[0] for v in s.get("volumes", [])]
              for name, s in compose["services"].items()}
    assert "qdrant-storage" in mounts["qdrant"] and "postgres-data" in mounts["postgres"]
    assert "medcite-data" in mounts["api"]
    for name, sources in mounts.items():
        for source in sources:
            assert source in volumes or source.startswith(("/", "./")), (name, source)


def test_app_environment_names_real_settings(compose: dict[str, Any]) -> None:
    """A misspelt variable would be silently ignored by the app."""
    aliases = {f.alias for f in Settings.model_fields.values() if f.alias}
    for name in ("api", "ingest", "ui", "local-llm"):
        for var in compose["services"][name].get("environment", {}):
            assert var in aliases, f"{name}: {var} is not a setting"


def test_image_has_a_pinned_slim_base_and_runs_unprivileged() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base.group(1)), base
    assert re.search(r"^USER\s+(?!root)\w+", dockerfile, re.M)
    assert "HF_HUB_OFFLINE=1" in dockerfile


def test_the_services_environment_makes_valid_settings(compose: dict[str, Any]) -> None:
    """What the containers get, resolved from .env.example, is read by the app's own
    settings into the deployment the README describes: Qdrant and PostgreSQL servers, vLLM
    on the GPU profile, state under the mounted /data volume."""
    api = Settings.model_validate(compose["services"]["api"]["environment"])
    assert api.qdrant_url == "http://qdrant:6333"
    assert api.database_url.startswith("postgresql+psycopg://")  # type: ignore[union-attr]
    assert "@postgres:5432/" in api.database_url  # type: ignore[operator]
    assert api.llm_base_url and api.llm_base_url.startswith("http://vllm:")
    assert str(api.data_dir) == "/data" and str(api.keys_file).startswith("/data/")
    assert "/data" in [str(v).split(":")[1] for v in compose["services"]["api"]["volumes"]]
    ingest = Settings.model_validate(compose["services"]["ingest"]["environment"])
    # The one-shot ingest writes where the API reads.
    assert (ingest.qdrant_url, ingest.database_url, ingest.data_dir) == \
        (api.qdrant_url, api.database_url, api.data_dir)
    ui = compose["services"]["ui"]["environment"]["MEDCITE_API_URL"]
    assert ui.rstrip("/").endswith(":8000") and ui.split("//")[1].split(":")[0] == "api"
