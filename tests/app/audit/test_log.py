"""The audit log: hash chain, tamper detection, purge, concurrency, the /audit endpoint,
what /ask records, and the `medcite audit` CLI. Storage tests run on SQLite and on a real
PostgreSQL (MEDCITE_TEST_POSTGRES_URL, from scripts/ci_postgres.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from app.api.main import create_app
from app.audit.log import (
    GENESIS,
    AuditLog,
    AuditQuery,
    AuditTampered,
    ProblemKind,
    engine_url,
    metadata,
    record_hash,
)
from app.audit.models import (
    AskDetails,
    AuditAction,
    AuditActor,
    AuditedPassage,
    AuditRecord,
    AuditUnavailable,
    KeyDetails,
)
from app.core.container import Services
from app.core.settings import REPO_ROOT, Settings
from app.security.api_keys import KeyStore, Role
from tests.conftest import Keys, StandInLLM, _free_port

BUNDLE = REPO_ROOT / "corpora/fhir/synthea/Reuben_Lind_1d03714f-4851-44d9-a6b6-8a2752bbe178.json"
ATORVASTATIN = "What is the recommended starting dose of atorvastatin?"
BAD_BUNDLE = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"resource": {"resourceType": "Patient", "birthDate": "not-a-date"}}]}
POSTGRES_URL = os.environ.get("MEDCITE_TEST_POSTGRES_URL")
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
DR = AuditActor(key_id="k-dr", name="dr-who", role="clinician")
EHR = AuditActor(key_id="k-ehr", name="ehr", role="integration")
OPERATOR = AuditActor(key_id=None, name="cli:test", role="operator")


@dataclass
class Clock:
    """The log's time source, moved by the test so records can be days old."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("MEDCITE_TEST_POSTGRES_URL is unset; export the URL that "
                    "scripts/ci_postgres.sh prints to run this against PostgreSQL")
    engine = create_engine(engine_url(POSTGRES_URL))
    metadata.drop_all(engine)  # each test starts from an empty log
    engine.dispose()
    yield POSTGRES_URL


@pytest.fixture
def raw(audit_url: str) -> Iterator[Engine]:
    """A plain connection to the same database, for tampering behind the log's back."""
    engine = create_engine(engine_url(audit_url))
    yield engine
    engine.dispose()


def sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def ask(question: str, *docs: str) -> AskDetails:
    return AskDetails(
        question=question, question_chars=len(question), model_endpoint="http://llm/v1",
        model="m", latency_ms=1.0,
        passages=[AuditedPassage(passage_id=f"{d}#0", doc_id=d, version="1", score=0.9)
                  for d in docs],
    )


def key(key_id: str) -> KeyDetails:
    return KeyDetails(kind="key_create", key_id=key_id)


def fill(
    log: AuditLog, n: int, clock: Clock | None = None, step: timedelta = timedelta(0)
) -> list[AuditRecord]:
    out = []
    for i in range(n):
        out.append(log.append(AuditAction.ask, DR, ask(f"question {i}", f"doc-{i % 3}"), 200))
        if clock is not None:
            clock.now += step
    return out


def problems(log: AuditLog) -> list[tuple[ProblemKind, int]]:
    return [(p.kind, p.seq) for p in log.verify().problems]


# The chain ------------------------------------------------------------------------------


def test_records_form_a_hash_chain_from_genesis(audit_url: str) -> None:
    log = AuditLog(audit_url)
    recs = fill(log, 3)
    assert [r.seq for r in recs] == [1, 2, 3]
    assert recs[0].prev_hash == GENESIS
    assert [r.prev_hash for r in recs[1:]] == [r.hash for r in recs[:2]]
    assert len({r.hash for r in recs}) == 3
    report = log.verify()
    assert report.ok and report.records == 3
    assert (report.last_seq, report.head_hash) == (3, recs[-1].hash)


