"""A warning the retrieved label states for the condition a question asks about is never
left out of an answer: found from the label's own structure (its warnings section) and
the question's drug and condition."""

from __future__ import annotations

from app.answering.condition_warnings import omitted_warning
from app.answering.units import Unit, split_passage
from retrieval.models import Passage, Provenance

QUESTION = "Cardiac risks of haloperidol in a patient with hypokalemia?"
SUDDEN_DEATH = ("Cases of sudden death have been reported in association with the "
                "administration of haloperidol. The nature of the evidence makes it "
                "impossible to determine definitively what role, if any, haloperidol played "
                "in the outcome of the reported cases.")
CARDIOVASCULAR = ("Cases of sudden death, QT-prolongation, and Torsades de pointes have been "
                  "reported in patients receiving haloperidol. Higher than recommended doses "
                  "of any formulation of haloperidol appear to be associated with a higher "
                  "risk of QT-prolongation and Torsades de pointes. Although cases have been "
                  "reported even in the absence of predisposing factors, particular caution "
                  "is advised in treating patients with other QT-prolonging conditions "
                  "(including electrolyte imbalance [particularly hypokalemia and "
                  "hypomagnesemia], drugs known to prolong QT, and familial long "
                  "QT-syndrome).")


def _passage(pid: str, text: str, path: list[str], code: str | None,
             title: str = "HALOPERIDOL tablets", doc_type: str = "label") -> Passage:
    return Passage(id=pid, text=text, score=1.0, provenance=Provenance(
        doc_id="spl:haloperidol", source_file="drug-labels/fda-spl/haloperidol.xml",
        doc_type=doc_type, char_start=0, char_end=len(text), title=title, section_path=path,
        section_code=code))


def _labelled(*passages: Passage) -> tuple[list[Passage], list[list[Unit]]]:
    return list(passages), [split_passage(p, i) for i, p in enumerate(passages)]


def test_the_warning_for_the_asked_condition_is_added_with_the_risk_it_qualifies() -> None:
    passages, units = _labelled(
        _passage("a", SUDDEN_DEATH, ["ADVERSE REACTIONS", "Cardiovascular Effects"], "34084-4"),
        _passage("w", CARDIOVASCULAR, ["WARNINGS", "Cardiovascular Effects"], "34071-1"))
    found = omitted_warning(QUESTION, passages, units, {"P1.1", "P1.2"})
    readings = [u.reading(p) for u, p in found]
    # The sentence naming hypokalemia refers back ("other QT-prolonging conditions") to the
    # risk stated just before it: both, in order.
    assert len(readings) == 2
    assert readings[0].startswith("Higher than recommended doses")
    assert "Torsades de pointes" in readings[0] and "hypokalemia" in readings[1]
    # Cited already: nothing to add.
    cited = {found[1][0].uid}
    assert omitted_warning(QUESTION, passages, units, cited) == []


def test_only_a_risk_question_about_the_drugs_label_and_the_condition_counts() -> None:
    warning = _passage("w", CARDIOVASCULAR, ["WARNINGS", "Cardiovascular Effects"], "34071-1")
    passages, units = _labelled(warning)
    # Not a question about risks: a dose for a patient with hypokalemia is answered by the
    # dose, not by this warning.
    assert omitted_warning("Haloperidol dose in a patient with hypokalemia?", passages, units,
                           set()) == []
    # Another condition, another drug, no condition: nothing.
    assert omitted_warning("Cardiac risks of haloperidol in a patient with asthma?", passages,
                           units, set()) == []
    assert omitted_warning("Cardiac risks of olanzapine with hypokalemia?", passages, units,
                           set()) == []
    assert omitted_warning("Cardiac risks of haloperidol?", passages, units, set()) == []
    # A guideline's prose is not the label's warning.
    prose = _passage("g", CARDIOVASCULAR, ["Recommendations"], None, doc_type="guideline")
    passages, units = _labelled(prose)
    assert omitted_warning(QUESTION, passages, units, set()) == []
