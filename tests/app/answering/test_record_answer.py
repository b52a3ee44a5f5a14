"""A formulary status question is answered from the formulary's records (a lookup), and
only such a question: records built by the real parser and chunker from the shipped
Ohio Medicaid pages, and the whole path through the real API with a stand-in model that
must not be asked."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.answering.record_answer import (
    is_plan_question,
    is_record_question,
    read_records,
    record_answer,
)
from app.answering.relevance import question_focus
from app.answering.units import Unit, split_passage
from app.core.settings import REPO_ROOT
from ingest.chunking import chunk_document
from ingest.manifest import discover
from ingest.parsers import parse_file
from retrieval.models import Passage, Provenance
from tests.conftest import Keys, StandInLLM

CORPORA = REPO_ROOT / "corpora"
LIPOTROPICS = "formularies/ohio-medicaid-updl/current-2024/lipotropics.md"
DIABETES = "formularies/ohio-medicaid-updl/current-2024/diabetes_non-insulin.md"
PDL = "formularies/ohio-medicaid-updl/current-2024/preferred_drug_list.md"
OPIOIDS = "formularies/ohio-medicaid-updl/current-2024/opioids.md"


def _rows(rel: str, *names: str, kind: str = "row") -> list[Passage]:
    """The record (or table) passages of a shipped formulary whose text names each of
    `names`, in that order (as retrieval would rank them)."""
    source = next(s for s in discover(CORPORA) if s.relpath == rel)
    doc = parse_file(source, 50_000_000)
    chunks = [c for c in chunk_document(doc, 1200, 150, payer=source.payer,
                                        effective_date=source.effective_date)
              if c.kind == kind]
    out = []
    for name in names:
        chunk = next(c for c in chunks if name in c.text)
        out.append(Passage(id=f"{rel}:{chunk.index}", text=chunk.text, score=0.9,
                           provenance=Provenance(
                               doc_id=rel, title=doc.title, source_file=rel,
                               doc_type="formulary", section_path=list(chunk.section.path),
                               char_start=chunk.start, char_end=chunk.end,
                               effective_date=source.effective_date, payer=source.payer,
                               unit_kind=kind, applies_to=list(chunk.applies_to))))
    return out


def _units(passages: list[Passage]) -> list[list[Unit]]:
    return [split_passage(p, i) for i, p in enumerate(passages)]


def _answer(question: str, passages: list[Passage], whole: set[int] | None = None,
            ) -> list[str] | None:
    generated = record_answer(question, question_focus(question), passages, _units(passages),
                              whole)
    return None if generated is None else [s.text for s in generated.sentences]


@pytest.mark.parametrize(("question", "lookup"), [
    ("Is Repatha preferred on Ohio Medicaid's PDL?", True),
    ("Does Repatha need prior authorization under Ohio Medicaid?", True),
    ("Quantity limit on simvastatin for Ohio Medicaid?", True),
    ("Is Livalo preferred for Ohio Medicaid, and is there a quantity limit?", True),
    ("Is Humira on Ohio Medicaid's preferred list?", True),
    # A formulary's "limit on" a drug is its quantity limit; a leading date qualifies the
    # question (the request's as_of picks the version); "what restriction" asks its flags.
    ("Ohio Medicaid limit on hydrocodone/acetaminophen 10-325 tablets?", True),
    ("As of April 2024, is lubiprostone preferred by Ohio Medicaid, and with what "
     "restriction?", True),
    ("In June 2023, what quantity limit applied to rosuvastatin under Ohio Medicaid?", True),
    # A second question a record does not answer: the model's.
    ("Is Livalo preferred for Ohio Medicaid, and what is needed to get it?", False),
    ("Is Savaysa covered as preferred by Ohio Medicaid, or what trial is needed?", False),
    # Criteria, a category's list, no drug named: the model's.
    ("What are the PA requirements for Vascepa under Ohio Medicaid?", False),
    ("Which oral isotretinoin brands are preferred by Ohio Medicaid?", False),
    ("Which statins are preferred on the Ohio Medicaid PDL?", False),
    ("What is the starting dose of atorvastatin?", False),
])
def test_only_a_question_a_record_answers_whole_is_a_lookup(question: str, lookup: bool) -> None:
    assert is_record_question(question, question_focus(question)) is lookup


def test_the_record_states_status_flags_date_and_limit_in_the_lists_own_words() -> None:
    passages = _rows(LIPOTROPICS, "Simvastatin Tab (all strengths)")
    (status, limit) = _answer("Is simvastatin preferred for Ohio Medicaid, and is there a "
                              "quantity limit?", passages) or []
    assert status == ("Simvastatin (QL) (Simvastatin Tab (all strengths)) is Preferred on the "
                      "Ohio Medicaid formulary (Lipotropics › Formulary), effective 2024-01-01, "
                      "with QL (quantity limit).")
    assert limit == ("The quantity limit for Simvastatin (QL) (Simvastatin Tab (all "
                     "strengths)) is 102 per 102 days.")


def test_a_pa_asked_of_a_non_preferred_row_without_a_pa_flag_quotes_its_status_criteria(
) -> None:
    """The row says "Non-Preferred" and no PA: what a PA takes is on the criteria page
    (seen verified: the status alone, for "… and does it need prior authorization?")."""
    row = _rows(LIPOTROPICS, "Colesevelam: Non-Preferred")
    criteria = _rows(LIPOTROPICS, "Non-Preferred Criteria", kind="section")
    asked = "Is colesevelam preferred on Ohio Medicaid, and does it need prior authorization?"
    status, quoted = _answer(asked, row + criteria) or []
    assert status.startswith("Colesevelam is Non-Preferred on the Ohio Medicaid formulary")
    assert quoted.startswith("- Must provide documentation of medical necessity beyond "
                             "convenience")
    assert "at least 30 days (or 90 days for fibrates)" in quoted
    assert "Non-Preferred Criteria" not in quoted  # the heading restated is no criterion
    # Without the criteria retrieved, the status alone would not answer: the model's.
    assert _answer(asked, row) is None
    # The status alone asked: the status alone answered.
    assert _answer("Is colesevelam preferred on Ohio Medicaid?", row + criteria) == [status]
    # A preferred row flagged PA states its PA itself.
    (repatha,) = _answer("Does Repatha need prior authorization under Ohio Medicaid?",
                         _rows(LIPOTROPICS, "Repatha") + criteria) or []
    assert "PA (prior authorization required)" in repatha


def test_a_strength_the_question_names_picks_its_row_not_the_row_that_excludes_it() -> None:
    # Ranked first: "all strengths excl 500 MG & 850 MG" (204 per 102 days), then the
    # 500 MG row (408 per 102 days).
    passages = _rows(DIABETES, "Metformin HCI Tab (all strengths excl 500 MG & 850 MG)",
                     "Metformin HCI Tab 500 MG")
    text = " ".join(_answer("Metformin 500 mg quantity limit on Ohio Medicaid?", passages)
                    or [])
    assert "The quantity limit for Metformin IR (QL) (Metformin HCI Tab 500 MG) is 408 per " \
        "102 days." in text
    assert "204" not in text and "excl" not in text


def test_a_combination_strength_and_form_pick_their_row() -> None:
    # Ranked first: the 10-325 solution (3060 per 34 days), then the 5-325 tablet, then
    # the 10-325 tablet the question asks about.
    passages = _rows(OPIOIDS, "Soln 10-325 MG / 15 ML", "Tab 5-325 MG", "Tab 10-325 MG")
    text = " ".join(_answer("Ohio Medicaid limit on hydrocodone/acetaminophen 10-325 "
                            "tablets?", passages) or [])
    assert "(Hydrocodone/Acetaminophen Tab 10-325 MG) is 102 per 34 days." in text
    assert "3060" not in text and "5-325" not in text and "Soln" not in text
    # Both drugs of the combination name the one row: it is stated once.
    assert text.count("102 per 34 days") == 1, text


def test_a_generic_asked_for_is_not_answered_by_its_brands_row() -> None:
    # Livalo is pitavastatin's brand; its row says nothing of a generic pitavastatin.
    passages = _rows(LIPOTROPICS, "Livalo")
    assert _answer("Is generic pitavastatin preferred on Ohio Medicaid's PDL?", passages) is None
    # The drug as the list prints it, its superscripts included.
    assert _answer("Is pitavastatin preferred on Ohio Medicaid's PDL?", passages) == [
        "Livalo (BVG (Process by NDC) Weekly Updates) is Non-Preferred on the Ohio Medicaid "
        "formulary (Lipotropics › Formulary), effective 2024-01-01, with BVG (brand "
        "preferred over generic)."]


def test_a_list_printing_two_status_columns_holds_one_record_per_column() -> None:
    (passage,) = _rows(PDL, "| Humira (PA) | Cosentyx |")
    records = read_records(passage, split_passage(passage, 0))
    assert [(r.name, r.status) for r in records] == [("Humira", "Preferred"),
                                                     ("Cosentyx", "Non-Preferred")]
    (sentence,) = _answer("Is Cosentyx preferred on the Ohio Medicaid PDL?", [passage]) or []
    assert sentence.startswith("Cosentyx is Non-Preferred on the Ohio Medicaid formulary "
                               "(Preferred Drug List › Immunomodulator Agents")


def test_no_record_of_the_drug_asked_about_means_no_lookup() -> None:
    passages = _rows(LIPOTROPICS, "Simvastatin Tab (all strengths)")
    assert _answer("Is Repatha preferred on Ohio Medicaid's PDL?", passages) is None


def test_a_classs_preferred_agents_come_from_a_whole_table_and_only_its_members() -> None:
    (table,) = _rows(PDL, "| Acarbose", kind="table")  # Diabetes - Non-Insulin, one chunk
    question = "SGLT2 inhibitors preferred on the Ohio Medicaid PDL?"
    (sentence,) = _answer(question, [table], whole={0}) or []
    # The class's members of the Preferred column; not its other drugs (Byetta, a GLP-1
    # agonist), not its Non-Preferred column (Steglatro).
    assert sentence == ("Preferred on the Ohio Medicaid formulary (Preferred Drug List › "
                        "Endocrine Agents › Diabetes - Non-Insulin): Farxiga, Invokamet, "
                        "Invokana, Jardiance, Synjardy.")
    # A table not known to be whole is never read as the class's list.
    assert _answer(question, [table], whole=set()) is None
    # "…, and which need a PA?": both columns, each agent as the table prints it (a
    # preferred agent's own PA flag with it); the model read a bile-acid table's
    # non-preferred column as preferred.
    both = _answer("Which SGLT2 inhibitors are preferred, and which need a PA?", [table],
                   whole={0}) or []
    assert both[0] == sentence
    assert both[1].startswith("Non-Preferred on the Ohio Medicaid formulary") \
        and "Steglatro" in both[1] and "Jardiance" not in both[1]
    # A PA alone has no column (a preferred agent may need one too); a clause no column
    # answers, or a class the class table does not know: the model's.
    assert _answer("Which SGLT2 inhibitors on the Ohio PDL need a PA?", [table],
                   whole={0}) is None
    assert _answer("Which SGLT2 inhibitors are preferred, and what must be tried first?",
                   [table], whole={0}) is None
    assert _answer("Which sulfonylureas are preferred on the Ohio Medicaid PDL?", [table],
                   whole={0}) is None


def test_a_plan_the_question_names_is_answered_from_that_plans_line() -> None:
    (tylenol,) = _rows("formularies/cms-qhp/drugs-1.json", "Tylenol")
    assert _answer("Tylenol 500 mg coverage tier on the Vandelay Bronze plan?", [tylenol]) == [
        "Acetaminophen 500 MG Oral Tablet [Tylenol] (RxNorm 209459): plan Vandelay Insurance "
        "Bronze Health Plan (12345XX9876541), tier GENERIC, prior authorization: no, step "
        "therapy: no, quantity limit: no, years 2020."]
    # No plan named: every plan's line. A plan no line names, or another strength: none.
    assert len(_answer("Tylenol 500 mg coverage tier for Vandelay plans?", [tylenol])
               or []) == 3
    assert _answer("Tylenol 500 mg coverage tier on the Vandelay Platinum plan?",
                   [tylenol]) is None
    assert _answer("Tylenol 325 mg coverage tier on the Vandelay Bronze plan?",
                   [tylenol]) is None


@pytest.mark.parametrize("question", [
    # Whether step therapy applies is what a plan's line states (seen sent to the model,
    # which gave the wrong tier); plan members, not "plan", also name the plan.
    "Lialda 1.2 on the Vandelay Bronze plan: what tier, and is there prior auth or step "
    "therapy?",
    "Any utilization management (PA, step therapy, quantity limit) on Lialda for Vandelay "
    "Bronze members?",
])
def test_whether_a_plan_applies_pa_or_step_therapy_is_its_lines_lookup(question: str) -> None:
    focus = question_focus(question)
    assert is_plan_question(question, focus)
    (lialda,) = _rows("formularies/cms-qhp/drugs-2.json", "Lialda")
    (line,) = _answer(question, [lialda]) or []
    assert "plan Vandelay Insurance Bronze Health Plan" in line
    assert "tier BRAND, prior authorization: yes, step therapy: no" in line
    # What must be tried first is criteria, which no plan line holds.
    asked = "What step therapy does the Vandelay Bronze plan require before Lialda?"
    assert not is_plan_question(asked, question_focus(asked))


# --- through the API -------------------------------------------------------------------

@pytest.fixture
def ask(make_services, standin_llm: StandInLLM, keys: Keys, settings):  # type: ignore[no-untyped-def]
    from app.api.main import create_app

    clients = ExitStack()

    def make(**overrides: Any):  # type: ignore[no-untyped-def]
        services = make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0,
                                 llm_structured_output="json_object", **overrides)
        api = clients.enter_context(TestClient(create_app(settings, services)))

        def call(question: str, stream: bool = False) -> dict[str, Any]:
            auth = {"Authorization": f"Bearer {keys.clinician}"}
            if not stream:
                r = api.post("/ask", headers=auth, json={"question": question})
                assert r.status_code == 200, r.text
                return dict(r.json())
            with api.stream("POST", "/ask/stream", headers=auth,
                            json={"question": question}) as r:
                lines = [line for line in r.iter_lines() if line.startswith("data:")]
            return dict(json.loads(lines[-1].split(":", 1)[1]))
        return call
    with clients:
        yield make


@pytest.mark.parametrize("stream", [False, True])
def test_a_status_question_is_answered_from_the_record_without_the_model(
        ask, standin_llm: StandInLLM, stream: bool) -> None:  # type: ignore[no-untyped-def]
    body = ask()("Does Repatha need prior authorization under Ohio Medicaid?", stream=stream)
    assert body["status"] == "verified", body
    assert body["answered_from"] == "records"
    assert "lookup" in body["model"]
    assert standin_llm.prompts == [], "the model must not be asked"
    (sentence,) = body["sentences"]
    assert sentence["text"].startswith("Repatha (PA) is Preferred on the Ohio Medicaid")
    assert "PA (prior authorization required)" in sentence["text"]
    quotes = {c["quote"] for c in sentence["citations"]}
    assert "Repatha: Preferred." in quotes and "Flags: PA (prior authorization required)." \
        in quotes
    assert all(c["status"] == "supported" for c in sentence["citations"])


def test_a_question_asking_more_than_the_record_goes_to_the_model(
        ask, standin_llm: StandInLLM) -> None:  # type: ignore[no-untyped-def]
    body = ask(second_look=False)("Is Repatha preferred for Ohio Medicaid, and what is "
                                  "needed to get it?")
    assert body["answered_from"] == "model"
    assert len(standin_llm.prompts) == 1


def test_lookups_can_be_turned_off(ask, standin_llm: StandInLLM) -> None:  # type: ignore[no-untyped-def]
    body = ask(record_answers=False)("Does Repatha need prior authorization under Ohio "
                                     "Medicaid?")
    assert body["answered_from"] == "model"
    assert len(standin_llm.prompts) == 1


def test_a_class_list_through_the_api_names_only_the_class_and_leaves_no_member_untold(
        ask, standin_llm: StandInLLM) -> None:  # type: ignore[no-untyped-def]
    body = ask()("Which statins are preferred on the Ohio Medicaid lipotropics list?")
    assert body["status"] == "verified" and body["answered_from"] == "records", body
    assert standin_llm.prompts == []
    (sentence,) = body["sentences"]
    named = sentence["text"].split(": ", 1)[1].rstrip(".")
    for statin in ("Atorvastatin", "Lovastatin", "Pravastatin", "Rosuvastatin", "Simvastatin"):
        assert statin in named, named
    for other in ("Cholestyramine", "Ezetimibe", "Gemfibrozil", "Repatha"):
        assert other not in named
    # The table's other classes are not "items the answer does not name".
    assert body["status_reason"] is None, body["status_reason"]


def test_without_a_non_preferred_pa_asks_for_the_preferred_column() -> None:
    """Seen verified: the non-preferred oral anticoagulants (Dabigatran, Savaysa) for
    "What oral anticoagulants can I prescribe without a non-preferred PA?"."""
    from app.answering.record_answer import _columns

    assert _columns("What oral anticoagulants can I prescribe without a non-preferred PA "
                    "for an Ohio Medicaid patient?") == ["preferred"]
    assert _columns("Which statins are non-preferred on Ohio Medicaid?") == ["non-preferred"]
    assert _columns("Which statins are preferred, and which need a PA?") == [
        "preferred", "non-preferred"]
