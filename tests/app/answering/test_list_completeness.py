"""A list question answered with only some of the items its cited table holds is told
so (app/answering/pipeline.py untold_items)."""

from __future__ import annotations

from app.answering.citation_checks import verify_units
from app.answering.models import AskRequest
from app.answering.pipeline import Draft, asks_for_all, untold_items
from app.answering.units import split_passage
from retrieval.models import Passage, Provenance

TABLE = ("| Preferred | Quantity |\n|:--|:--:|\n| Atorvastatin <sup>QL</sup> | 102 |\n"
         "| Ezetimibe | |\n| Lovastatin <sup>QL</sup> | 204 |\n")


def _draft(question: str) -> Draft:
    p = Passage(id="p", text=TABLE, score=1.0, provenance=Provenance(
        doc_id="d", title="Lipotropics", source_file="f.md", doc_type="formulary",
        section_path=["Formulary", "Preferred"], char_start=0, char_end=len(TABLE)))
    draft = Draft(AskRequest(question=question), [p], None, {})
    draft.units = [split_passage(p, 0)]
    return draft


def test_items_of_the_cited_table_the_answer_does_not_name_are_listed() -> None:
    question = "Which lipotropics are preferred by Ohio Medicaid?"
    assert asks_for_all(question)
    draft = _draft(question)
    row = draft.unit_index["P1.1"]
    partial = verify_units("Atorvastatin is preferred, with a quantity limit.", [row])
    assert untold_items(draft, [partial]) == ["Ezetimibe", "Lovastatin QL"]
    every = verify_units("Atorvastatin, ezetimibe and lovastatin are preferred.",
                         [draft.unit_index[u] for u in ("P1.1", "P1.2", "P1.3")])
    assert untold_items(draft, [every]) == []


def test_a_single_fact_question_is_not_a_list_question() -> None:
    assert not asks_for_all("What is the starting dose of atorvastatin?")
    assert asks_for_all("List every contraindication to Lipitor.")
