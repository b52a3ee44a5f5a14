"""Drug names in an answer sentence must be named by its cited evidence (pure functions,
no model): brand and generic names are the same drug, any other drug is not."""

from __future__ import annotations

from app.answering.citation_checks import missing_drugs, verify_sentence
from app.answering.models import CitationStatus
from retrieval.models import Passage


def _passage(text: str, title: str, section: tuple[str, ...] = ()) -> Passage:
    return Passage.model_validate({
        "id": "p", "text": text, "score": 1.0,
        "provenance": {"doc_id": "d", "title": title, "source_file": "f", "doc_type": "label",
                       "section_path": list(section), "char_start": 0, "char_end": len(text)},
    })


LIPITOR = _passage(
    "The recommended starting dose of LIPITOR is 10 or 20 mg once daily. Patients who "
    "require a large reduction in LDL-C (more than 45%) may be started at 40 mg once daily.",
    "LIPITOR (atorvastatin calcium) tablets", ("Dosage and Administration",),
)
FORMULARY = _passage(
    "| Drug | Status |\n| rosuvastatin | preferred |\n| simvastatin | preferred |\n"
    "| ezetimibe | non-preferred, prior authorization |",
    "Lipotropics", ("Preferred drug list",),
)
DOSE = "The recommended starting dose of LIPITOR is 10 or 20 mg once daily"


def test_missing_drugs_knows_brand_and_generic_names() -> None:
    assert missing_drugs("Atorvastatin is started at 10 mg.", "LIPITOR 10 mg tablets") == []
    assert missing_drugs("Crestor is started at 10 mg.", "rosuvastatin 10 mg") == []
    assert missing_drugs("Rosuvastatin is started at 10 mg.", "LIPITOR 10 mg") == ["Rosuvastatin"]
    assert missing_drugs("Wash hands before each visit.", "hand hygiene") == []


def test_generic_name_supported_by_a_brand_name_quote() -> None:
    s = verify_sentence(
        "The recommended starting dose of atorvastatin is 10 or 20 mg once daily.",
        [("P1", DOSE)], {"P1": LIPITOR},
    )
    assert s.status is CitationStatus.supported, s.citations[0].reasons


def test_sentence_naming_another_drug_than_its_evidence_is_unsupported() -> None:
    # Every other word, number, unit and frequency is in the quote: only the drug differs.
    s = verify_sentence(
        "The recommended starting dose of rosuvastatin is 10 or 20 mg once daily.",
        [("P1", DOSE)], {"P1": LIPITOR},
    )
    assert s.status is CitationStatus.unsupported
    assert any("drug not named by the cited evidence: Rosuvastatin" in r
               for r in s.citations[0].reasons)


def test_drug_named_by_the_title_counts_as_named() -> None:
    quote = "Patients who require a large reduction in LDL-C (more than 45%) may be started " \
            "at 40 mg once daily"
    s = verify_sentence(
        "Atorvastatin may be started at 40 mg once daily when LDL-C must fall by more than 45%.",
        [("P1", quote)], {"P1": LIPITOR},
    )
    assert s.status in (CitationStatus.supported, CitationStatus.partial), s.citations[0].reasons
    assert not any("drug not named" in r for r in s.citations[0].reasons)


def test_drugs_of_one_sentence_may_come_from_different_citations() -> None:
    s = verify_sentence(
        "Rosuvastatin and simvastatin are preferred.",
        [("P1", "| rosuvastatin | preferred |"), ("P1", "| simvastatin | preferred |")],
        {"P1": FORMULARY},
    )
    # Each quote covers half the sentence (partial); together they name both drugs.
    assert s.status is CitationStatus.partial, [c.reasons for c in s.citations]
    assert not any("drug not named" in r for c in s.citations for r in c.reasons)
    s = verify_sentence(
        "Rosuvastatin and pravastatin are preferred.",
        [("P1", "| rosuvastatin | preferred |")], {"P1": FORMULARY},
    )
    assert s.status is CitationStatus.unsupported
    assert any("Pravastatin" in r for c in s.citations for r in c.reasons)


def test_a_drug_class_is_not_a_missing_drug() -> None:
    # "statin" is a class in the dictionary; which drugs belong to it is not listed, so the
    # class word is left to the content-word coverage rather than failing the check.
    assert missing_drugs("Simvastatin is a preferred statin.", "| simvastatin | preferred |") == []
    assert missing_drugs("Atorvastatin is a preferred statin.", "| simvastatin | preferred |") \
        == ["Atorvastatin"]


def test_criteria_written_for_a_flag_name_the_drugs_they_govern() -> None:
    """A payer page's "Criteria > Clinical PA" names no drug: its rows flagged PA say which
    it governs (ingest's `applies_to`). Seen off_topic with the real model: "What would
    Ohio Medicaid require before approving Repatha for her?" answered from exactly those
    criteria, rejected because the unit never says "Repatha"."""
    from app.answering.citation_checks import verify_units
    from app.answering.pipeline import evidence_from
    from app.answering.relevance import addresses, question_focus
    from app.answering.units import split_passage

    text = ("- Must have had an inadequate clinical response of at least 90 days AND unable "
            "to reach goal LDL-C despite treatment with maximally tolerated dose of "
            "highpotency statin and ezetimibe")

    def criteria(applies_to: list[str]) -> Passage:
        p = _passage(text, "Lipotropics", ("Lipotropics", "Criteria", "Clinical PA"))
        return p.model_copy(update={"provenance": p.provenance.model_copy(
            update={"applies_to": applies_to, "payer": "Ohio Medicaid"})})

    focus = question_focus("What does Ohio Medicaid require before approving Repatha?")
    claim = ("Ohio Medicaid requires an inadequate clinical response of at least 90 days "
             "to a highpotency statin and ezetimibe before approving Repatha.")
    for governs, ok in ((["alirocumab", "evolocumab", "inclisiran"], True),
                        (["icosapent ethyl"], False), ([], False)):
        passage = criteria(governs)
        units = [(u, passage) for u in split_passage(passage, 1)]
        problems = addresses(focus, evidence_from(units, [passage]))
        assert (problems == []) is ok, (governs, problems)
        reasons = [r for c in verify_units(claim, units).citations for r in c.reasons]
        unnamed = [r for r in reasons if r.startswith("drug not named")]
        assert (unnamed == []) is ok, (governs, reasons)
