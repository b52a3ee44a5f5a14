"""The source's continuation of a cited statement: quoted when it is on the question,
never a table's next row, never what the answer already says."""

from __future__ import annotations

from app.answering.continuation import MAX_CONTINUATIONS, continuing_units
from app.answering.units import Unit, split_passage
from retrieval.models import Passage, Provenance

HBV = ("For patients who are carriers of HBV and require treatment with TNF blockers, "
       "closely monitor such patients for clinical and laboratory signs of active HBV "
       "infection throughout therapy and for several months following termination of "
       "therapy. In patients who develop HBV reactivation, stop HUMIRA and initiate "
       "effective anti-viral therapy with appropriate supportive treatment. Exercise "
       "caution when resuming HUMIRA therapy after HBV treatment.")
QUESTION = ("Chronic hepatitis B (HBV) carrier starting Humira - what monitoring and what if "
            "HBV reactivates?")


def _passage(text: str, path: list[str]) -> Passage:
    return Passage(id="p1", text=text, score=1.0, provenance=Provenance(
        doc_id="spl:humira", source_file="drug-labels/fda-spl/humira.xml", doc_type="label",
        char_start=0, char_end=len(text), title="HUMIRA (adalimumab) injection",
        section_path=path, section_code="43685-7"))


def _units(p: Passage) -> list[list[Unit]]:
    return [split_passage(p, 0)]


def _everything(_: list[tuple[Unit, Passage]]) -> bool:
    return True


def test_the_next_sentence_on_the_question_is_the_sources_continuation() -> None:
    p = _passage(HBV, ["5 WARNINGS AND PRECAUTIONS", "5.4 Hepatitis B Virus Reactivation"])
    units = _units(p)
    first = units[0][0].uid
    found = continuing_units(QUESTION, units, [p], [first], "Monitor HBV carriers during "
                             "and several months after therapy.", _everything)
    assert [(a, u.uid) for a, u, _ in found][:1] == [(first, units[0][1].uid)]
    assert "anti-viral therapy" in found[0][1].reading(p)
    assert len(found) <= MAX_CONTINUATIONS


def test_no_continuation_when_the_answer_states_it_or_the_relevance_test_fails() -> None:
    p = _passage(HBV, ["5.4 Hepatitis B Virus Reactivation"])
    units = _units(p)
    first, second = units[0][0].uid, units[0][1].uid
    said = units[0][1].reading(p)
    found = continuing_units(QUESTION, units, [p], [first], said, _everything)
    assert second not in [u.uid for _, u, _ in found]
    assert continuing_units(QUESTION, units, [p], [first], "", lambda _: False) == []
    # Already cited: not quoted again.
    assert second not in [u.uid for _, u, _ in
                          continuing_units(QUESTION, units, [p], [first, second], "",
                                           _everything)]


def test_a_tables_next_row_is_another_record_not_a_continuation() -> None:
    table = ("| Preferred | Quantity |\n| --- | --- |\n| Humira Pen (PA) | 2 per 28 days |\n"
             "| Hadlima Pushtouch (PA) | 2 per 28 days |")
    p = _passage(table, ["Systemic Inflammatory Disease", "Formulary"])
    units = _units(p)
    rows = [u for u in units[0] if u.kind == "row"]
    assert rows
    assert continuing_units("Is Humira Pen preferred and what quantity?", units, [p],
                            [rows[0].uid], "", _everything) == []


def test_a_neighbour_off_the_questions_words_is_left_out() -> None:
    p = _passage(HBV, ["5.4 Hepatitis B Virus Reactivation"])
    units = _units(p)
    assert continuing_units("What storage temperature?", units, [p], [units[0][0].uid], "",
                            _everything) == []


HIGHLIGHT = ("- Hepatitis B virus reactivation: Monitor HBV carriers during and several months "
             "after therapy. If reactivation occurs, stop HUMIRA and begin anti-viral therapy "
             "(5.4)\n- Anaphylaxis or serious allergic reactions may occur (5.3)")


def test_the_rest_of_a_cited_unit_after_what_the_answer_states_is_quoted() -> None:
    from app.answering.continuation import unsaid_rest

    p = _passage(HIGHLIGHT, ["5 WARNINGS AND PRECAUTIONS", "Highlights"])
    units = _units(p)
    item = units[0][0]
    assert item.kind == "item"
    question = "Chronic hepatitis B carrier starting adalimumab - what monitoring is required?"
    (found,) = unsaid_rest(question, units, [p], [item.uid],
                           "Monitor HBV carriers during and several months after therapy.")
    assert found[0] == item.uid and found[1].startswith("If reactivation occurs")
    # Stated already, or nothing stated of the unit: nothing to add.
    assert unsaid_rest(question, units, [p], [item.uid], item.reading(p)) == []
    assert unsaid_rest(question, units, [p], [item.uid], "Something else entirely.") == []