def test_an_edited_record_is_reported_as_edited(audit_url: str, raw: Engine) -> None:
    log = AuditLog(audit_url)
    fill(log, 4)
    sql(raw, "UPDATE audit_records SET payload = REPLACE(payload, 'question 1', "
             "'question X') WHERE seq = 2")
    assert problems(log) == [(ProblemKind.edited, 2)]
    sql(raw, "UPDATE audit_records SET http_status = 500 WHERE seq = 3")
    assert problems(log) == [(ProblemKind.edited, 2), (ProblemKind.edited, 3)]


def test_a_record_rewritten_with_a_fresh_hash_breaks_the_next_link(
    audit_url: str, raw: Engine
) -> None:
    log = AuditLog(audit_url)
    fill(log, 4)
    with raw.begin() as conn:
        row = dict(conn.execute(text("SELECT * FROM audit_records WHERE seq = 2")).one()._mapping)
        row["payload"] = row["payload"].replace("question 1", "question X")
        conn.execute(text("UPDATE audit_records SET payload = :p, hash = :h WHERE seq = 2"),
                     {"p": row["payload"], "h": record_hash(row)})
    assert problems(log) == [(ProblemKind.deleted, 3)]


def test_an_anchor_catches_a_chain_rebuilt_from_scratch(audit_url: str, raw: Engine) -> None:
    log = AuditLog(audit_url)
    anchor = fill(log, 3)[-1]
    # Someone with write access rewrites record 2 and re-hashes everything after it.
    with raw.begin() as conn:
        rows = [dict(r._mapping) for r in
                conn.execute(text("SELECT * FROM audit_records ORDER BY seq"))]
        rows[1]["payload"] = rows[1]["payload"].replace("question 1", "question X")
        for prev, row in zip(rows, rows[1:], strict=False):
            row["prev_hash"] = prev["hash"]
            row["hash"] = record_hash(row)
            conn.execute(text("UPDATE audit_records SET payload = :p, prev_hash = :ph, "
                              "hash = :h WHERE seq = :s"),
                         {"p": row["payload"], "ph": row["prev_hash"], "h": row["hash"],
                          "s": row["seq"]})
        conn.execute(text("UPDATE audit_head SET hash = :h"), {"h": rows[-1]["hash"]})
    assert log.verify().ok  # the chain alone can't tell...
    report = log.verify(anchors={anchor.seq: anchor.hash})
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.edited, 3)]


def test_a_deleted_record_is_reported_in_the_middle_and_at_the_end(
    audit_url: str, raw: Engine
) -> None:
    log = AuditLog(audit_url)
    fill(log, 5)
    sql(raw, "DELETE FROM audit_records WHERE seq = 3")
    assert problems(log) == [(ProblemKind.deleted, 3)]
    sql(raw, "DELETE FROM audit_records WHERE seq = 5")
    assert problems(log) == [(ProblemKind.deleted, 3), (ProblemKind.deleted, 5)]
    detail = log.verify().problems[1].detail
    assert "missing from the end" in detail


def test_a_deletion_hidden_by_renumbering_is_still_a_deletion(
    audit_url: str, raw: Engine
) -> None:
    log = AuditLog(audit_url)
    recs = [log.append(AuditAction.key_create, OPERATOR, key(f"k{i}")) for i in range(5)]
    sql(raw, "DELETE FROM audit_records WHERE seq = 3")
    for seq in (4, 5):
        sql(raw, "UPDATE audit_records SET seq = :new WHERE seq = :old", new=seq - 1, old=seq)
    sql(raw, "UPDATE audit_head SET seq = 4")
    assert problems(log) == [(ProblemKind.deleted, 3)]
    assert recs[2].hash not in {r.hash for r in log.search(AuditQuery(limit=10)).records}


def test_reordered_records_are_reported_as_reordered(audit_url: str, raw: Engine) -> None:
    log = AuditLog(audit_url)
    for i in range(5):
        log.append(AuditAction.key_create, OPERATOR, key(f"k{i}"))
    for old, new in ((2, -1), (3, 2), (-1, 3)):
        sql(raw, "UPDATE audit_records SET seq = :new WHERE seq = :old", new=new, old=old)
    found = problems(log)
    assert found and {kind for kind, _ in found} == {ProblemKind.reordered}
    assert {seq for _, seq in found} >= {2, 3}


