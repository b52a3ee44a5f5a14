"""Security controls around /ask: no PHI in any log record, the per-key rate limit, a slow
generator surfacing as 503, and generated requests (schemathesis) never causing a 5xx."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from app.api.main import create_app
from app.api.ratelimit import RateLimiter
from app.audit.log import AuditQuery
from app.audit.models import AuditAction
from app.core.container import Services
from app.core.logging import JsonFormatter
from app.core.settings import REPO_ROOT
from tests.conftest import Keys, StandInLLM, serve

BUNDLE = REPO_ROOT / "corpora/fhir/synthea/Reuben_Lind_1d03714f-4851-44d9-a6b6-8a2752bbe178.json"
ATORVASTATIN = "What is the recommended starting dose of atorvastatin?"
# Loggers that don't pass records up to the root (uvicorn's) or that libraries leave at
# WARNING unless asked (SQLAlchemy): all are opened to DEBUG for the PHI test.
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "httpx", "httpcore",
           "httpcore2", "openai", "sqlalchemy", "fastapi", "medcite", "app")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _patient_identifiers() -> list[str]:
    bundle = json.loads(BUNDLE.read_text())
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    name, address = patient["name"][0], patient["address"][0]
    found = [*name["given"], name["family"], patient["birthDate"], *address["line"],
             address["city"], address["postalCode"]]
    assert "Reuben" in found and "1974-01-25" in found  # the bundle we think it is
    return found


def test_no_log_record_carries_patient_identifiers_or_the_question(
    make_services: Callable[..., Services], keys: Keys, standin_llm: StandInLLM,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An /ask with the Synthea bundle through uvicorn, generation over HTTP, every logger
    at DEBUG: no formatted record may hold the patient's identifiers or the question."""
    question = "Is gemfibrozil a preferred drug for a patient like this on the formulary?"
    identifiers = _patient_identifiers()
    # Generation over HTTP is part of what is logged: no formulary lookup short-cut.
    services = make_services(llm_base_url=standin_llm.url, record_answers=False)
    with serve(create_app(services.settings, services), log_level="debug") as url:
        caplog.set_level(logging.DEBUG)
        for name in LOGGERS:
            caplog.set_level(logging.DEBUG, logger=name)
        # uvicorn's loggers keep their records to themselves; listen to them directly.
        detached = [logging.getLogger(n) for n in LOGGERS if not logging.getLogger(n).propagate]
        for logger in detached:
            logger.addHandler(caplog.handler)
        try:
            r = httpx.post(f"{url}/ask", headers=_auth(keys.clinician), timeout=300,
                           json={"question": question,
                                 "fhir_bundle": json.loads(BUNDLE.read_text())})
        finally:
            for logger in detached:
                logger.removeHandler(caplog.handler)
    assert r.status_code == 200, r.text
    assert r.json()["patient"]["resource_ids"], "the bundle was used"
    assert standin_llm.prompts, "generation ran"

    names = {rec.name for rec in caplog.records}
    # The capture really saw the server, both HTTP clients, the database and our code.
    for expected in ("uvicorn.access", "httpx", "openai._base_client", "sqlalchemy.engine.Engine",
                     "medcite.ask"):
        assert expected in names, (expected, sorted(names))
    plain = logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s")
    for rec in caplog.records:
        for text in (JsonFormatter().format(rec), plain.format(rec)):
            for secret in (*identifiers, question):
                assert secret not in text, f"{secret!r} leaked through {rec.name}: {text[:300]}"
    # Nor did the identifiers reach the model: only age, sex, conditions and medications.
    for prompt in standin_llm.prompts:
        assert question in prompt
        for identifier in identifiers:
            assert identifier not in prompt


def test_rate_limit_is_per_key_and_says_when_to_retry(
    make_services: Callable[..., Services], keys: Keys
) -> None:
    services = make_services(rate_limit_per_minute=2)
    with TestClient(create_app(services.settings, services)) as client:
        # The restricted key sees no documents, so it abstains without the generator.
        for _ in range(2):
            r = client.post("/ask", headers=_auth(keys.restricted), json={"question": "q?"})
            assert r.status_code == 200, r.text
        r = client.post("/ask", headers=_auth(keys.restricted), json={"question": "q?"})
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert "2 requests per minute" in r.json()["detail"]
        # Another key has its own budget; the 413 check still applies to it.
        r = client.post("/ask", headers=_auth(keys.clinician), json={"question": "x" * 2001})
        assert r.status_code == 413
    statuses = [rec.http_status for rec in services.audit.search(AuditQuery()).records]
    assert statuses == [413, 429, 200, 200]


def test_rate_limit_window_slides() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.hit("k") is None and limiter.hit("k") is None
    now[0] = 45.0
    assert limiter.hit("k") == 15  # the first hit leaves the window at t=60
    assert limiter.hit("other") is None
    now[0] = 60.0
    assert limiter.hit("k") is None
    assert RateLimiter(0).hit("k") is None  # 0 turns it off


