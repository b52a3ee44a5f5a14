"""The documents API a policy team uses: upload a new version, watch the job, read the
version history and the diff, retire; and /ask answering as of a date. Real app, real
embedded Qdrant, real ingest in the API process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.container import Services
from app.core.settings import Settings
from app.security.api_keys import KeyStore, Role
from tests.conftest import Keys, StandInLLM
from tests.ingest.test_versions import LIPO_2023, LIPO_2024

DOC = "ohio-medicaid:lipotropics"


def _upload(client: TestClient, key: str, path: Path, **form: str) -> Any:
    with path.open("rb") as handle:
        return client.post(
            "/documents/upload", headers={"Authorization": f"Bearer {key}"},
            files={"file": ("lipotropics.md", handle, "text/markdown")},
            data={"doc_type": "formulary", "payer": "Ohio Medicaid", **form},
        )


def _wait(client: TestClient, key: str, job_id: str, services: Services) -> dict[str, Any]:
    services.jobs.wait(job_id, timeout_s=600)
    resp = client.get(f"/ingest/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_policy_team_publishes_diffs_and_retires_a_formulary(
    settings: Settings, make_services: Callable[..., Services], keys: Keys,
    standin_llm: StandInLLM,
) -> None:
    # What is under test is which version answers, not the model: the stand-in endpoint
    # answers at once by quoting the first passage it is given.
    own = make_services(collection="documents_api", llm_base_url=standin_llm.url)
    store = KeyStore(settings.keys_file)
    admin = store.create("policy-team", Role.policy_admin, ["public"])[0]
    auth = {"Authorization": f"Bearer {admin}"}
    clinician = {"Authorization": f"Bearer {keys.clinician}"}
    with TestClient(create_app(own.settings, own)) as client:
        refused = _upload(client, keys.clinician, LIPO_2023, effective_date="2023-04-04")
        assert refused.status_code == 403
        wrong_group = _upload(client, admin, LIPO_2023, access_groups="cardiology")
        assert wrong_group.status_code == 403

        job = _upload(client, admin, LIPO_2023, effective_date="2023-04-04")
        assert job.status_code == 202, job.text
        first = _wait(client, admin, job.json()["job_id"], own)
        assert (first["status"], first["doc_key"], first["version"]) == ("done", DOC, 1)

        job = _upload(client, admin, LIPO_2024, effective_date="2024-01-05")
        second = _wait(client, admin, job.json()["job_id"], own)
        assert (second["status"], second["version"], second["previous_version"]) == (
            "done", 2, 1)
        assert second["changes"].startswith("rows: 1 added")

        versions = client.get(f"/documents/{DOC}/versions", headers=clinician).json()
        assert [(v["version"], v["status"]) for v in versions] == [
            (2, "current"), (1, "superseded")]
        diff = client.get(f"/documents/{DOC}/diff", headers=clinician).json()
        assert (diff["from_version"], diff["to_version"]) == (1, 2)
        added = [r for r in diff["rows"] if r["change"] == "added"]
        assert [r["key"] for r in added] == ["Atorvaliq"]
        assert client.get(f"/documents/{DOC}/diff?from=1&to=7", headers=auth).status_code == 404
        assert client.get(f"/documents/{DOC}/versions",
                          headers={"Authorization": f"Bearer {keys.restricted}"}
                          ).status_code == 404

        # As of mid-2023 the formulary did not list Atorvaliq: the answer rests on the
        # version then in force, and says which one it is.
        question = {"question": "Is Atorvaliq preferred on the Ohio Medicaid lipotropics list?"}
        then = client.post("/ask", headers=clinician,
                           json={**question, "filters": {"as_of": "2023-06-01"}}).json()
        assert then["passages"], then
        assert {p["provenance"]["version_number"] for p in then["passages"]} == {1}
        assert {p["provenance"]["effective_date"] for p in then["passages"]} == {"2023-04-04"}
        assert not any("Atorvaliq" in p["text"] for p in then["passages"])
        now = client.post("/ask", headers=clinician, json=question).json()
        assert {p["provenance"]["version_number"] for p in now["passages"]} == {2}
        assert any("Atorvaliq" in p["text"] for p in now["passages"])
        # What the answer rests on, cited or quoted (the stand-in restates the record's
        # heading, which no longer verifies: the record's units are quoted instead).
        cited = {c["passage_id"] for s in now["sentences"] for c in s["citations"]}
        cited |= {e["passage_id"] for e in now.get("evidence") or []}
        by_id = {p["id"]: p for p in now["passages"]}
        assert cited and all(by_id[c]["provenance"]["version_number"] == 2 for c in cited)

        assert client.post(f"/documents/{DOC}/retire", headers=clinician).status_code == 403
        retired = client.post(f"/documents/{DOC}/retire", headers=auth,
                              data={"reason": "superseded by the 2025 list"})
        assert retired.status_code == 200 and retired.json()["retired_on"]
        assert client.get("/documents", headers=clinician).json() == []
        listed = client.get("/documents?include_retired=true", headers=clinician).json()
        assert [d["doc_key"] for d in listed] == [DOC]
        gone = client.post("/ask", headers=clinician, json=question).json()
        assert gone["abstained"] and not gone["passages"]

        audit = client.get("/audit?action=retire",
                           headers={"Authorization": f"Bearer {keys.auditor}"}).json()
        assert [r["details"]["doc_key"] for r in audit["records"]] == [DOC]
        ingests = client.get("/audit?action=ingest",
                             headers={"Authorization": f"Bearer {keys.auditor}"}).json()
        assert [r["details"]["changed"][0]["version"] for r in ingests["records"]] == [2, 1]


def test_bad_uploads_get_clear_errors(
    settings: Settings, make_services: Callable[..., Services], tmp_path: Path,
) -> None:
    own = make_services(collection="documents_bad", max_file_bytes=5_000)
    admin = KeyStore(settings.keys_file).create("policy-bad", Role.policy_admin, ["public"])[0]
    with TestClient(create_app(own.settings, own)) as client:
        big = _upload(client, admin, LIPO_2024)
        assert big.status_code == 413 and "limit" in big.json()["detail"]
        empty = tmp_path / "empty.md"
        empty.write_text("")
        assert _upload(client, admin, empty).status_code == 422
        corrupt = tmp_path / "label.pdf"
        corrupt.write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 100)
        with corrupt.open("rb") as handle:
            job = client.post(
                "/documents/upload", headers={"Authorization": f"Bearer {admin}"},
                files={"file": ("label.pdf", handle, "application/pdf")},
                data={"doc_type": "label"},
            ).json()
        done = _wait(client, admin, job["job_id"], own)
        assert done["status"] == "failed" and done["reason"]
        patient = client.post(
            "/documents/upload", headers={"Authorization": f"Bearer {admin}"},
            files={"file": ("p.json", b"{}", "application/json")}, data={"doc_type": "patient"})
        assert patient.status_code == 422
        assert client.get("/documents", headers={"Authorization": f"Bearer {admin}"}).json() == []