def test_concurrent_appends_never_fork_the_chain(audit_url: str) -> None:
    # Two logs on one database stand for two API processes; each is used by two threads.
    logs = [AuditLog(audit_url), AuditLog(audit_url)]
    errors: list[BaseException] = []

    def work(log: AuditLog, worker: int) -> None:
        try:
            for i in range(15):
                log.append(AuditAction.ask, DR, ask(f"q{worker}-{i}", "doc-a"), 200)
        except BaseException as exc:  # surfaced below, with the thread's error
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(logs[w % 2], w)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = logs[0].verify()
    assert report.ok, report.problems
    assert (report.records, report.first_seq, report.last_seq) == (60, 1, 60)
    page = logs[1].search(AuditQuery(limit=200))
    assert len({r.prev_hash for r in page.records}) == 60


# Purge ------------------------------------------------------------------------------------


def test_purge_drops_old_records_and_the_log_still_verifies(audit_url: str, raw: Engine) -> None:
    clock = Clock()
    log = AuditLog(audit_url, clock=clock)
    old = fill(log, 10, clock, timedelta(days=1))  # days 0..9; now day 10
    first = log.purge(5, OPERATOR)  # cutoff day 5: days 0..4 go
    d = first.details
    assert d.kind == "purge"
    assert (d.purged, d.purged_from_seq, d.purged_to_seq, d.first_kept_seq) == (5, 1, 5, 6)
    assert d.last_purged_hash == old[4].hash
    assert first.seq == 11 and first.actor == OPERATOR
    report = log.verify()
    assert report.ok, report.problems
    assert (report.first_seq, report.last_seq, report.records) == (6, 11, 6)

    # A later purge that removes the first purge record too.
    clock.now += timedelta(days=10)
    fill(log, 2, clock, timedelta(hours=1))
    second = log.purge(5, OPERATOR)
    assert second.details.kind == "purge"
    assert (second.details.purged, second.details.first_kept_seq) == (6, 12)
    assert log.verify().ok

    # Nothing old enough: a purge record all the same, restating where the chain starts.
    third = log.purge(30, OPERATOR)
    assert third.details.kind == "purge"
    assert (third.details.purged, third.details.first_kept_seq) == (0, 12)
    assert log.verify().ok
    fill(log, 1)
    assert log.verify().ok

    # Deleting past what the purge records says is still caught.
    sql(raw, "DELETE FROM audit_records WHERE seq = 12")
    assert problems(log) == [(ProblemKind.deleted, 12)]


def test_purging_everything_leaves_a_verifiable_purge_record(audit_url: str) -> None:
    clock = Clock()
    log = AuditLog(audit_url, clock=clock)
    recs = fill(log, 3)
    clock.now += timedelta(days=400)
    rec = log.purge(365, OPERATOR)
    assert rec.details.kind == "purge"
    assert rec.details.first_kept_seq == rec.seq == 4
    assert rec.prev_hash == rec.details.last_purged_hash == recs[-1].hash
    assert log.verify().ok
    fill(log, 2)
    assert log.verify().ok


def test_purge_refuses_a_tampered_log(audit_url: str, raw: Engine) -> None:
    clock = Clock()
    log = AuditLog(audit_url, clock=clock)
    fill(log, 3)
    sql(raw, "DELETE FROM audit_records WHERE seq = 2")
    clock.now += timedelta(days=30)
    with pytest.raises(AuditTampered) as err:
        log.purge(1, OPERATOR)
    assert err.value.report.problems[0].kind is ProblemKind.deleted
    with pytest.raises(ValueError):
        log.purge(0, OPERATOR)


# Search -----------------------------------------------------------------------------------


