"""The citation verifier, on real passages retrieved from the real index."""

from __future__ import annotations

import pytest

from app.answering.citation_checks import align_quote, missing_quantities, verify_sentence
from app.answering.models import CitationStatus
from retrieval.models import Passage, Provenance
from retrieval.search import Retriever

DOSE = "The recommended starting dose of LIPITOR is 10 or 20 mg once daily"


@pytest.fixture(scope="module")
def dose_passage(services) -> Passage:  # type: ignore[no-untyped-def]
    retriever: Retriever = services.retriever
    hits = retriever.search(
        "recommended starting dose of atorvastatin", access_groups=["public"], limit=5
    )
    found = [p for p in hits if DOSE in p.text]
    assert found, [p.text[:80] for p in hits]
    return found[0]


def test_exact_quote_and_dose_is_supported(dose_passage: Passage) -> None:
    s = verify_sentence(
        "The recommended starting dose of atorvastatin (LIPITOR) is 10 or 20 mg once daily.",
        [("P1", DOSE)], {"P1": dose_passage},
    )
    assert s.status is CitationStatus.supported
    c = s.citations[0]
    assert dose_passage.text[c.span_start : c.span_end] == DOSE


def test_wrong_dose_is_unsupported(dose_passage: Passage) -> None:
    s = verify_sentence(
        "The recommended starting dose of LIPITOR is 40 mg twice daily.",
        [("P1", DOSE)], {"P1": dose_passage},
    )
    assert s.status is CitationStatus.unsupported
    assert any("40 mg" in r for r in s.citations[0].reasons)


def test_dose_written_without_space_still_matches(dose_passage: Passage) -> None:
    s = verify_sentence("LIPITOR is started at 10mg or 20mg once daily.", [("P1", DOSE)],
                        {"P1": dose_passage})
    assert s.status in (CitationStatus.supported, CitationStatus.partial)


def test_fabricated_quote_is_invalid(dose_passage: Passage) -> None:
    s = verify_sentence(
        "LIPITOR should be taken with grapefruit juice.",
        [("P1", "LIPITOR should always be taken with a glass of grapefruit juice")],
        {"P1": dose_passage},
    )
    assert s.status is CitationStatus.invalid


def test_citation_to_unretrieved_passage_is_invalid(dose_passage: Passage) -> None:
    s = verify_sentence("The starting dose is 10 or 20 mg.", [("P9", DOSE)], {"P1": dose_passage})
    assert s.status is CitationStatus.invalid


def test_negation_flip_is_unsupported() -> None:
    passage = Passage.model_validate({
        "id": "x", "text": "Dosage adjustment in patients with renal dysfunction is not necessary.",
        "score": 1.0,
        "provenance": {"doc_id": "d", "title": "LIPITOR", "source_file": "f", "doc_type": "label",
                       "char_start": 0, "char_end": 70},
    })
    s = verify_sentence(
        "Dosage adjustment in patients with renal dysfunction is necessary.",
        [("P1", "Dosage adjustment in patients with renal dysfunction is necessary")],
        {"P1": passage},
    )
    assert s.status in (CitationStatus.unsupported, CitationStatus.invalid)


def test_quote_alignment_is_fuzzy_but_bounded() -> None:
    text = "Patients who require a large reduction in LDL-C (more than 45%) may start at 40 mg."
    assert align_quote("patients who require a large reduction in LDL-C (more than 45 %)", text)
    assert align_quote("patients who need a small increase in HDL-C", text) is None


def test_numbers_units_and_dates_are_normalised() -> None:
    assert missing_quantities("Take 2.5 mg on 2024-01-05.", "take 2.5mg from January 5, 2024") == []
    assert missing_quantities("Take 25 mg.", "take 2.5 mg") == ["25 mg"]
    table_row = "| Atorvastatin | 102 | 102 |"
    assert missing_quantities("Limit 102 tablets per 102 days.", table_row) == []


def _record(pid: str, text: str) -> Passage:
    return Passage(id=pid, text=text, score=1.0, provenance=Provenance(
        doc_id="oa", title="Oral Anticoagulants",
        source_file="formularies/ohio-medicaid-updl/current-2024/oral_anticoagulants.md",
        doc_type="formulary", unit_kind="row", payer="Ohio Medicaid",
        section_path=["Oral Anticoagulants", "Formulary", "Preferred"],
        char_start=0, char_end=len(text)))


