"""POST /ask/stream where it fails: the audit log failing as the answer is ready, any
other exception mid-stream, the store failing before the first event. Each must end
in an `error` event (or, before the first event, an HTTP status) and an audit record;
the answer is never sent unrecorded.

Real retrieval on the session's store; generation by the stand-in endpoint of conftest;
the failures are injected into the real services of a fresh app."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.audit.log import AuditQuery
from app.audit.models import AuditAction, AuditUnavailable
from app.core.container import Services
from retrieval.store import StoreUnavailable
from tests.conftest import Keys, StandInLLM

QUESTION = "What is the recommended starting dose of atorvastatin?"
# Text an exception might carry: it must not reach the log, the event or the audit error.
SECRET = "Mrs Odessa Shapewell, MRN 4455"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def read_events(client: TestClient, key: str, question: str = QUESTION,
                **body: Any) -> tuple[int, list[tuple[str, dict[str, Any]]], str]:
    """POST /ask/stream: the status, the events (name, data) in order, and the raw text."""
    with client.stream("POST", "/ask/stream", headers=_auth(key),
                       json={"question": question, **body}) as r:
        text = "".join(r.iter_text())
        status = r.status_code
    events = []
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        name = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), None)
        data = "\n".join(ln[5:].strip() for ln in lines if ln.startswith("data:"))
        if name:
            events.append((name, json.loads(data)))
    return status, events, text


def _records(services: Services) -> list[Any]:
    return list(services.audit.search(AuditQuery(action=AuditAction.ask)).records)


def _fail_after_first_token(services: Services, monkeypatch: pytest.MonkeyPatch,
                            failure: Exception) -> None:
    """The real pipeline's events up to its first token, then `failure`: an exception
    raised mid-stream, after the headers and the first events went out."""
    real = services.answers.stream

    def broken(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in real(*args, **kwargs):
            yield event
            if event.event == "token":
                raise failure

    monkeypatch.setattr(services.answers, "stream", broken)


@pytest.fixture
def answering(make_services: Callable[..., Services], standin_llm: StandInLLM) -> Services:
    return make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0)


def test_a_stream_answers_and_is_audited(answering: Services, keys: Keys) -> None:
    """The control for the failures below: the same request, nothing broken."""
    with TestClient(create_app(answering.settings, answering)) as client:
        status, events, _ = read_events(client, keys.clinician)
    assert status == 200
    names = [name for name, _ in events]
    assert names[0] == "passages" and "token" in names and names[-1] == "answer", names
    (rec,) = _records(answering)
    assert rec.http_status == 200 and rec.details.error is None


def test_audit_failure_as_the_answer_is_ready_ends_in_an_error_not_the_answer(
    answering: Services, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise AuditUnavailable("database is locked")

    monkeypatch.setattr(answering.audit, "append", broken)
    with TestClient(create_app(answering.settings, answering)) as client:
        status, events, _ = read_events(client, keys.clinician)
    assert status == 200  # the headers were sent with the first event
    names = [name for name, _ in events]
    assert names[0] == "passages" and "token" in names, names
    assert "answer" not in names, "an answer that could not be audited was given"
    assert names[-1] == "error" and "audit log" in events[-1][1]["detail"]
    assert answering.admission.stats().in_flight == 0


def test_any_exception_mid_stream_ends_in_an_error_event_and_an_audit_record(
    answering: Services, keys: Keys, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in verification, after the tokens went out: the client is told, the audit log
    has the failure (status 500, the exception's type), the log has its type and place but
    not its message, and the admission slot is given back."""
    _fail_after_first_token(answering, monkeypatch,
                            ValueError(f"cannot verify the answer for {SECRET}"))
    caplog.set_level(logging.INFO)
    with TestClient(create_app(answering.settings, answering)) as client:
        status, events, text = read_events(client, keys.clinician)
    names = [name for name, _ in events]
    assert status == 200 and names[0] == "passages" and "token" in names, names
    assert names[-1] == "error", names
    assert "internal error" in events[-1][1]["detail"].lower()
    assert SECRET not in text
    (rec,) = _records(answering)
    assert rec.http_status == 500 and rec.details.error == "ValueError"
    failed = [r for r in caplog.records if r.getMessage() == "ask failed"]
    assert failed and failed[0].error == "ValueError"  # type: ignore[attr-defined]
    assert "test_stream.py" in failed[0].where  # type: ignore[attr-defined]
    assert not any(SECRET in r.getMessage() or SECRET in str(r.__dict__) for r in caplog.records)
    assert answering.admission.stats().in_flight == 0


def test_an_exception_mid_stream_with_the_audit_log_down_still_ends_in_an_error(
    answering: Services, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_append(*args: object, **kwargs: object) -> None:
        raise AuditUnavailable("disk full")

    _fail_after_first_token(answering, monkeypatch, RuntimeError("boom"))
    monkeypatch.setattr(answering.audit, "append", broken_append)
    with TestClient(create_app(answering.settings, answering)) as client:
        _, events, _ = read_events(client, keys.clinician)
    assert [n for n, _ in events][-1] == "error"


@pytest.mark.parametrize(("failure", "status", "error"), [
    (StoreUnavailable("qdrant is down"), 503, "store unavailable"),
    (RuntimeError(f"index corrupt near {SECRET}"), 500, "RuntimeError"),
])
def test_a_failure_before_the_first_event_is_an_http_status_and_audited(
    answering: Services, keys: Keys, monkeypatch: pytest.MonkeyPatch,
    failure: Exception, status: int, error: str,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(answering.retriever, "search", broken)
    with TestClient(create_app(answering.settings, answering)) as client:
        r = client.post("/ask/stream", headers=_auth(keys.clinician), json={"question": QUESTION})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert SECRET not in r.text and r.json()["detail"]
    (rec,) = _records(answering)
    assert rec.http_status == status and rec.details.error == error
    assert answering.admission.stats().in_flight == 0
