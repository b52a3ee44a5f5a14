"""A drug's own criteria on a payer's page are never left out of an answer that cites the
criteria of the drug's status or flag: found from the page's structure (the criteria
sections and the drugs their status governs) and the drug the question asks about."""

from __future__ import annotations

from app.answering.drug_criteria import omitted_drug_criteria
from app.answering.models import QUOTED_LABELS
from app.answering.relevance import question_focus
from app.answering.units import Unit, split_passage
from retrieval.models import Passage, Provenance

QUESTION = "Is Livalo (pitavastatin) preferred for Ohio Medicaid, and what is needed to get it?"
NON_PREFERRED = ("Non-Preferred Criteria\n\n- Must provide documentation of medical necessity "
                 "beyond convenience for why the patient cannot be changed to a preferred "
                 "drug\n- Must have had an inadequate clinical response of at least 30 days "
                 "with at least one preferred drug in the same drug class")
OWN = ("Additional Lovastatin ER (Altoprev), Pitavastatin (Livalo), Fluvastatin (Lescol) "
       "Criteria\n\n- Must have had an inadequate clinical response of at least 30 days "
       "with two preferred drugs in the same drug class")
ROW = "Livalo: Non-Preferred. Effective 2024-01-05."
STATUS_ANSWER = ("Livalo is non-preferred. The patient must provide documentation of medical "
                 "necessity beyond convenience for why the patient cannot be changed to a "
                 "preferred drug.")


def _passage(pid: str, text: str, last: str, applies_to: list[str] = (),  # type: ignore[assignment]
             payer: str = "Ohio Medicaid", first: str = "Criteria",
             source: str = "formularies/ohio/lipotropics.md") -> Passage:
    return Passage(id=pid, text=text, score=1.0, provenance=Provenance(
        doc_id="ohio:lipotropics", source_file=source, doc_type="formulary",
        char_start=0, char_end=len(text), title="Lipotropics", payer=payer,
        section_path=["Lipotropics", first, last], applies_to=list(applies_to)))


def _split(*passages: Passage) -> tuple[list[Passage], list[list[Unit]]]:
    return list(passages), [split_passage(p, i) for i, p in enumerate(passages)]


def _uids(units: list[Unit]) -> set[str]:
    return {u.uid for u in units}


def test_an_answer_citing_the_status_criteria_gets_the_drugs_own() -> None:
    passages, units = _split(
        _passage("n", NON_PREFERRED, "Non-Preferred", ["fluvastatin", "pitavastatin"]),
        _passage("o", OWN, "Lovastatin ER (Altoprev), Pitavastatin (Livalo), Fluvastatin "
                 "(Lescol)"))
    focus = question_focus(QUESTION)
    found = omitted_drug_criteria(focus, passages, units, _uids(units[0]), STATUS_ANSWER)
    # The criterion, not the line that restates the heading.
    assert [u.reading(p).lstrip("- ") for u, p in found] == [
        "Must have had an inadequate clinical response of at least 30 days with two "
        "preferred drugs in the same drug class"]
    # Cited but not stated: still added (seen verified: the model cited the "two preferred
    # drugs" bullet for "Livalo is non-preferred" and wrote the status criteria alone).
    both = _uids(units[0]) | _uids(units[1])
    assert omitted_drug_criteria(focus, passages, units, both, STATUS_ANSWER) == found
    # The status criteria's "at least one preferred drug" is not the drug's "two".
    one = STATUS_ANSWER + (" It needs an inadequate clinical response of at least 30 days "
                           "with at least one preferred drug in the same drug class.")
    assert omitted_drug_criteria(focus, passages, units, both, one) == found
    # Stated already: nothing to add.
    stated = STATUS_ANSWER + (" It also needs an inadequate clinical response of at least "
                              "30 days with two preferred drugs in the same drug class.")
    assert omitted_drug_criteria(focus, passages, units, both, stated) == []
    assert "criteria" in QUOTED_LABELS


def test_only_when_the_answer_leans_on_criteria_that_govern_the_drug() -> None:
    own = _passage("o", OWN, "Lovastatin ER (Altoprev), Pitavastatin (Livalo), Fluvastatin "
                   "(Lescol)")
    # The answer cites the drug's row, not criteria: nothing is quoted.
    passages, units = _split(_passage("r", ROW, "Non-Preferred", first="Formulary"), own)
    assert omitted_drug_criteria(question_focus(QUESTION), passages, units,
                                 _uids(units[0]), STATUS_ANSWER) == []
    # Status criteria that do not govern the drug asked about.
    passages, units = _split(_passage("n", NON_PREFERRED, "Non-Preferred", ["colesevelam"]),
                             own)
    assert omitted_drug_criteria(question_focus(QUESTION), passages, units,
                                 _uids(units[0]), STATUS_ANSWER) == []
    # Another payer's own criteria for the drug do not complete this payer's answer.
    passages, units = _split(
        _passage("n", NON_PREFERRED, "Non-Preferred", ["pitavastatin"]),
        _passage("o", OWN, "Pitavastatin (Livalo)", payer="Other Plan"))
    assert omitted_drug_criteria(question_focus(QUESTION), passages, units,
                                 _uids(units[0]), STATUS_ANSWER) == []
    # A question that asks only for the status asks for no criteria.
    passages, units = _split(_passage("n", NON_PREFERRED, "Non-Preferred", ["pitavastatin"]),
                             own)
    status_only = question_focus("Is Livalo preferred on Ohio Medicaid?")
    assert omitted_drug_criteria(status_only, passages, units, _uids(units[0]),
                                 STATUS_ANSWER) == []
