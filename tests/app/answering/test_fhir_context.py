"""FHIR patient context: allergies are read, the patient's drugs focus retrieval when the
question refers to the patient, and the response says which facts were used.

Synthea bundles from corpora/fhir/synthea; the real index and API. Generation goes to
the stand-in endpoint (tests/conftest.py): these tests are about what surrounds it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.answering.fhir_context import InvalidBundle, describe, parse_bundle, retrieval_query
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

    # The prompt is under test: the question goes to the model, not to a formulary lookup.
    services = make_services(llm_base_url=standin_llm.url, llm_structured_output="none",
                             record_answers=False)
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


# Unusual shapes ------------------------------------------------------------------------------

SHAPES = Path(__file__).parent / "fhir_shapes"
# What every shape's patient is called: never to appear in a response.
SHAPE_IDENTIFIERS = ("Shapewell", "Odessa", "999-12-3456")


def _shapes() -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    return [(p.stem, json.loads(p.read_text())) for p in sorted(SHAPES.glob("*.json"))]


def _big_bundle(conditions: int) -> dict:  # type: ignore[type-arg]
    """One patient and `conditions` active Conditions, each its own entry."""
    entries = [{"fullUrl": "urn:uuid:pat-1", "resource": {
        "resourceType": "Patient", "id": "pat-1", "gender": "male", "birthDate": "1960-01-01"}}]
    entries += [{"fullUrl": f"urn:uuid:c{i}", "resource": {
        "resourceType": "Condition", "id": f"c{i}", "subject": {"reference": "Patient/pat-1"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"text": f"Condition number {i}"}}} for i in range(conditions)]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def test_the_shape_corpus_covers_each_unusual_shape() -> None:
    names = {name for name, _ in _shapes()}
    assert {"type-banana", "entry-empty", "entry-missing", "several-patients",
            "medication-reference-fullurl", "resources-without-ids", "deceased-datetime",
            "deceased-boolean", "unknown-resource-type"} <= names
    for name, shape in _shapes():
        assert shape["expect"]["status"] in (200, 422), name


def _mismatches(patient: dict, expected: dict) -> list[str]:  # type: ignore[type-arg]
    wrong = []
    for field, value in expected.items():
        if field == "age_at_least":
            if patient["age"] is None or patient["age"] < value:
                wrong.append(f"age {patient['age']} < {value}")
        elif patient[field] != value:
            wrong.append(f"{field} {patient[field]!r} != {value!r}")
    return wrong


@pytest.mark.parametrize("name", [name for name, _ in _shapes()])
def test_each_shape_parses_to_its_expected_context_or_a_clear_error(name: str) -> None:
    shape = dict(_shapes())[name]
    expect = shape["expect"]
    if expect["status"] == 422:
        with pytest.raises(InvalidBundle, match=re.escape(expect["detail_contains"])):
            parse_bundle(shape["bundle"])
        return
    ctx = parse_bundle(shape["bundle"])
    assert not _mismatches(ctx.model_dump(), expect["patient"])
    assert not any(rid.endswith("/None") for rid in ctx.resource_ids), ctx.resource_ids


def test_medication_reference_is_resolved_not_dropped() -> None:
    shapes = dict(_shapes())
    for name, drug in (("medication-reference-fullurl", "Atorvastatin 20 MG Oral Tablet"),
                       ("medication-reference-relative", "Atorvastatin 20 MG Oral Tablet"),
                       ("medication-reference-contained", "Simvastatin 10 MG Oral Tablet")):
        ctx = parse_bundle(shapes[name]["bundle"])
        assert ctx.medications == [drug], name
        # And it reaches retrieval like a coded medication does.
        retrieval_query(STATIN_QUESTION, ctx)
        assert ctx.retrieval_terms[0] == drug.split()[0], (name, ctx.retrieval_terms)


def test_a_bundle_of_5000_entries_is_parsed_and_described_within_bounds() -> None:
    ctx = parse_bundle(_big_bundle(4999))
    assert len(ctx.conditions) == 4999 and len(ctx.resource_ids) == 5000
    text = describe(ctx)
    # The prompt lists the first conditions and counts the rest: no 5,000-line prompt.
    assert "Condition number 0; " in text and "; and 4979 more." in text
    assert "Condition number 4998" not in text and len(text) < 2000


def test_every_fhir_shape_is_a_clear_422_or_an_answer_never_a_5xx(
    make_services, standin_llm: StandInLLM, keys: Keys, settings  # type: ignore[no-untyped-def]
) -> None:
    """Every shape under fhir_shapes/ through POST /ask (and the 5,000-entry bundle), with
    a question that refers to the patient so their facts reach retrieval and the prompt."""
    from app.api.main import create_app

    services = make_services(llm_base_url=standin_llm.url, llm_structured_output="none",
                             rate_limit_per_minute=0)
    auth = {"Authorization": f"Bearer {keys.clinician}"}
    cases = [*_shapes(), ("5000-entries", {"expect": {"status": 200, "patient": {
        "sex": "male"}}, "bundle": _big_bundle(4999)})]
    failures = []
    with TestClient(create_app(settings, services)) as api:
        for name, shape in cases:
            r = api.post("/ask", headers=auth, json={"question": STATIN_QUESTION,
                                                      "fhir_bundle": shape["bundle"]})
            expect = shape["expect"]
            if r.status_code != expect["status"]:
                failures.append((name, r.status_code, r.text[:300]))
                continue
            for secret in SHAPE_IDENTIFIERS:
                assert secret not in r.text, (name, secret)
            if r.status_code == 422:
                if expect["detail_contains"] not in r.json()["detail"]:
                    failures.append((name, "detail", r.json()["detail"]))
                continue
            wrong = _mismatches(r.json()["patient"], expect["patient"])
            if wrong:
                failures.append((name, "patient", wrong))
    assert not failures, failures
