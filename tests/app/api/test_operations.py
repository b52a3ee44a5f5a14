"""Operations (#18): GET /metrics after real asks, answer ids, clinician feedback in the
audit chain, the review queue and its export into the evaluation format, and quality
alarms on a synthetic burst.

Real FastAPI app (TestClient), real retrieval on the session's store, a real audit
database per test; generation by conftest's stand-in endpoint."""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.api.main import create_app
from app.audit.log import AuditQuery
from app.audit.models import AuditAction, IngestDetails
from app.core.container import Services
from app.core.settings import REPO_ROOT, Settings
from app.security.api_keys import KeyStore, Role
from tests.conftest import Keys, StandInLLM

BUNDLE = REPO_ROOT / "corpora/fhir/synthea/Reuben_Lind_1d03714f-4851-44d9-a6b6-8a2752bbe178.json"
QUESTION = "What is the recommended starting dose of atorvastatin?"
# Words of the question that are nowhere in the metrics' own names or help texts.
QUESTION_WORDS = ("atorvastatin", "recommended starting dose")
PATIENT_QUESTION = "Is my patient's gemfibrozil a preferred drug on the Ohio Medicaid formulary?"
UNANSWERABLE = "Who won the football world cup in 1998?"


@dataclass
class OpsKeys:
    reviewer: str
    metrics: str
    other_clinician: str


@pytest.fixture(scope="module")
def ops_keys(settings: Settings) -> OpsKeys:
    store = KeyStore(settings.keys_file)
    return OpsKeys(
        reviewer=store.create("rev-test", Role.reviewer, ["public"])[0],
        metrics=store.create("prometheus", Role.metrics, [])[0],
        other_clinician=store.create("dr-other", Role.clinician, ["public"])[0],
    )


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _patient_identifiers() -> list[str]:
    bundle = json.loads(BUNDLE.read_text())
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    name = patient["name"][0]
    found = [*name["given"], name["family"], patient["birthDate"], patient["id"]]
    assert "Reuben" in found
    return found