def test_a_formulary_records_units_support_each_other_but_an_excluded_strength_does_not() -> None:
    """Seen with the real 1.5B model: "The quantity limit on rivaroxaban 15 mg tablets for
    Ohio Medicaid is 204 per 102 days." cited the record's "Quantity limit: 204 per 102
    days." and was rejected ("not in the cited text: 15 mg", "rivaroxaban"), though the
    same record's row names "Rivaroxaban Tab 15 MG": a record is one row of one list."""
    from app.answering.citation_checks import verify_units
    from app.answering.units import split_passage

    header = "| Preferred | Generic Name | Quantity | Time (Days) |\n| --- | --- | --- | --- |\n"
    fifteen = _record("r15", (
        "Ohio Medicaid formulary: Oral Anticoagulants › Formulary\nXarelto Tab: Preferred.\n"
        "Flags: QL (quantity limit).\nQuantity limit: 204 per 102 days.\n"
        "Effective 2024-01-01.\n" + header
        + "| Xarelto Tab (QL) | Rivaroxaban Tab 15 MG | 204 | 102 |"))
    others = _record("rx", (
        "Ohio Medicaid formulary: Oral Anticoagulants › Formulary\nXarelto Tab: Preferred.\n"
        "Flags: QL (quantity limit).\nQuantity limit: 102 per 102 days.\n"
        "Effective 2024-01-01.\n" + header
        + "| Xarelto Tab (QL) | Rivaroxaban Tab (all strengths excl 15 MG) | 102 | 102 |"))

    def limit_unit(p: Passage, index: int):  # type: ignore[no-untyped-def]
        return next(u for u in split_passage(p, index)
                    if u.reading(p).startswith("Quantity limit"))

    right = "The quantity limit on rivaroxaban 15 mg tablets for Ohio Medicaid is 204 per 102 days."
    ok = verify_units(right, [(limit_unit(fifteen, 0), fifteen)])
    assert ok.status is CitationStatus.supported, ok.citations[0].reasons
    # And it addresses the question: the record names the drug asked about (the real
    # run then ended "does not name Rivaroxaban").
    from app.answering.pipeline import evidence_from
    from app.answering.relevance import addresses, question_focus

    question = "Quantity limit on rivaroxaban 15 mg tablets for Ohio Medicaid?"
    assert addresses(question_focus(question, None),
                     evidence_from([(limit_unit(fifteen, 0), fifteen)])) == []
    # The other record's limit, claimed for the strength that record excludes.
    wrong = "The quantity limit on rivaroxaban 15 mg tablets for Ohio Medicaid is 102 per 102 days."
    bad = verify_units(wrong, [(limit_unit(others, 1), others)])
    assert bad.status is CitationStatus.unsupported
    assert any("15 mg" in r for r in bad.citations[0].reasons)
    # Prose is not a record: one sentence does not lend its words to another.
    prose = _record("s", "Xarelto is an anticoagulant. The usual dose is 15 mg twice daily.")
    prose.provenance.unit_kind = "section"
    first = split_passage(prose, 2)[0]
    assert verify_units("Xarelto 15 mg is an anticoagulant.",
                        [(first, prose)]).status is CitationStatus.unsupported


def test_a_restriction_the_cited_record_does_not_state_is_unsupported() -> None:
    """Seen verified with the real 1.5B model: "Humira is on the preferred list with a
    quantity limit (QL)" citing "Humira: Preferred, PA (prior authorization required)." —
    "quantity, limit" were only uncovered words. A restriction is a fact of the row."""
    from app.answering.citation_checks import missing_restrictions, verify_units
    from app.answering.units import split_passage

    humira = _record("h", (
        "Ohio Medicaid formulary: Preferred Drug List › Immunomodulator Agents\n"
        "Humira: Preferred, PA (prior authorization required).\nEffective 2024-01-01.\n"
        "| Preferred | Non-Preferred |\n| --- | --- |\n| Humira (PA) | Cosentyx |"))
    row = next(u for u in split_passage(humira, 0) if u.reading(humira).startswith("Humira"))
    wrong = verify_units("Humira is on the preferred list with a quantity limit (QL).",
                         [(row, humira)])
    assert wrong.status is CitationStatus.unsupported
    assert any("quantity limit" in r for r in wrong.citations[0].reasons)
    for right in ("Humira is preferred and requires prior authorization.",
                  "Humira is on the preferred list with a PA."):
        ok = verify_units(right, [(row, humira)])
        assert ok.status is CitationStatus.supported, (right, ok.citations[0].reasons)
    # A QHP record names every flag; "no" does not state one.
    qhp = "Atorvastatin: plan Gold (P1), tier PREFERRED, prior authorization: no, " \
          "step therapy: yes, quantity limit: not stated."
    assert missing_restrictions("Atorvastatin needs prior authorization.", qhp) == [
        "prior authorization"]
    assert missing_restrictions("Atorvastatin is subject to step therapy.", qhp) == []
    assert missing_restrictions("It has a quantity limit.", qhp) == ["quantity limit"]
    # Restating the record's "prior authorization: no" claims no restriction either.
    assert missing_restrictions("Atorvastatin: plan Gold (P1), prior authorization: no.",
                                qhp) == []
    # An Ohio QL table states a limit by its quantity column; a claimed absence is left
    # to the negation check.
    assert missing_restrictions("Lovastatin has a quantity limit of 204 per 102 days.",
                                "Preferred: Lovastatin | Quantity: 204 | Time (Days): 102") == []
    assert missing_restrictions("Cholestyramine does not require prior authorization.",
                                "Preferred: Cholestyramine Regular, Light") == []