def test_search_filters_by_user_dates_document_and_action_and_pages(audit_url: str) -> None:
    clock = Clock()
    log = AuditLog(audit_url, clock=clock)
    for day in range(6):
        log.append(AuditAction.ask, DR if day % 2 else EHR, ask(f"q{day}", f"doc-{day}"), 200)
        clock.now += timedelta(days=1)
    log.append(AuditAction.key_create, OPERATOR, key("k9"))

    def seqs(**kw: Any) -> list[int]:
        return [r.seq for r in log.search(AuditQuery(**kw)).records]

    assert seqs() == [7, 6, 5, 4, 3, 2, 1]
    assert seqs(user="k-dr") == seqs(user="dr-who") == [6, 4, 2]
    day1 = (T0 + timedelta(days=1)).date()
    assert seqs(since=day1, until=day1 + timedelta(days=1)) == [3, 2]
    assert seqs(doc_id="doc-3") == [4]
    assert seqs(doc_id="doc-missing") == []
    assert seqs(action=AuditAction.key_create) == [7]

    seen, cursor = [], None
    while True:
        page = log.search(AuditQuery(limit=3, cursor=cursor))
        seen += [r.seq for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [7, 6, 5, 4, 3, 2, 1]


def test_an_unusable_database_raises_audit_unavailable(audit_url: str, raw: Engine) -> None:
    with pytest.raises(AuditUnavailable):
        AuditLog(f"postgresql+psycopg://u:p@127.0.0.1:{_free_port()}/none")
    log = AuditLog(audit_url)
    fill(log, 1)
    sql(raw, "DROP TABLE audit_records")
    with pytest.raises(AuditUnavailable):
        fill(log, 1)


# Through the API ---------------------------------------------------------------------------


def _auth(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


def test_ask_is_audited_with_passages_sentences_and_fhir_ids(
    make_services: Callable[..., Services], keys: Keys, standin_llm: StandInLLM
) -> None:
    services = make_services(llm_base_url=standin_llm.url, llm_model="stand-in")
    bundle = json.loads(BUNDLE.read_text())
    with TestClient(create_app(services.settings, services)) as api:
        r = api.post("/ask", headers=_auth(keys.integration),
                     json={"question": ATORVASTATIN, "fhir_bundle": bundle, "strict": True})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["sentences"] and not answer["abstained"], answer
        page = api.get("/audit", headers=_auth(keys.auditor),
                       params={"user": "ehr-test", "action": "ask"})
        assert page.status_code == 200, page.text
        (rec,) = page.json()["records"]
        doc = answer["passages"][0]["provenance"]["doc_id"]
        by_doc = api.get("/audit", headers=_auth(keys.auditor), params={"doc_id": doc}).json()
        assert [x["seq"] for x in by_doc["records"]] == [rec["seq"]]

    assert rec["actor"] == {"key_id": rec["actor"]["key_id"], "name": "ehr-test",
                            "role": "integration"}
    assert rec["http_status"] == 200
    d = rec["details"]
    assert d["question"] == ATORVASTATIN and d["strict"] is True
    assert d["fhir_resource_ids"] == answer["patient"]["resource_ids"]
    assert any(i.startswith("Patient/") for i in d["fhir_resource_ids"])
    assert [(p["passage_id"], p["doc_id"], p["version"]) for p in d["passages"]] == [
        (p["id"], p["provenance"]["doc_id"], p["provenance"]["version"])
        for p in answer["passages"]
    ]
    kept = [s for s in d["sentences"] if not s["removed"]]
    assert [(s["text"], s["status"]) for s in kept] == [
        (s["text"], s["status"]) for s in answer["sentences"]
    ]
    cited = kept[0]["citations"][0]
    # The audit holds the citation the answer shows, pointing at a retrieved passage.
    assert cited["passage_id"] == answer["sentences"][0]["citations"][0]["passage_id"]
    assert cited["passage_id"] in {p["id"] for p in answer["passages"]} and cited["status"]
    assert d["answer_status"] == answer["status"] and d["abstained"] is False
    assert (d["model_endpoint"], d["model"]) == (standin_llm.url, "stand-in")
    assert d["latency_ms"] > 0

    # The bundle itself is never stored: no name, birth date or address in the database.
    with services.audit.engine.connect() as conn:
        stored = conn.execute(text("SELECT payload FROM audit_records WHERE seq = :s"),
                              {"s": rec["seq"]}).scalar_one()
    for phi in ("Reuben", "Lind", "1974-01-25", "Bins Ferry", "Chicopee", "01013"):
        assert phi not in stored
    assert services.audit.verify().ok


def test_refused_and_failed_asks_are_audited_with_their_status(
    make_services: Callable[..., Services], keys: Keys
) -> None:
    services = make_services()  # its generator's port is closed
    with TestClient(create_app(services.settings, services)) as client:
        assert client.post("/ask", json={"question": "q"}).status_code == 401
        calls = [
            (keys.clinician, {"question": "dose? " * 1000}, 413),
            (keys.integration, {"question": "x", "fhir_bundle": BAD_BUNDLE}, 422),
            (keys.clinician, {"strict": "not a bool"}, 422),
            (keys.clinician, {"question": ATORVASTATIN}, 503),
            (keys.auditor, {"question": "q"}, 403),
        ]
        for raw_key, body, status in calls:
            r = client.post("/ask", headers=_auth(raw_key), json=body)
            assert r.status_code == status, (status, r.text)
    recs = list(reversed(services.audit.search(AuditQuery(limit=20)).records))
    assert [r.http_status for r in recs] == [413, 422, 422, 503, 403]  # no 401: no one to name
    too_long, bad_bundle, invalid, down, denied = recs
    assert too_long.details.kind == "ask" and too_long.details.question is None
    assert too_long.details.question_chars == 6000
    assert bad_bundle.details.kind == "ask" and "Bundle" in (bad_bundle.details.error or "")
    assert invalid.details.kind == "ask" and invalid.details.question is None
    assert down.details.kind == "ask" and down.details.error == "generator unavailable"
    assert denied.action is AuditAction.access_denied and denied.actor.role == "auditor"
    assert services.audit.verify().ok


def test_an_unwritable_audit_log_fails_the_request_with_503(
    make_services: Callable[..., Services], keys: Keys
) -> None:
    services = make_services()
    with services.audit.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_records"))
    with TestClient(create_app(services.settings, services)) as client:
        # The restricted key abstains without the generator: an answer that is withheld.
        r = client.post("/ask", headers=_auth(keys.restricted),
                        json={"question": ATORVASTATIN})
        assert r.status_code == 503
        assert "audit" in r.json()["detail"] and "sentences" not in r.json()
        assert client.get("/audit", headers=_auth(keys.auditor)).status_code == 503
        assert client.post("/ask", headers=_auth(keys.auditor),
                           json={"question": "q"}).status_code == 503


def test_audit_endpoint_roles_filters_and_pages(
    make_services: Callable[..., Services], keys: Keys, settings: Settings, audit_url: str
) -> None:
    clock = Clock()
    seed = AuditLog(audit_url, clock=clock)
    for day in range(5):
        seed.append(AuditAction.ask, DR if day % 2 else EHR, ask(f"q{day}", f"doc-{day}"), 200)
        clock.now += timedelta(days=1)
    seed.close()
    admin = KeyStore(settings.keys_file).create("admin-test", Role.admin, ["public"])[0]
    services = make_services(database_url=audit_url)
    with TestClient(create_app(services.settings, services)) as client:
        assert client.get("/audit").status_code == 401
        assert client.get("/audit", headers=_auth(keys.clinician)).status_code == 403
        for raw_key in (keys.auditor, admin):
            assert client.get("/audit", headers=_auth(raw_key)).status_code == 200

        def seqs(**params: Any) -> list[int]:
            r = client.get("/audit", headers=_auth(keys.auditor),
                           params={"action": "ask", **params})
            assert r.status_code == 200, r.text
            return [rec["seq"] for rec in r.json()["records"]]

        assert seqs() == [5, 4, 3, 2, 1]
        assert seqs(user="k-dr") == seqs(user="dr-who") == [4, 2]
        assert seqs(**{"from": "2025-01-02", "to": "2025-01-03"}) == [3, 2]
        assert seqs(doc_id="doc-2") == [3]
        first = client.get("/audit", headers=_auth(keys.auditor),
                           params={"action": "ask", "limit": 2}).json()
        assert [r["seq"] for r in first["records"]] == [5, 4] and first["next_cursor"] == 4
        assert seqs(limit=2, cursor=first["next_cursor"]) == [3, 2]
        for bad in ({"limit": 201}, {"limit": 0}, {"from": "2025-02-01", "to": "2025-01-01"},
                    {"from": "yesterday"}):
            assert client.get("/audit", headers=_auth(keys.auditor),
                              params=bad).status_code == 422
        # Reading the log is itself recorded, as is the clinician's refused attempt.
        reads = client.get("/audit", headers=_auth(keys.auditor),
                           params={"action": "audit_query"}).json()["records"]
        assert reads and reads[0]["actor"]["name"] in ("audit-test", "admin-test")
        denied = client.get("/audit", headers=_auth(keys.auditor),
                            params={"action": "access_denied"}).json()["records"]
        assert [d["details"]["path"] for d in denied] == ["/audit"]
    assert services.audit.verify().ok


# The command line --------------------------------------------------------------------------


def medcite(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)


def test_audit_cli_verifies_lists_and_purges(audit_url: str, raw: Engine, tmp_path: Path) -> None:
    clock = Clock(datetime.now(UTC) - timedelta(days=40))
    log = AuditLog(audit_url, clock=clock)
    fill(log, 4, clock, timedelta(days=10))  # 40, 30, 20 and 10 days old
    env = {"MEDCITE_DATA_DIR": str(tmp_path), "DATABASE_URL": audit_url}

    out = medcite(["audit", "verify"], env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK: 4 records") and f"4:{log.verify().head_hash}" in out.stdout

    out = medcite(["keys", "create", "--name", "cli-made", "--role", "auditor"], env)
    assert out.returncode == 0, out.stderr
    out = medcite(["audit", "list", "--action", "key_create", "--json"], env)
    assert out.returncode == 0, out.stderr
    made = [json.loads(line) for line in out.stdout.splitlines()]
    assert made[0]["action"] == "key_create" and made[0]["details"]["name"] == "cli-made"
    since = (datetime.now(UTC) - timedelta(days=25)).date().isoformat()
    out = medcite(["audit", "list", "--user", "dr-who", "--since", since], env)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 2, out.stdout

    out = medcite(["audit", "purge", "--older-than-days", "25"], env)
    assert out.returncode == 0, out.stderr
    assert "purged 2 records" in out.stdout and "starts at seq 3" in out.stdout
    assert medcite(["audit", "verify"], env).returncode == 0

    sql(raw, "UPDATE audit_records SET payload = REPLACE(payload, 'question 3', 'changed') "
             "WHERE seq = 4")
    out = medcite(["audit", "verify"], env)
    assert out.returncode == 1
    assert "EDITED at seq 4" in out.stdout and "TAMPERED" in out.stderr
    out = medcite(["audit", "purge", "--older-than-days", "1"], env)
    assert out.returncode == 1 and "refusing" in out.stderr


def test_cli_actions_stop_when_the_audit_log_is_unreachable(tmp_path: Path) -> None:
    env = {"MEDCITE_DATA_DIR": str(tmp_path),
           "DATABASE_URL": f"postgresql://u:p@127.0.0.1:{_free_port()}/none"}
    out = medcite(["keys", "create", "--name", "unaudited"], env)
    assert out.returncode == 2 and "audit log unavailable" in out.stderr
    assert not (tmp_path / "api_keys.json").exists()