def _sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 when absent)."""
    for line in metrics_text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return 0.0


@pytest.fixture
def answering(make_services: Callable[..., Services], standin_llm: StandInLLM) -> Services:
    return make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0,
                         review_sample_rate=0.0)


def _scrape(client: TestClient, key: str) -> str:
    r = client.get("/metrics", headers=_auth(key))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def _stream_answer(client: TestClient, key: str, question: str) -> dict[str, Any]:
    with client.stream("POST", "/ask/stream", headers=_auth(key),
                       json={"question": question}) as r:
        body = "".join(r.iter_text())
    assert r.status_code == 200
    blocks = [b for b in body.split("\n\n") if b.startswith("event: answer")]
    assert blocks, body[-500:]
    return json.loads(blocks[-1].split("data: ", 1)[1])  # type: ignore[no-any-return]


# -- metrics -------------------------------------------------------------------------------


def test_metrics_move_after_asks_and_carry_no_phi(
    answering: Services, keys: Keys, ops_keys: OpsKeys,
) -> None:
    bundle = json.loads(BUNDLE.read_text())
    with TestClient(create_app(answering.settings, answering)) as client:
        before = _scrape(client, ops_keys.metrics)
        assert _sample(before, "medcite_http_requests_total", endpoint="/ask") == 0
        r = client.post("/ask", headers=_auth(keys.clinician), json={"question": QUESTION})
        assert r.status_code == 200, r.text
        answer = r.json()
        r = client.post("/ask", headers=_auth(keys.integration),
                        json={"question": PATIENT_QUESTION, "fhir_bundle": bundle})
        assert r.status_code == 200, r.text
        patient_answer = r.json()
        assert client.post("/ask", headers=_auth(keys.clinician),
                           json={"question": UNANSWERABLE}).json()["status"] == "abstained"
        _stream_answer(client, keys.clinician, QUESTION)
        after = _scrape(client, ops_keys.metrics)

    assert _sample(after, "medcite_http_requests_total", method="POST", endpoint="/ask",
                   status="200") == 3
    assert _sample(after, "medcite_http_requests_total", method="POST",
                   endpoint="/ask/stream", status="200") == 1
    assert _sample(after, "medcite_http_request_duration_seconds_count", method="POST",
                   endpoint="/ask") == 3
    # Stages from the answers' own timings; retrieval for every ask, generation for those
    # that reached the model.
    assert _sample(after, "medcite_stage_duration_seconds_count", stage="retrieval") == 4
    assert _sample(after, "medcite_stage_duration_seconds_count", stage="generation") >= 2
    assert _sample(after, "medcite_stage_duration_seconds_count", stage="verification") >= 2
    assert _sample(after, "medcite_answers_total", status="abstained",
                   reason_class="no_relevant_passages") == 1
    assert _sample(after, "medcite_answers_total", status=answer["status"]) >= 1
    cited = sum(len(s["citations"]) for s in answer["sentences"] + answer["removed_sentences"])
    assert cited and sum(_sample(after, "medcite_citations_total", status=s)
                         for s in ("supported", "partial", "unsupported", "invalid")) >= cited
    # The stand-in tells no token usage: tokens are counted on the stream (one a chunk).
    assert _sample(after, "medcite_generator_completion_tokens_total", endpoint="primary") > 0
    assert _sample(after, "medcite_generator_tokens_per_second_count", endpoint="primary") >= 1
    assert _sample(after, "medcite_generator_request_duration_seconds_count",
                   endpoint="primary") >= 2
    # Only answers the model writes take an admission slot: a formulary lookup (the
    # patient's gemfibrozil status) and an abstention are answered before the gate.
    by_model = 2 + (patient_answer["answered_from"] == "model")
    assert _sample(after, "medcite_admission_admitted_total") == by_model
    assert "medcite_admission_queue_depth 0.0" in after
    assert _sample(after, "medcite_audit_write_failures_total") == 0
    assert _sample(after, "medcite_quality_alarm", signal="abstention") == 0

    # No question text, no patient identifier, no document text in any label or value.
    lowered = after.lower()
    for word in QUESTION_WORDS + ("gemfibrozil", "football"):
        assert word not in lowered, word
    for ident in _patient_identifiers():
        assert ident.lower() not in lowered, ident
    labels = set(re.findall(r'="([^"]*)"', after))
    assert all(re.fullmatch(r"[\w./{}:+-]*", v) for v in labels), labels


def test_metrics_need_a_metrics_auditor_or_admin_key(
    answering: Services, keys: Keys, ops_keys: OpsKeys,
) -> None:
    with TestClient(create_app(answering.settings, answering)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=_auth(keys.clinician)).status_code == 403
        assert client.get("/metrics", headers=_auth(keys.auditor)).status_code == 200
        # The scraper's key opens nothing else.
        assert client.get("/audit", headers=_auth(ops_keys.metrics)).status_code == 403
        assert client.post("/ask", headers=_auth(ops_keys.metrics),
                           json={"question": QUESTION}).status_code == 403
        text_ = _scrape(client, ops_keys.metrics)
    # Refusals are counted by route template, never by the raw path.
    assert _sample(text_, "medcite_http_requests_total", endpoint="/metrics",
                   status="403") == 1
    denied = answering.audit.search(AuditQuery(action=AuditAction.access_denied)).records
    assert {r.details.path for r in denied} >= {"/metrics", "/audit", "/ask"}  # type: ignore[union-attr]


def test_rate_limit_audit_failures_ingest_and_generator_errors_are_counted(
    make_services: Callable[..., Services], keys: Keys, ops_keys: OpsKeys,
) -> None:
    # No generator listens at LLM_BASE_URL: an answerable question fails at generation.
    services = make_services(rate_limit_per_minute=1)
    services.audit.append(AuditAction.ingest, _operator(), IngestDetails(
        path="corpora", files=3, counts={"ingested": 2, "failed": 1}, chunks_written=40,
        elapsed_s=1.0))
    with TestClient(create_app(services.settings, services)) as client:
        r = client.post("/ask", headers=_auth(keys.clinician), json={"question": QUESTION})
        assert r.status_code == 503
        assert client.post("/ask", headers=_auth(keys.clinician),
                           json={"question": QUESTION}).status_code == 429
        first = _scrape(client, ops_keys.metrics)
        # A second ingest run is read incrementally on the next scrape.
        services.audit.append(AuditAction.ingest, _operator(), IngestDetails(
            path="upload:x.md", files=1, counts={"ingested": 1}, chunks_written=5,
            elapsed_s=0.0))
        # The audit database breaks for real: every write fails from here.
        with services.audit.engine.begin() as conn:
            conn.execute(text("DROP TABLE audit_head"))
        r = client.post("/ask", headers=_auth(keys.integration), json={"question": QUESTION})
        assert r.status_code == 503 and "audit log" in r.json()["detail"]
        second = _scrape(client, ops_keys.metrics)
    assert _sample(first, "medcite_rate_limit_hits_total") == 1
    assert _sample(first, "medcite_ask_failures_total", http_status="429",
                   error_class="rate_limited") == 1
    assert _sample(first, "medcite_ask_failures_total", http_status="503",
                   error_class="generator_unavailable") == 1
    assert _sample(first, "medcite_generator_errors_total", endpoint="primary",
                   kind="unavailable") == 2  # the call and its one retry
    assert _sample(first, "medcite_ingest_files_total", status="ingested") == 2
    assert _sample(first, "medcite_ingest_failures_total") == 1
    assert _sample(first, "medcite_ingest_chunks_total") == 40
    assert _sample(second, "medcite_ingest_files_total", status="ingested") == 3
    assert _sample(second, "medcite_ingest_chunks_total") == 45
    assert _sample(second, "medcite_ingest_runs_total") == 2
    assert _sample(second, "medcite_audit_write_failures_total") >= 1


def _operator() -> Any:
    from app.audit.records import operator

    return operator()


# -- answer ids and feedback ---------------------------------------------------------------


def test_every_answer_carries_its_audit_record_id(answering: Services, keys: Keys) -> None:
    with TestClient(create_app(answering.settings, answering)) as client:
        r = client.post("/ask", headers=_auth(keys.clinician), json={"question": QUESTION})
        streamed = _stream_answer(client, keys.clinician, QUESTION)
    first, second = r.json()["answer_id"], streamed["answer_id"]
    records = {rec.seq: rec for rec in
               answering.audit.search(AuditQuery(action=AuditAction.ask)).records}
    assert set(records) == {first, second}
    assert records[first].details.question == QUESTION  # type: ignore[union-attr]
    assert records[second].details.answer_status == streamed["status"]  # type: ignore[union-attr]


def test_feedback_goes_into_the_audit_chain_one_per_user(
    answering: Services, keys: Keys, ops_keys: OpsKeys,
) -> None:
    with TestClient(create_app(answering.settings, answering)) as client:
        answer_id = client.post("/ask", headers=_auth(keys.clinician),
                                json={"question": QUESTION}).json()["answer_id"]
        url = f"/answers/{answer_id}/feedback"
        r = client.post(url, headers=_auth(keys.clinician),
                        json={"rating": "down", "reason": "incomplete",
                              "comment": "misses the renal dose"})
        assert r.status_code == 201, r.text
        first = r.json()
        assert first["supersedes"] is None and first["answer_id"] == answer_id
        r = client.post(url, headers=_auth(keys.clinician), json={"rating": "up"})
        assert r.status_code == 201 and r.json()["supersedes"] == first["feedback_id"]
        # Someone else's answer: refused; a reviewer may rate it.
        assert client.post(url, headers=_auth(ops_keys.other_clinician),
                           json={"rating": "down", "reason": "wrong"}).status_code == 403
        r = client.post(url, headers=_auth(ops_keys.reviewer),
                        json={"rating": "down", "reason": "citation_unsupported"})
        assert r.status_code == 201 and r.json()["supersedes"] is None
        assert client.post("/answers/999999/feedback", headers=_auth(keys.clinician),
                           json={"rating": "up"}).status_code == 404
        for bad in ({"rating": "meh"}, {"rating": "down", "reason": "boring"},
                    {"rating": "up", "reason": "wrong"},
                    {"rating": "down", "comment": "x" * 2001},
                    {"rating": "down", "extra": 1}):
            assert client.post(url, headers=_auth(keys.clinician), json=bad).status_code == 422
        # Feedback is not an answer: rating a feedback record's id is a 404.
        assert client.post(f"/answers/{first['feedback_id']}/feedback",
                           headers=_auth(keys.clinician), json={"rating": "up"}).status_code == 404
        scraped = _scrape(client, ops_keys.metrics)
    history = answering.audit.search(AuditQuery(action=AuditAction.feedback)).records
    assert [(r.details.rating.value, r.actor.name) for r in reversed(history)] == [  # type: ignore[union-attr]
        ("down", "dr-test"), ("up", "dr-test"), ("down", "rev-test")]
    assert answering.audit.verify().ok
    assert _sample(scraped, "medcite_feedback_total", rating="down", reason="incomplete") == 1
    assert "renal" not in scraped


# -- review queue and export ---------------------------------------------------------------


def test_review_queue_labels_and_export_round_trip_into_the_eval_format(
    make_services: Callable[..., Services], standin_llm: StandInLLM, keys: Keys,
    ops_keys: OpsKeys, tmp_path: Path,
) -> None:
    from app.cli.review import cmd_review
    from app.evaluation.datasets import load_corpora_questions

    services = make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0,
                             review_sample_rate=0.0)
    bundle = json.loads(BUNDLE.read_text())
    with TestClient(create_app(services.settings, services)) as client:
        ids = [client.post("/ask", headers=_auth(keys.clinician),
                           json={"question": q}).json()["answer_id"]
               for q in (QUESTION, UNANSWERABLE, "Is a lipid panel covered by Medicare?")]
        with_patient = client.post("/ask", headers=_auth(keys.integration), json={
            "question": PATIENT_QUESTION, "fhir_bundle": bundle}).json()["answer_id"]
        # Nothing sampled, nothing flagged: an empty queue.
        r = client.get("/review/queue", headers=_auth(ops_keys.reviewer))
        assert r.status_code == 200 and r.json()["items"] == []
        assert r.json()["answers_in_window"] == 4
        assert client.get("/review/queue", headers=_auth(keys.clinician)).status_code == 403
        client.post(f"/answers/{ids[0]}/feedback", headers=_auth(keys.clinician),
                    json={"rating": "down", "reason": "wrong"})
        client.post(f"/answers/{with_patient}/feedback", headers=_auth(keys.integration),
                    json={"rating": "down", "reason": "unsafe"})
        queue = client.get("/review/queue", headers=_auth(ops_keys.reviewer)).json()
        assert [i["answer_id"] for i in queue["items"]] == [with_patient, ids[0]]
        item = queue["items"][1]
        assert item["why"] == ["flagged"] and item["feedback"][0]["details"]["reason"] == "wrong"
        assert item["record"]["details"]["question"] == QUESTION
        assert item["record"]["details"]["sentences"], "the answer and its verification"
        sources = item["sources"]
        assert sources and all(s["text"] and s["source_file"] for s in sources)
        gold_passage = next(s for s in sources if "lipitor" in s["source_file"])

        label = {"verdict": "incorrect", "key_facts": [["10 or 20 mg"], ["once daily"]],
                 "gold": [{"passage_id": gold_passage["passage_id"],
                           "contains": "starting dose"}],
                 "question_kind": "dose", "note": "states the maximum dose instead"}
        r = client.post(f"/review/{ids[0]}", headers=_auth(ops_keys.reviewer), json=label)
        assert r.status_code == 201, r.text
        assert r.json()["label"]["gold"][0]["source_file"] == gold_passage["source_file"]
        relabel = {**label, "verdict": "correct"}
        r = client.post(f"/review/{ids[0]}", headers=_auth(ops_keys.reviewer), json=relabel)
        assert r.json()["label"]["supersedes"] is not None
        # Gold outside the corpus-wide file list is refused only when it is a passage the
        # answer did not retrieve.
        bad = {"verdict": "correct", "gold": [{"passage_id": "not-retrieved"}]}
        assert client.post(f"/review/{ids[1]}", headers=_auth(ops_keys.reviewer),
                           json=bad).status_code == 422
        assert client.post("/review/999999", headers=_auth(ops_keys.reviewer),
                           json={"verdict": "correct"}).status_code == 404
        assert client.post(f"/review/{ids[1]}", headers=_auth(ops_keys.reviewer),
                           json={"verdict": "correct", "question_kind": "unanswerable"}
                           ).status_code == 201
        assert client.post(f"/review/{with_patient}", headers=_auth(ops_keys.reviewer),
                           json={"verdict": "unsafe"}).status_code == 201
        # Labelled answers leave the queue unless asked for.
        assert client.get("/review/queue", headers=_auth(ops_keys.reviewer)).json()["items"] == []
        everything = client.get("/review/queue?include_labelled=true",
                                headers=_auth(ops_keys.reviewer)).json()["items"]
        assert everything[1]["label"]["details"]["verdict"] == "correct"

    out = tmp_path / "reviewed.jsonl"
    assert cmd_review(argparse.Namespace(out=str(out)), services.settings) == 0
    questions = {q.qid: q for q in load_corpora_questions(out)}
    # The patient question is not exported: its bundle is not in the audit log.
    assert set(questions) == {f"review-{ids[0]}", f"review-{ids[1]}"}
    q = questions[f"review-{ids[0]}"]
    assert q.text == QUESTION and q.kind == "dose" and q.answerable
    assert q.key_facts == (("10 or 20 mg",), ("once daily",))
    assert q.gold[0].source_file == gold_passage["source_file"]
    assert q.gold[0].contains == "starting dose" and "correct" in q.tags
    unanswerable = questions[f"review-{ids[1]}"]
    assert unanswerable.text == UNANSWERABLE and not unanswerable.answerable
    assert unanswerable.kind == "unanswerable"
    exports = services.audit.search(AuditQuery(action=AuditAction.review_export)).records
    assert exports[0].details.exported == 2 and exports[0].details.skipped == 1  # type: ignore[union-attr]
    assert services.audit.verify().ok


def test_the_sample_rate_queues_that_share_of_answers(
    make_services: Callable[..., Services], standin_llm: StandInLLM, keys: Keys,
    ops_keys: OpsKeys,
) -> None:
    services = make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0,
                             review_sample_rate=1.0)
    with TestClient(create_app(services.settings, services)) as client:
        ids = [client.post("/ask", headers=_auth(keys.clinician),
                           json={"question": UNANSWERABLE}).json()["answer_id"]
               for _ in range(3)]
        items = client.get("/review/queue", headers=_auth(ops_keys.reviewer)).json()["items"]
    assert [i["answer_id"] for i in items] == sorted(ids, reverse=True)
    assert all(i["why"] == ["sampled"] for i in items)
    # Reading the queue (questions, maybe PHI) is itself recorded.
    reads = services.audit.search(AuditQuery(action=AuditAction.audit_query)).records
    assert reads and reads[0].details.filters["view"] == "review_queue"  # type: ignore[union-attr]


# -- quality alarms ------------------------------------------------------------------------


def test_a_burst_of_abstentions_raises_an_alarm_and_good_answers_clear_it(
    make_services: Callable[..., Services], standin_llm: StandInLLM, keys: Keys,
    ops_keys: OpsKeys, caplog: pytest.LogCaptureFixture,
) -> None:
    services = make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0,
                             alarm_min_events=4,
                             alarm_thresholds={"abstention": 0.5})
    caplog.set_level(logging.INFO, logger="medcite.alarms")
    with TestClient(create_app(services.settings, services)) as client:
        for _ in range(4):
            client.post("/ask", headers=_auth(keys.clinician), json={"question": UNANSWERABLE})
        alarms = {a["signal"]: a for a in
                  client.get("/alarms", headers=_auth(keys.auditor)).json()}
        assert alarms["abstention"]["active"] and alarms["abstention"]["rate"] == 1.0
        assert alarms["abstention"]["since"] is not None
        assert not alarms["off_topic"]["active"]
        assert client.get("/alarms", headers=_auth(keys.clinician)).status_code == 403
        raised = _scrape(client, ops_keys.metrics)
        for _ in range(5):
            r = client.post("/ask", headers=_auth(keys.clinician), json={"question": QUESTION})
            assert r.json()["status"] != "abstained"
        cleared = {a["signal"]: a for a in
                   client.get("/alarms", headers=_auth(keys.auditor)).json()}
    assert _sample(raised, "medcite_quality_alarm", signal="abstention") == 1
    assert _sample(raised, "medcite_quality_rate", signal="abstention") == 1.0
    assert not cleared["abstention"]["active"]
    messages = [(r.getMessage(), getattr(r, "signal", None)) for r in caplog.records
                if getattr(r, "signal", None) == "abstention"]
    assert messages == [("quality alarm raised", "abstention"),
                        ("quality alarm cleared", "abstention")]
    for rec in caplog.records:  # structured, and nothing of the question
        if rec.name != "medcite.alarms":
            continue
        assert rec.rate is not None and rec.threshold == 0.5  # type: ignore[attr-defined]
        assert "football" not in json.dumps(vars(rec), default=str).lower()


def test_a_burst_of_generator_failures_raises_the_generator_alarm(
    make_services: Callable[..., Services], keys: Keys,
) -> None:
    # LLM_BASE_URL points at a closed port.
    services = make_services(rate_limit_per_minute=0, alarm_min_events=3)
    with TestClient(create_app(services.settings, services)) as client:
        for _ in range(3):
            assert client.post("/ask", headers=_auth(keys.clinician),
                               json={"question": QUESTION}).status_code == 503
        alarms = {a["signal"]: a for a in
                  client.get("/alarms", headers=_auth(keys.auditor)).json()}
    assert alarms["generator_errors"]["active"] and alarms["generator_errors"]["hits"] == 3
