"""POST /ask through FastAPI's TestClient: real retrieval, real CPU generator, real
verification."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from app.core.settings import REPO_ROOT
from tests.conftest import Keys, StandInLLM

BUNDLE = REPO_ROOT / "corpora/fhir/synthea/Reuben_Lind_1d03714f-4851-44d9-a6b6-8a2752bbe178.json"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_health_needs_no_key(api: TestClient, qdrant, settings) -> None:  # type: ignore[no-untyped-def]
    r = api.get("/health")
    assert r.status_code == 200
    # The collection's real size (other tests may add to it, so counted now, not fixed).
    assert r.json()["passages"] == qdrant.count(settings.collection, exact=True).count
    assert r.json()["passages"] > 50  # the small corpus: a label, guidelines, formularies


def test_openapi_docs_are_served(api: TestClient) -> None:
    assert api.get("/docs").status_code == 200
    assert "/ask" in api.get("/openapi.json").json()["paths"]


def test_ask_requires_a_valid_key_and_role(api: TestClient, keys: Keys) -> None:
    body = {"question": "What is the starting dose of atorvastatin?"}
    assert api.post("/ask", json=body).status_code == 401
    assert api.post("/ask", json=body, headers=_auth("mc_wrong")).status_code == 401
    r = api.post("/ask", json=body, headers=_auth(keys.auditor))
    assert r.status_code == 403 and "auditor" in r.json()["detail"]


def test_answerable_question_is_cited_and_verified(api: TestClient, keys: Keys) -> None:
    r = api.post("/ask", headers=_auth(keys.clinician),
                 json={"question": "What is the recommended starting dose of atorvastatin?"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert not data["abstained"], data["abstain_reason"]
    assert data["status"] in ("verified", "partially_verified"), (
        data["status_reason"], [(s["text"], [c["reasons"] for c in s["citations"]])
                                for s in data["removed_sentences"]])
    passages = {p["id"]: p for p in data["passages"]}
    supported = [
        (s, c) for s in data["sentences"] for c in s["citations"]
        if c["status"] == "supported"
    ]
    assert supported, data["sentences"]
    sentence, citation = supported[0]
    cited = passages[citation["passage_id"]]
    assert "LIPITOR" in cited["provenance"]["title"].upper()
    assert "mg" in sentence["text"]
    span = cited["text"][citation["span_start"] : citation["span_end"]]
    assert span and "mg" in span
    assert set(data["timings_ms"]) >= {"retrieval", "generation", "verification"}


def test_question_without_support_abstains(api: TestClient, keys: Keys) -> None:
    for question in (
        "What is the recommended dose of zolpidem for insomnia?",
        "Who won the football world cup in 1998?",
    ):
        r = api.post("/ask", headers=_auth(keys.clinician), json={"question": question})
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["abstained"] and data["status"] == "abstained", (question, data["sentences"])
        assert data["abstain_reason"]
        assert data["sentences"] == []


def test_groups_outside_the_caller_are_never_retrieved(api: TestClient, keys: Keys) -> None:
    r = api.post("/ask", headers=_auth(keys.restricted),
                 json={"question": "What is the recommended starting dose of atorvastatin?"})
    assert r.status_code == 200
    assert r.json()["passages"] == [] and r.json()["abstained"]


def test_filters_restrict_document_types(
    make_services, standin_llm: StandInLLM, keys: Keys, settings  # type: ignore[no-untyped-def]
) -> None:
    """Through POST /ask: the filter reaches retrieval, so every passage (and so every
    citation) is of the asked type; without it the same question also finds others."""
    from app.api.main import create_app

    services = make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0)
    question = "What is the quantity limit for atorvastatin?"
    with TestClient(create_app(settings, services)) as client:
        filtered = client.post("/ask", headers=_auth(keys.clinician), json={
            "question": question, "filters": {"doc_types": ["formulary"]}})
        unfiltered = client.post("/ask", headers=_auth(keys.clinician),
                                 json={"question": question})
    assert filtered.status_code == 200 and unfiltered.status_code == 200
    passages = filtered.json()["passages"]
    assert passages and {p["provenance"]["doc_type"] for p in passages} == {"formulary"}
    cited = {c["passage_id"] for s in filtered.json()["sentences"] for c in s["citations"]}
    assert cited <= {p["id"] for p in passages}
    others = {p["provenance"]["doc_type"] for p in unfiltered.json()["passages"]}
    assert others - {"formulary"}, "the control: unfiltered, other types are found too"


def test_invalid_fhir_bundle_is_422_with_reason(api: TestClient, keys: Keys) -> None:
    bad = {"resourceType": "Bundle", "type": "collection",
           "entry": [{"resource": {"resourceType": "Patient", "birthDate": "not-a-date"}}]}
    r = api.post("/ask", headers=_auth(keys.integration),
                 json={"question": "Which statins are preferred?", "fhir_bundle": bad})
    assert r.status_code == 422
    assert "birthDate" in r.json()["detail"]
    r = api.post("/ask", headers=_auth(keys.integration),
                 json={"question": "x", "fhir_bundle": {"resourceType": "Patient"}})
    assert r.status_code == 422 and "Bundle" in r.json()["detail"]


def test_fhir_context_is_used_without_identifiers(
    make_services, standin_llm: StandInLLM, keys: Keys, settings  # type: ignore[no-untyped-def]
) -> None:
    from app.api.main import create_app

    # The stand-in generator records the prompt: no identifier reaches the model either.
    # (A formulary lookup would answer without a prompt: off, so the prompt is tested.)
    services = make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0,
                             record_answers=False)
    bundle = json.loads(BUNDLE.read_text())
    with TestClient(create_app(settings, services)) as client:
        r = client.post("/ask", headers=_auth(keys.integration), json={
            "question": "Is gemfibrozil a preferred drug on the Ohio Medicaid formulary?",
            "fhir_bundle": bundle,
        })
    assert r.status_code == 200, r.text
    data = r.json()
    patient = data["patient"]
    assert patient["sex"] == "male" and patient["age"] > 18
    assert "Hypertension" in patient["conditions"]
    assert any(rid.startswith("Patient/") for rid in patient["resource_ids"])
    assert "Reuben" not in r.text and "Lind" not in r.text.replace("Lindane", "")
    prompt = " ".join(standin_llm.prompts)
    assert "Hypertension" in prompt  # the patient's context reached the model...
    assert "Reuben" not in prompt and "Lind" not in prompt.replace("Lindane", "")  # ...no name


def test_oversized_requests_are_refused(api: TestClient, keys: Keys) -> None:
    r = api.post("/ask", headers=_auth(keys.clinician), json={"question": "dose? " * 1000})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    huge = {"question": "x", "fhir_bundle": {"resourceType": "Bundle", "pad": "x" * 6_000_000}}
    r = api.post("/ask", headers=_auth(keys.clinician), json=huge)
    assert r.status_code == 413
