"""The `medcite` console script, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.core.settings import REPO_ROOT
from tests.conftest import LiveAPI

MEDCITE = [sys.executable, "-m", "app.cli"]


def _run(
    args: list[str], env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEDCITE, *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO_ROOT)


def test_ask_prints_a_verified_answer_citing_the_label(standin_api: LiveAPI) -> None:
    # The stand-in generator: this is about what the command prints (the real model's
    # answers are tested through /ask, `medcite up` and the answer guard).
    out = _run(["ask", "What is the recommended starting dose of atorvastatin?"],
               {"MEDCITE_API_URL": standin_api.url, "MEDCITE_API_KEY": standin_api.api_key})
    assert out.returncode == 0, out.stderr
    assert "supported]" in out.stdout
    assert "LIPITOR" in out.stdout.upper() and "mg" in out.stdout


def test_ask_without_a_key_is_a_clear_error(tmp_path: Path) -> None:
    """No MEDCITE_API_KEY and no local key file in the data folder: refused before any
    request (the API URL is a closed port, which would say "unreachable" instead)."""
    out = _run(["ask", "anything"], {"MEDCITE_API_URL": "http://127.0.0.1:9",
                                     "MEDCITE_API_KEY": "", "MEDCITE_DATA_DIR": str(tmp_path)})
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "No API key" in out.stderr and "unreachable" not in out.stderr


def test_ask_with_the_api_down_is_a_clear_error(tmp_path: Path) -> None:
    out = _run(["ask", "anything"], {"MEDCITE_API_URL": "http://127.0.0.1:9",
                                     "MEDCITE_API_KEY": "k", "MEDCITE_DATA_DIR": str(tmp_path)})
    assert out.returncode == 2 and "unreachable" in out.stderr
    assert "http://127.0.0.1:9" in out.stderr


def test_keys_create_list_and_revoke_through_the_cli(
    tmp_path: Path, make_services  # type: ignore[no-untyped-def]
) -> None:
    """`medcite keys create | list | revoke` as a user runs them, against the key file an
    API reads: the revoked key is refused by the API at once, and the audit log records
    both actions."""
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    data = tmp_path / "data"
    env = {"MEDCITE_DATA_DIR": str(data), "DATABASE_URL": ""}
    created = _run(["keys", "create", "--name", "dr-cli", "--role", "clinician",
                    "--groups", "public,cardiology"], env, timeout=120)
    assert created.returncode == 0, created.stderr
    header, raw = created.stdout.strip().splitlines()
    key_id = header.split()[2]
    assert header == f"key id {key_id} (clinician, groups public,cardiology):"
    assert raw.startswith("mc_") and raw not in (data / "api_keys.json").read_text()

    def listed() -> list[list[str]]:
        out = _run(["keys", "list"], env, timeout=120)
        assert out.returncode == 0, out.stderr
        return [line.split() for line in out.stdout.splitlines()]

    assert listed() == [[key_id, "dr-cli", "clinician", "public,cardiology", "active"]]

    services = make_services(data_dir=data)
    auth = {"Authorization": f"Bearer {raw}"}
    with TestClient(create_app(services.settings, services)) as api:
        me = api.get("/me", headers=auth)
        assert me.status_code == 200 and me.json()["groups"] == ["public", "cardiology"]
        revoked = _run(["keys", "revoke", "--key-id", key_id], env, timeout=120)
        assert revoked.returncode == 0 and revoked.stdout.strip() == f"revoked {key_id}"
        assert api.get("/me", headers=auth).status_code == 401
        r = api.post("/ask", headers=auth, json={"question": "What is atorvastatin?"})
        assert r.status_code == 401
    assert listed() == [[key_id, "dr-cli", "clinician", "public,cardiology", "revoked"]]

    again = _run(["keys", "revoke", "--key-id", key_id], env, timeout=120)
    assert again.returncode == 1 and f"no active key {key_id}" in again.stderr
    unknown = _run(["keys", "revoke", "--key-id", "nosuchkey"], env, timeout=120)
    assert unknown.returncode == 1

    log = _run(["audit", "list"], env, timeout=120)
    assert log.returncode == 0, log.stderr
    actions = [line for line in log.stdout.splitlines() if key_id in line]
    assert any("key_create" in line for line in actions), log.stdout
    assert any("key_revoke" in line for line in actions), log.stdout
    assert raw not in log.stdout


def test_ingest_reports_bad_files_and_exits_nonzero(tmp_path: Path) -> None:
    corpus = tmp_path / "coverage"
    corpus.mkdir()
    (corpus / "policy.md").write_text("# Walkers\n\nWalkers are covered after a fall.\n")
    (corpus / "broken.xml").write_text("<Version><Section>")
    out = _run(["ingest", str(corpus), "--quiet"], {"MEDCITE_DATA_DIR": str(tmp_path / "data")})
    assert out.returncode == 1
    assert "broken.xml" in out.stderr and "invalid XML" in out.stderr
    assert "1 ingested" in out.stdout and "1 failed" in out.stdout


def test_ask_prints_the_quoted_evidence_of_an_evidence_only_answer() -> None:
    from app.cli.ask import format_answer

    passage = {"id": "p1", "provenance": {"title": "Preferred Drug List",
                                          "section_path": ["Lipotropics"], "page": None,
                                          "source_file": "formularies/pdl.md"}}
    text = format_answer({
        "status": "evidence_only", "abstained": False, "abstain_reason": None,
        "status_reason": "No sentence of the generated answer could be verified.",
        "sentences": [], "passages": [passage],
        "evidence": [{"passage_id": "p1", "unit_id": "P1.2",
                      "text": "| Atorvastatin (QL) | Altoprev |", "span_start": 0,
                      "span_end": 31, "header": ["Preferred", "Non-Preferred"]}],
    })
    assert "could be verified" in text
    # The row, then the columns it is read by: which drug is preferred is in the header.
    assert '> "| Atorvastatin (QL) | Altoprev |" [1]\n    (columns: Preferred | Non-Preferred)' \
        in text
    assert "[1] Preferred Drug List" in text and "formularies/pdl.md" in text


def test_two_units_of_one_source_are_one_mark() -> None:
    """Seen in the fresh clone: a limit cited to a formulary record's limit line and its
    row printed "[1:supported] [1:supported]"."""
    from app.cli.ask import format_answer

    passage = {"id": "p1", "provenance": {"title": "Oral Anticoagulants",
                                          "section_path": ["Formulary"], "page": None,
                                          "source_file": "formularies/oa.md"}}
    cite = {"passage_id": "p1", "status": "supported"}
    text = format_answer({
        "status": "verified", "abstained": False, "abstain_reason": None,
        "sentences": [{"text": "The limit is 204 per 102 days.", "status": "supported",
                       "citations": [dict(cite, unit_id="P1.4"), dict(cite, unit_id="P1.7")]}],
        "passages": [passage], "evidence": [],
    })
    assert "- The limit is 204 per 102 days. [1:supported]\n" in text


def test_a_sentence_the_server_quoted_says_so() -> None:
    """Seen in the fresh clone: "If reactivation occurs, stop HUMIRA and begin anti-viral
    therapy (5.4)" printed like the model's own sentence."""
    from app.cli.ask import format_answer

    passage = {"id": "p1", "provenance": {"title": "HUMIRA", "section_path": ["Highlights"],
                                          "page": None, "source_file": "humira.xml"}}
    cite = {"passage_id": "p1", "status": "supported", "unit_id": "P1.1"}
    text = format_answer({
        "status": "verified", "abstained": False, "abstain_reason": None, "evidence": [],
        "passages": [passage],
        "sentences": [
            {"text": "Monitor HBV carriers.", "status": "supported", "citations": [cite]},
            {"text": "If reactivation occurs, stop HUMIRA.", "status": "supported",
             "citations": [cite], "quoted_by_server": True, "quoted_as": "continuation"}],
    })
    assert "- Monitor HBV carriers. [1:supported]\n" in text
    assert "- The source goes on: If reactivation occurs, stop HUMIRA. [1:supported]" in text
