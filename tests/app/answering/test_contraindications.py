"""A contraindication the retrieved sources state for the population a question asks
about is never left out of an answer: the omission is found from the label's own
structure (its Contraindications section) and the question's population and drug."""

from __future__ import annotations

from app.answering.contraindications import omitted_contraindication
from app.answering.units import Unit, split_passage
from retrieval.models import Passage, Provenance

QUESTION = "Woman trying to conceive asks whether she can keep taking atorvastatin."
COUNSELLING = ("Women of childbearing age should be advised to use an effective method of "
               "birth control to prevent pregnancy while using LIPITOR. Discuss future "
               "pregnancy plans with your patients.")
PREGNANCY = ("Women who are pregnant or may become pregnant. LIPITOR may cause fetal harm "
             "when administered to a pregnant woman. Serum cholesterol and triglycerides "
             "increase during normal pregnancy.")
LIVER = ("Active liver disease, which may include unexplained persistent elevations in "
         "hepatic transaminase levels. Hypersensitivity to any component of this medication.")


def _passage(pid: str, text: str, path: list[str], code: str | None,
             title: str = "LIPITOR (atorvastatin calcium) tablets") -> Passage:
    return Passage(id=pid, text=text, score=1.0, provenance=Provenance(
        doc_id="spl:lipitor", source_file="drug-labels/fda-spl/lipitor.xml", doc_type="label",
        char_start=0, char_end=len(text), title=title, section_path=path, section_code=code))


def _labelled(*passages: Passage) -> tuple[list[Passage], list[list[Unit]]]:
    return list(passages), [split_passage(p, i) for i, p in enumerate(passages)]


def test_an_answer_citing_no_contraindication_gets_the_one_for_the_asked_population() -> None:
    passages, units = _labelled(
        _passage("c", COUNSELLING, ["17 PATIENT COUNSELING INFORMATION", "17.3 Pregnancy"],
                 "34076-0"),
        _passage("p", PREGNANCY, ["4 CONTRAINDICATIONS", "4.3 Pregnancy"], "42228-7"))
    found = omitted_contraindication(QUESTION, passages, units, {"P1.1", "P1.2"})
    # The section's units that name the population, at most two: not its third sentence
    # about cholesterol in normal pregnancy ("pregnancy" is there, but two are enough).
    assert [u.reading(p) for u, p in found] == [
        "Women who are pregnant or may become pregnant.",
        "LIPITOR may cause fetal harm when administered to a pregnant woman."]
    # Cited already, both: nothing to add; one of them: the other.
    assert omitted_contraindication(QUESTION, passages, units, {"P2.1", "P2.2"}) == []
    assert [u.uid for u, _ in omitted_contraindication(QUESTION, passages, units,
                                                       {"P2.2"})] == ["P2.1"]


def test_only_the_asked_drugs_label_and_the_asked_population_count() -> None:
    other = _passage("o", PREGNANCY.replace("LIPITOR", "ZOCOR"), ["4 CONTRAINDICATIONS"],
                     "34070-3", title="ZOCOR (simvastatin) tablets")
    passages, units = _labelled(other)
    assert omitted_contraindication(QUESTION, passages, units, set()) == []
    liver = _passage("l", LIVER, ["4 CONTRAINDICATIONS"], "34070-3")
    passages, units = _labelled(liver)
    # A pregnancy question: the liver contraindication is not the one it asks about.
    assert omitted_contraindication(QUESTION, passages, units, set()) == []
    # A question naming no population, or no drug, asks for no contraindication.
    assert omitted_contraindication("What is the starting dose of atorvastatin?", passages,
                                    units, set()) == []
    hepatic = "Can atorvastatin be started in a patient with liver disease?"
    assert [u.reading(p) for u, p in omitted_contraindication(hepatic, passages, units, set())
            ] == [LIVER.split(". ")[0] + "."]
    assert omitted_contraindication("Can she take it while pregnant?", passages, units,
                                    set()) == []