class _SlowLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that never answers in time."""

    release = threading.Event()

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.release.wait(30)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_llm() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowLLM)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    _SlowLLM.release.set()
    server.shutdown()
    server.server_close()


def test_generation_timeout_is_a_503_with_a_message(
    make_services: Callable[..., Services], keys: Keys, slow_llm: str
) -> None:
    services = make_services(llm_base_url=slow_llm, llm_timeout_s=1.0)
    with TestClient(create_app(services.settings, services)) as client:
        r = client.post("/ask", headers=_auth(keys.clinician), json={"question": ATORVASTATIN})
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert "generator" in detail and "LLM_TIMEOUT_S" in detail and "1 s" in detail
    (rec,) = services.audit.search(AuditQuery()).records
    assert rec.http_status == 503 and rec.details.kind == "ask"
    assert rec.details.error in ("generator timed out", "generator unavailable")


# Generated requests ------------------------------------------------------------------------


def _fuzz(operation: Any, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @hypothesis_settings(max_examples=20, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    check()


def test_generated_requests_never_get_a_server_error(
    make_services: Callable[..., Services], keys: Keys
) -> None:
    """Every operation of the OpenAPI schema, 20 generated requests each. /audit is called
    as an auditor, so every filter is exercised; the generating routes with a key that
    fails authentication, so no example costs a generation. (schemathesis's own pytest
    decorator needs a pytest internal that pytest 9 dropped, hence the loop.)"""
    services = make_services()
    app = create_app(services.settings, services)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"/ask", "/audit", "/health"} <= {op.path for op in operations}
    for operation in operations:
        key = keys.auditor if operation.path == "/audit" else "mc_not-a-key"
        _fuzz(operation, _auth(key))
    # Every /audit read was recorded, and the chain still verifies.
    reads = services.audit.search(AuditQuery(action=AuditAction.audit_query, limit=200))
    assert len(reads.records) >= 10
    assert services.audit.verify().ok


def _bundle_identifiers() -> list[str]:
    """Everything in the bundle that names the patient: name, birth date, address and
    every identifier value (SSN, driver's licence, passport, medical record number)."""
    bundle = json.loads(BUNDLE.read_text())
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    values = [i["value"] for i in patient.get("identifier", []) if len(i.get("value", "")) >= 6]
    return [*_patient_identifiers(), *values, patient["id"]]


def test_no_log_the_product_writes_carries_phi_with_the_real_generator(
    services: Services, make_services: Callable[..., Services], keys: Keys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One real question with the Synthea bundle, answered by the embedded llama.cpp
    generator on the CPU, through uvicorn with every logger at DEBUG. Neither the app's
    log records, nor uvicorn's access log, nor llama.cpp's own log (local-llm.log in the
    data folder, where the product's generator writes it) may hold the patient's name,
    birth date, address or identifiers, the question, or any sentence of the answer."""
    question = "What is the recommended starting dose of atorvastatin for my patient?"
    identifiers = _bundle_identifiers()
    llm_log = services.settings.data_dir / "local-llm.log"
    assert services.llm_process is not None and llm_log.exists(), "the embedded generator"
    start = llm_log.stat().st_size
    # The session's llama.cpp server, with room for a machine shared with other work.
    port = services.settings.local_llm_port
    answering = make_services(llm_base_url=f"http://127.0.0.1:{port}/v1",
                              llm_model=services.settings.llm_model, llm_timeout_s=1200,
                              llm_structured_output="json_object",  # as for the embedded one
                              rate_limit_per_minute=0)
    with serve(create_app(answering.settings, answering), log_level="debug") as url:
        # Set after uvicorn configured its loggers (it detaches them from the root).
        caplog.set_level(logging.DEBUG)
        for name in LOGGERS:
            caplog.set_level(logging.DEBUG, logger=name)
        detached = [logging.getLogger(n) for n in LOGGERS
                    if not logging.getLogger(n).propagate]
        for logger in detached:
            logger.addHandler(caplog.handler)
        try:
            r = httpx.post(f"{url}/ask", headers=_auth(keys.clinician), timeout=1500,
                           json={"question": question,
                                 "fhir_bundle": json.loads(BUNDLE.read_text())})
        finally:
            for logger in detached:
                logger.removeHandler(caplog.handler)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["patient"]["resource_ids"], "the bundle was used"
    assert data["timings_ms"].get("generation"), "the real generator answered"
    answer = [s["text"] for s in data["sentences"]] + [
        s["text"] for s in data.get("removed_sentences") or []]
    # Phrases of the answer long enough not to be common words.
    phrases = [" ".join(s.split()[:8]) for s in answer if len(s.split()) >= 5]
    assert phrases, ("no answer text to look for", data["status"], data["abstain_reason"])

    names = {rec.name for rec in caplog.records}
    for expected in ("uvicorn.access", "httpx", "medcite.ask"):
        assert expected in names, (expected, sorted(names))
    plain = logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s")
    texts = [t for rec in caplog.records
             for t in (JsonFormatter().format(rec), plain.format(rec))]
    written = llm_log.read_bytes()[start:].decode("utf-8", "replace")
    assert "/v1/chat/completions" in written or "llama" in written.lower(), \
        "llama.cpp's log gained nothing from this request: is it the generator's log?"
    texts.append(written)
    for text in texts:
        for secret in (*identifiers, question, *phrases):
            assert secret not in text, f"{secret!r} leaked into a log: {text[:300]}"


def test_generated_questions_and_bundles_never_get_a_server_error(
    make_services: Callable[..., Services], keys: Keys, standin_llm: StandInLLM
) -> None:
    """/ask and /ask/stream with a valid clinician key, so generated questions, filters and
    FHIR bundles (any JSON object) reach retrieval, the bundle parser and generation (the
    stand-in endpoint): 30 requests each, never a 5xx, and no stream ends in an internal
    error."""
    services = make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0)
    app = create_app(services.settings, services)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    answering = [op for op in operations if op.path in ("/ask", "/ask/stream")]
    assert {op.path for op in answering} == {"/ask", "/ask/stream"}
    statuses: list[int] = []
    for operation in answering:
        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=30, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers=_auth(keys.clinician))
            case.validate_response(response, checks=[not_a_server_error])
            statuses.append(response.status_code)
            if case.operation.path == "/ask/stream" and response.status_code == 200:
                assert "Internal error" not in response.text, response.text[-500:]

        check()
    assert 200 in statuses and 422 in statuses, sorted(set(statuses))
    assert services.audit.verify().ok
