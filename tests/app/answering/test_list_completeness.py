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


STATINS = (
    "| Preferred | Non-Preferred |\n| --- | --- |\n| Atorvastatin (QL) | Altoprev |\n"
    "| Cholestyramine Regular, Light | Amlodipine/Atorvastatin |\n| Colestipol Tab | "
    "Colesevelam |\n| Ezetimibe | Colestipol Granules |\n| Lovastatin (QL) | Fenofibrate Cap |\n"
    "| Pravastatin | Juxtapid |\n| Prevalite | Livalo |\n| Repatha (PA) | Nexletol |\n"
    "| Rosuvastatin (QL) | Nexlizet |\n| Simvastatin (QL) | Niacin ER Tab (QL) |\n")


def test_evidence_for_a_list_question_is_every_row_that_names_a_member() -> None:
    """Seen with the real model: "Which statins are preferred on the Ohio Medicaid PDL?"
    came back evidence-only with three rows of the table (the best word matches), which
    read as the whole list and left out pravastatin, rosuvastatin and simvastatin."""
    from app.answering.pipeline import addressing_units
    from app.answering.relevance import question_focus

    question = "Which statins are preferred on the Ohio Medicaid PDL?"
    p = Passage(id="t", text=STATINS, score=1.0, provenance=Provenance(
        doc_id="d", title="Preferred Drug List", source_file="pdl.md", doc_type="formulary",
        unit_kind="table", payer="Ohio Medicaid",
        section_path=["Preferred Drug List", "Cardiovascular Agents", "Lipotropics"],
        char_start=0, char_end=len(STATINS)))
    draft = Draft(AskRequest(question=question), [p], None, {})
    quotes = addressing_units(question, question_focus(question, None), draft)
    shown = " ".join(q.text for q in quotes)
    for statin in ("Atorvastatin", "Lovastatin", "Pravastatin", "Rosuvastatin", "Simvastatin"):
        assert statin in shown, shown
    # In the table's order, with its header, and no row that names no statin.
    assert [q.text.split("|")[1].strip() for q in quotes][0] == "Atorvastatin (QL)"
    assert all(q.header == ["Preferred", "Non-Preferred"] for q in quotes)
    assert "Colestipol Tab" not in shown
    # One fact asked: the best three units, as before.
    one = "Is simvastatin preferred on the Ohio Medicaid PDL?"
    assert len(addressing_units(one, question_focus(one, None), draft)) <= 3


def test_a_complete_column_is_not_reported_as_leaving_out_the_other_columns_agents() -> None:
    """Seen: every preferred PPI named, and the answer reported as leaving out
    rabeprazole, a Non-Preferred cell beside them."""
    question = "Which lipotropics are preferred by Ohio Medicaid?"
    p = Passage(id="t", text=STATINS, score=1.0, provenance=Provenance(
        doc_id="d", title="Preferred Drug List", source_file="pdl.md", doc_type="formulary",
        unit_kind="table", section_path=["Lipotropics"], char_start=0,
        char_end=len(STATINS)))
    draft = Draft(AskRequest(question=question), [p], None, {})
    draft.units = [split_passage(p, 0)]
    rows = [draft.unit_index[f"P1.{i}"] for i in range(1, 11)]
    preferred = [r.split(" | ")[0].strip("| ") for r in STATINS.splitlines()[2:]]
    every = verify_units("Preferred: " + ", ".join(preferred) + ".", rows)
    assert untold_items(draft, [every]) == []
    some = verify_units("Preferred: " + ", ".join(preferred[:8]) + ".", rows)
    assert untold_items(draft, [some]) == ["Rosuvastatin (QL)", "Simvastatin (QL)"]


CRITERIA = (
    "The patient must meet all of the following criteria:\n"
    "- Diagnosis of heterozygous familial hypercholesterolemia\n"
    "- Trial of a high-intensity statin for at least 90 days\n"
    "- Baseline LDL-C of 100 mg/dL or higher\n"
    "- Prescribed by a cardiologist or lipid specialist\n")


def test_the_items_a_list_answer_left_out_are_quoted_after_it(make_services) -> None:  # type: ignore[no-untyped-def]
    """A list question answered with two of four cited criteria: the other two follow in
    the source's words, marked as quoted by the server, so the answer is the whole list;
    a question asking for one fact gets no such rest."""
    from app.answering.prompting import GenUnitAnswer, GenUnitSentence

    answers = make_services().answers
    p = Passage(id="c", text=CRITERIA, score=1.0, provenance=Provenance(
        doc_id="d", title="Repatha criteria", source_file="repatha.md", doc_type="coverage",
        unit_kind="list", section_path=["Repatha", "Criteria"], char_start=0,
        char_end=len(CRITERIA)))

    def answer(question: str) -> list[dict[str, object]]:
        draft = Draft(AskRequest(question=question), [p], None, {})
        draft.units = [split_passage(p, 0)]
        items = [u for u in draft.units[0] if u.kind == "item"]
        assert len(items) == 4
        draft.shown = [u.uid for u in draft.units[0]]
        said = [GenUnitSentence(text=items[0].reading(p), units=[items[0].uid]),
                GenUnitSentence(text=items[1].reading(p), units=[items[1].uid])]
        out = answers.complete_units(draft, GenUnitAnswer(abstain=False, reason="",
                                                          sentences=said))
        return [s.model_dump() for s in out.sentences]

    sentences = answer("List all the criteria for Repatha coverage.")
    rest = [s for s in sentences if s["quoted_as"] == "list_rest"]
    assert len(rest) == 1 and rest[0]["quoted_by_server"]
    assert "100 mg/dL" in rest[0]["text"] and "cardiologist" in rest[0]["text"]
    assert "90 days" not in rest[0]["text"]  # stated by the answer already
    assert rest[0]["status"] == "supported"
    one = answer("Does Repatha coverage require a cardiologist?")
    assert not any(s["quoted_as"] == "list_rest" for s in one)