def test_a_status_named_as_a_list_or_a_status_is_claimed() -> None:
    """Seen verified in a fresh clone: "Humira is on the preferred list with a
    non-preferred status." citing Humira's Preferred row and another category's row."""
    from app.answering.citation_checks import claimed_statuses, status_flip

    row = "Humira: Preferred, PA (prior authorization required). | Preferred: Humira (PA)"
    other = "Non-Preferred: Serostim"
    said = "Humira is on the preferred list with a non-preferred status."
    assert claimed_statuses(said) == {"preferred", "non-preferred"}
    assert status_flip(said, row + " " + other) is not None
    assert status_flip("Humira is on the preferred list.", row) is None
    assert status_flip("Humira has non-preferred status.", row) is not None


def test_a_pointer_to_the_full_text_states_nothing() -> None:
    """Shown as the evidence for "Which kinds of serious infections does the Humira boxed
    warning name?": the highlights' pointer, not a warning."""
    from app.answering.citation_checks import vacuous

    assert vacuous("See full prescribing information for complete boxed warning.")
    assert vacuous("See Section 5.1 for details.")
    assert not vacuous("Patients treated with HUMIRA are at increased risk for developing "
                       "serious infections.")
    assert not vacuous("Seek medical attention if symptoms of infection appear.")


def test_a_heading_or_a_pointer_to_a_box_below_states_nothing() -> None:
    """Seen verified as sentences of their own: a formulary record's heading, a criteria
    link's text, and "use these criteria … (see box below)" without the criteria."""
    from app.answering.citation_checks import vacuous

    assert vacuous("Ohio Medicaid formulary: Preferred Drug List › Infectious Disease "
                   "Agents › Antibiotics - Inhaled")
    assert vacuous("Link to Criteria: Endocrine Agents: Growth Hormone")
    assert vacuous("CDC recommends that health care providers use these criteria to assess "
                   "pregnancy status in a woman who is about to start using contraceptives "
                   "(see box below).")
    # The record's own line after its heading states a status; a lookup's sentence names
    # its list in parentheses.
    assert not vacuous("Ohio Medicaid formulary: Lipotropics › Formulary Colesevelam: "
                       "Non-Preferred.")
    assert not vacuous("Colesevelam is Non-Preferred on the Ohio Medicaid formulary "
                       "(Lipotropics › Formulary), effective 2024-01-05.")
    assert not vacuous("Doses above 20 mg are shown in Table 2 of the label for children.")
    # A list item copied with its joining "; or" still states its item; a short piece
    # broken off does not.
    assert not vacuous("Are poor surgical risks for a valvuloplasty procedure; or")
    assert vacuous("The drug is used for pain and")


def test_a_warning_about_the_liver_is_no_section_for_hepatic_patients() -> None:
    """"5.2 Liver Dysfunction" warns everyone (its jaundice-and-restart sentences were
    kept out of the prompt for "… turns up jaundiced … Stop it?"); "8.6 Hepatic
    Impairment" is about those patients."""
    from app.answering.citation_checks import section_populations

    def under(*path: str) -> Passage:
        return Passage(id="x", text="t", score=1.0, provenance=Provenance(
            doc_id="d", title="LIPITOR", source_file="l.xml", doc_type="label",
            section_path=list(path), char_start=0, char_end=1))

    assert section_populations(under("5 WARNINGS AND PRECAUTIONS", "5.2 Liver Dysfunction")) \
        == set()
    assert section_populations(under("8 USE IN SPECIFIC POPULATIONS", "8.6 Hepatic Impairment")) \
        == {"hepatic"}
    assert section_populations(under("2.5 Dosage in Renal Insufficiency")) == {"renal"}
