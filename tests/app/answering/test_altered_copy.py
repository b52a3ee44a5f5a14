"""A sentence copied from a cited unit with one of its words swapped states what the
unit does not (app/answering/altered_copy.py), whatever the coverage, and whatever
another cited unit holds."""

from __future__ import annotations

from app.answering.altered_copy import swapped_words
from app.answering.citation_checks import verify_units
from app.answering.models import CitationStatus
from app.answering.units import split_passage
from retrieval.models import Passage, Provenance

NAION = ("Sudden vision loss in one or both eyes can be a sign of a serious eye problem "
         "called non-arteritic anterior ischemic optic neuropathy (NAION).")
HEARING = "Sudden decrease or loss of hearing has been reported, sometimes with tinnitus."
DOSE = ("The recommended dose of HUMIRA for adult patients with rheumatoid arthritis is "
        "40 mg every other week.")


def test_a_swapped_content_word_is_found_with_what_it_replaced() -> None:
    said = NAION.replace("vision", "hearing")
    assert swapped_words(said, NAION) == [("vision", "hearing")]
    swapped = DOSE.replace("rheumatoid arthritis", "hidradenitis suppurativa")
    assert swapped_words(swapped, DOSE) == [("rheumatoid arthritis",
                                             "hidradenitis suppurativa")]


def test_faithful_restatements_are_not_swaps() -> None:
    # Shortened, brand for generic, "adults" for "adult patients", a pronoun resolved by
    # the heading: all say what the unit says.
    assert swapped_words("Sudden vision loss in one or both eyes can be a sign of NAION.",
                         NAION) == []
    assert swapped_words(DOSE.replace("HUMIRA", "adalimumab").replace(
        "adult patients", "adults"), DOSE, "HUMIRA (adalimumab) injection") == []
    assert swapped_words(
        "LIPITOR should be temporarily withheld in patients with an acute serious condition.",
        "It should be temporarily withheld in any patient with an acute, serious condition",
        "LIPITOR 5.1 Myopathy") == []
    # A sentence of its own, sharing a few words with the unit, is not judged as a copy.
    assert swapped_words("Hearing loss needs prompt medical attention.", NAION) == []


def _passage(text: str) -> Passage:
    return Passage(id="v", text=text, score=1.0, provenance=Provenance(
        doc_id="d", title="VIAGRA (sildenafil citrate) tablets", source_file="viagra.xml",
        doc_type="label", section_path=["17 PATIENT COUNSELING INFORMATION"],
        char_start=0, char_end=len(text)))


def test_a_swap_is_unsupported_even_when_another_cited_unit_holds_the_word() -> None:
    """Seen verified on held-out questions: "Sudden hearing loss in one or both eyes …
    NAION", citing the vision-loss sentence and the hearing-loss one: together they
    cover every word."""
    p = _passage(NAION + " " + HEARING)
    units = split_passage(p, 0)
    assert len(units) == 2
    said = NAION.replace("vision", "hearing")
    checked = verify_units(said, [(u, p) for u in units])
    assert checked.status is CitationStatus.unsupported
    assert any("'hearing' where it says 'vision'" in r for r in checked.citations[0].reasons)
    # The faithful sentence, citing the same units, is supported.
    assert verify_units(NAION, [(u, p) for u in units]).status is CitationStatus.supported


def test_how_a_statement_is_put_is_no_swap() -> None:
    """Seen withheld in the release check: the payer's criterion restated as what the
    payer requires."""
    unit = ("Must provide documentation of baseline labs and adherence to 90 days of "
            "prescribed lipid lowering medications")
    said = ("Ohio Medicaid requires documentation of baseline labs and adherence to 90 days "
            "of prescribed lipid lowering medications.")
    assert swapped_words(said, unit, "Ohio Medicaid UPDL criteria PCSK9 Inhibitors") == []
    # The criterion's content changed is still a swap.
    assert swapped_words(said.replace("lipid lowering", "blood pressure"), unit) != []
