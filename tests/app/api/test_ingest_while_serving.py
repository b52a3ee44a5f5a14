"""Re-ingest while serving (issue #19): /ask keeps answering while a policy team uploads
a new version of the document it answers from. Every answer rests on the old version or
the new one, never on a mix, and no request fails; a re-ingest that fails (a corrupt
file) leaves the version in force answering; `medcite ingest` run while the API holds
the embedded store is a clear refusal, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from app.api.main import create_app
from app.core.container import Services
from app.core.settings import REPO_ROOT, Settings
from app.security.api_keys import KeyStore, Role
from tests.conftest import Keys, StandInLLM, serve
from tests.ingest.test_versions import LIPO_2023, LIPO_2024

DOC = "ohio-medicaid:lipotropics"
QUESTION = "Is Atorvaliq preferred on the Ohio Medicaid lipotropics list?"


def _upload(url: str, key: str, name: str, data: bytes, **form: str) -> str:
    resp = httpx.post(
        f"{url}/documents/upload", headers={"Authorization": f"Bearer {key}"},
        files={"file": (name, data, "application/octet-stream")},
        data={"doc_type": "formulary", "payer": "Ohio Medicaid", "doc_key": DOC, **form},
        timeout=60)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job_id"])


def _versions_cited(answer: dict[str, Any]) -> tuple[set[int], set[int]]:
    """(versions of the document among the passages, among the cited passages)."""
    ours = {p["id"]: p["provenance"]["version_number"] for p in answer["passages"]
            if p["provenance"]["doc_key"] == DOC}
    cited = {ours[c["passage_id"]] for s in answer["sentences"] for c in s["citations"]
             if c["passage_id"] in ours}
    return set(ours.values()), cited


def test_answers_during_a_reingest_rest_on_one_version_and_a_failed_one_changes_nothing(
    settings: Settings, make_services: Callable[..., Services], keys: Keys,
    standin_llm: StandInLLM,
) -> None:
    services = make_services(collection="ingest_while_serving", llm_base_url=standin_llm.url,
                             rate_limit_per_minute=0, max_concurrent_answers=4)
    admin = KeyStore(settings.keys_file).create("policy-serving", Role.policy_admin,
                                                ["public"])[0]
    auth = {"Authorization": f"Bearer {keys.clinician}"}
    with serve(create_app(services.settings, services)) as url:
        job = _upload(url, admin, "lipotropics.md", LIPO_2023.read_bytes(),
                      effective_date="2023-04-04")
        assert services.jobs.wait(job, timeout_s=600).status == "done"  # type: ignore[union-attr]

        answers: list[tuple[str, dict[str, Any]]] = []  # (job status when asked, answer)
        failures: list[str] = []
        state = {"job": "none"}
        stop = threading.Event()

        def keep_asking() -> None:
            with httpx.Client(timeout=300) as http:
                while not stop.is_set():
                    during = state["job"]
                    resp = http.post(f"{url}/ask", headers=auth, json={"question": QUESTION})
                    if resp.status_code != 200:
                        failures.append(f"{resp.status_code} {resp.text[:200]}")
                        continue
                    answers.append((during, resp.json()))

        with ThreadPoolExecutor(3) as pool:
            askers = [pool.submit(keep_asking) for _ in range(3)]
            while len(answers) < 3:  # the old version answering before the upload
                time.sleep(0.1)
            job = _upload(url, admin, "lipotropics.md", LIPO_2024.read_bytes(),
                          effective_date="2024-01-05")
            while (status := services.jobs.get(job).status) not in ("done", "failed"):  # type: ignore[union-attr]
                state["job"] = status
                time.sleep(0.05)
            state["job"] = status
            after = len(answers)
            deadline = time.monotonic() + 300
            while len(answers) < after + 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            stop.set()
            for f in askers:
                f.result()
        assert status == "done", services.jobs.get(job)
        assert not failures, failures

        seen: dict[str, set[int]] = {}
        for during, answer in answers:
            versions, cited = _versions_cited(answer)
            assert len(versions) == 1, (during, versions)  # one version, never a mix
            assert cited <= versions, (versions, cited)
            seen.setdefault(during, set()).update(versions)
            text = " ".join(p["text"] for p in answer["passages"])
            # The new version's added row appears only in answers that rest on it.
            assert ("Atorvaliq" in text) == (versions == {2}), (versions, during)
        assert seen["none"] == {1}
        assert seen["done"] == {2}  # after the commit: the new version only
        assert "running" in seen or "queued" in seen, seen  # some ran during the ingest
        print(f"\ningest while serving: {len(answers)} answers, versions seen by job "
              f"state: { {k: sorted(v) for k, v in seen.items()} }")

        # A corrupt new version fails; the version in force keeps answering.
        bad = _upload(url, admin, "lipotropics.pdf", b"%PDF-1.7\n" + os.urandom(4096),
                      effective_date="2025-01-01")
        failed = services.jobs.wait(bad, timeout_s=600)
        assert failed is not None and failed.status == "failed", failed
        assert failed.reason
        versions = httpx.get(f"{url}/documents/{DOC}/versions", headers=auth).json()
        assert [(v["version"], v["status"]) for v in versions] == [
            (2, "current"), (1, "superseded")]
        answer = httpx.post(f"{url}/ask", headers=auth, json={"question": QUESTION},
                            timeout=300)
        assert answer.status_code == 200
        assert _versions_cited(answer.json())[0] == {2}

        # `medcite ingest` while this process (the API) holds the embedded store.
        out = subprocess.run(
            [sys.executable, "-m", "app.cli", "ingest", str(LIPO_2024), "--quiet"],
            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
            env={**os.environ, "MEDCITE_DATA_DIR": str(settings.data_dir),
                 "DATABASE_URL": f"sqlite:///{Path(settings.data_dir) / 'cli-audit.db'}",
                 "MEDCITE_COLLECTION": services.settings.collection})
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert "in use by another process" in out.stderr and "QDRANT_URL" in out.stderr
        assert "Traceback" not in out.stderr, out.stderr
