"""FHIR patient context: allergies are read, the patient's drugs focus retrieval when the
question refers to the patient, and the response says which facts were used.

Synthea bundles from corpora/fhir/synthea; the real index and API. Generation goes to
the stand-in endpoint (tests/conftest.py): these tests are about what surrounds it."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from app.answering.fhir_context import describe, parse_bundle, retrieval_query
from app.answering.models import AskRequest
from app.core.settings import REPO_ROOT
from app.security.api_keys import Principal, Role
from tests.conftest import Keys, StandInLLM

SYNTHEA = REPO_ROOT / "corpora" / "fhir" / "synthea"
# Kermit Trantow: active food and venom allergies. Tom Goodwin: on simvastatin.
ALLERGIC = SYNTHEA / "Kermit_Trantow_f1a650a5-737e-4fd7-828e-03c3348b9524.json"
ON_STATIN = SYNTHEA / "Tom_Goodwin_e20de9eb-6f2d-4871-a43f-bbede53293ed.json"
STATIN_QUESTION = "Is my patient's statin a preferred drug on the Ohio Medicaid formulary?"
WHO = Principal(key_id="t", name="t", role=Role.clinician, groups=["public"])


def _bundle(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_active_allergies_are_read_and_described() -> None:
    ctx = parse_bundle(_bundle(ALLERGIC))
    assert ctx.allergies == ["Allergy to bee venom", "Shellfish allergy", "Allergy to peanuts"]
    assert sum(r.startswith("AllergyIntolerance/") for r in ctx.resource_ids) == 3
    text = describe(ctx)
    assert "Allergies: Allergy to bee venom; Shellfish allergy; Allergy to peanuts." in text
    assert "Kermit" not in text and "Trantow" not in text


def test_refuted_allergy_is_not_used() -> None:
    bundle = _bundle(ALLERGIC)
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "AllergyIntolerance" and "peanut" in json.dumps(res["code"]):
            res["verificationStatus"] = {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "code": "refuted"}]}
    assert "Allergy to peanuts" not in parse_bundle(bundle).allergies


def test_patient_drugs_join_the_query_only_when_the_question_refers_to_the_patient() -> None:
    ctx = parse_bundle(_bundle(ON_STATIN))
    query = retrieval_query(STATIN_QUESTION, ctx)
    # Synthea spells it "Simvistatin": the dictionary name is searched, without strength.
    assert ctx.retrieval_terms[0] == "Simvastatin" and "Simvastatin" in query
    assert "10 MG" not in query and "Simvistatin" not in query
    assert retrieval_query("Which statins are preferred?", ctx) == "Which statins are preferred?"
    assert ctx.retrieval_terms == []
    allergic = parse_bundle(_bundle(ALLERGIC))
    retrieval_query("Can my patient take a statin?", allergic)
    # Dictionary names for products ("NDA020800 0.3 ML Epinephrine ... Auto-Injector").
    assert "Epinephrine" in allergic.retrieval_terms
    assert not any(t.startswith("NDA") for t in allergic.retrieval_terms)


def test_patient_statin_question_retrieves_the_formulary_row_of_their_statin(
    make_services,  # type: ignore[no-untyped-def]
) -> None:
    services = make_services()
    draft = services.answers.retrieve(
        AskRequest(question=STATIN_QUESTION, fhir_bundle=_bundle(ON_STATIN)), WHO
    )
    assert draft.patient is not None and "Simvastatin" in draft.patient.retrieval_terms
    hits = [p for p in draft.passages
            if "lipotropics" in p.provenance.source_file and "simvastatin" in p.text.lower()]
    assert hits, [(p.provenance.source_file, p.text[:60]) for p in draft.passages]


def test_response_lists_the_patient_facts_used_and_the_prompt_carries_allergies(
    make_services, standin_llm: StandInLLM, keys: Keys, settings  # type: ignore[no-untyped-def]
) -> None:
    from app.api.main import create_app

    services = make_services(llm_base_url=standin_llm.url, llm_structured_output="none")
    with TestClient(create_app(settings, services)) as api:
        r = api.post("/ask", headers={"Authorization": f"Bearer {keys.clinician}"}, json={
            "question": STATIN_QUESTION,
            "fhir_bundle": _bundle(ALLERGIC),
        })
    assert r.status_code == 200, r.text
    patient = r.json()["patient"]
    assert patient["allergies"] == ["Allergy to bee venom", "Shellfish allergy",
                                    "Allergy to peanuts"]
    assert "Loratadine" in patient["retrieval_terms"]
    assert any(rid.startswith("AllergyIntolerance/") for rid in patient["resource_ids"])
    assert "Allergies: Allergy to bee venom; Shellfish allergy; Allergy to peanuts." in \
        standin_llm.prompts[-1]
    assert "Kermit" not in r.text and "Trantow" not in r.text
