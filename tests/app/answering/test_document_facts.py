""""When was guideline X released?" is answered from the guideline's own release field
(app/answering/document_facts.py), and only for the guideline asked about: question
shapes, the document chosen, and the whole path through the real API over the real
small corpus (the NGC PrEP summary) with a stand-in model that must not be asked."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.answering.document_facts import asked_document, is_release_question
from app.answering.relevance import question_focus
from retrieval.models import Passage, Provenance
from tests.conftest import Keys, StandInLLM


@pytest.mark.parametrize(("question", "release"), [
    ("When was the CDC PrEP guideline first released and when revised?", True),
    ("When was the VA/DoD hypertension guideline in the corpus last revised?", True),
    ("Release date of the US medical eligibility criteria for contraceptive use?", True),
    # A drug's label history is not one field; a clinical "when" is not a date asked.
    ("When was the ulcerative colitis indication added to the Humira label?", False),
    ("When was atorvastatin's label revised?", False),
    ("When should a statin be started after a stroke?", False),
])
def test_only_a_question_about_a_documents_dates_is_a_release_question(
        question: str, release: bool) -> None:
    assert is_release_question(question, question_focus(question)) is release


def _passage(doc: str, rank: int) -> Passage:
    return Passage(id=f"{doc}:{rank}", text="x", score=1.0 - rank / 10, provenance=Provenance(
        doc_id=doc, title=doc, source_file=f"guidelines/ngc/{doc}.xml", doc_type="guideline",
        char_start=0, char_end=1))


def test_the_document_asked_about_is_the_one_most_passages_come_from() -> None:
    # Seen for the PrEP question: another guideline's status line ranked first.
    ranked = [_passage("ngc-10953", 0), _passage("ngc-10403", 1), _passage("ngc-10403", 2),
              _passage("ngc-11091", 3), _passage("ngc-10403", 4)]
    assert asked_document(ranked) is ranked[1]
    assert asked_document([_passage("a", 0), _passage("b", 1)]).provenance.doc_id == "a"
    assert asked_document([]) is None


@pytest.fixture
def ask(make_services, standin_llm: StandInLLM, keys: Keys, settings):  # type: ignore[no-untyped-def]
    from app.api.main import create_app

    services = make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0,
                             llm_structured_output="json_object")
    with TestClient(create_app(settings, services)) as api:
        def call(question: str) -> dict[str, Any]:
            r = api.post("/ask", headers={"Authorization": f"Bearer {keys.clinician}"},
                         json={"question": question})
            assert r.status_code == 200, r.text
            return dict(r.json())
        yield call


def test_a_release_question_is_answered_from_the_release_field_without_the_model(
        ask, standin_llm: StandInLLM) -> None:  # type: ignore[no-untyped-def]
    body = ask("When was the CDC PrEP guideline first released and when revised?")
    assert body["status"] == "verified", body
    assert body["answered_from"] == "records" and "release field" in body["model"]
    assert standin_llm.prompts == [], "the model must not be asked"
    (sentence,) = body["sentences"]
    assert sentence["text"].endswith(": date released 2011 Jan 28 (revised 2014).")
    assert [c["quote"] for c in sentence["citations"]] == ["2011 Jan 28 (revised 2014)"]
    cited = next(p for p in body["passages"]
                 if p["id"] == sentence["citations"][0]["passage_id"])
    assert cited["provenance"]["section_path"][-1] == "Date Released"
    assert cited["provenance"]["source_file"] == "guidelines/ngc/ngc-10403.xml"


def test_another_guidelines_release_date_is_never_the_answer(
        ask, standin_llm: StandInLLM) -> None:  # type: ignore[no-untyped-def]
    body = ask("When was the ACC/AHA heart failure guideline last revised?")
    assert body["answered_from"] == "model"
    assert "2011 Jan 28" not in " ".join(s["text"] for s in body["sentences"]) or \
        body["status"] != "verified"
