"""A sentence that restates a cited list but drops some of its items is partial, never
verified: tested on the label sentences where it was seen and on prose commas that are
not lists."""

from __future__ import annotations

from app.answering.citation_checks import verify_units
from app.answering.list_items import enumerations, left_out
from app.answering.models import CitationStatus
from app.answering.units import split_passage
from retrieval.models import Passage, Provenance

HALOPERIDOL = ("Cases of sudden death, QT-prolongation, and Torsades de pointes have been "
               "reported in patients receiving haloperidol.")
CYP3A4 = ("The concomitant use of higher doses of atorvastatin with certain drugs such as "
          "cyclosporine and strong CYP3A4 inhibitors (e.g., clarithromycin, itraconazole, "
          "and HIV protease inhibitors) increases the risk of myopathy/rhabdomyolysis.")


def test_lists_are_found_with_their_items() -> None:
    assert enumerations(HALOPERIDOL) == [[["sudden", "death"], ["qt-prolongation"],
                                          ["torsades", "de", "pointes"]]]
    assert [["clarithromycin"], ["itraconazole"], ["hiv", "protease", "inhibitors"]] in \
        enumerations(CYP3A4)
    # Commas of prose are not a list: an aside, a participle, a pair.
    assert enumerations("Atorvastatin, like other statins, occasionally causes myopathy, "
                        "defined as muscle aches or muscle weakness.") == []
    assert enumerations("Take it with food, and drink water.") == []


def test_a_sentence_dropping_a_listed_risk_leaves_it_out() -> None:
    said = ("Cases of sudden death and QT-prolongation have been reported in patients "
            "receiving haloperidol.")
    assert left_out(said, [HALOPERIDOL], "Cardiac risks of haloperidol?") == ["torsades de pointes"]
    # The whole list, or one item of it used in a claim of its own, drops nothing.
    assert left_out(HALOPERIDOL, [HALOPERIDOL]) == []
    assert left_out("QT-prolongation has been reported with haloperidol.", [HALOPERIDOL]) == []


def test_items_the_question_asked_about_may_be_kept_alone() -> None:
    said = ("Clarithromycin and itraconazole increase the risk of myopathy with higher doses "
            "of atorvastatin.")
    assert left_out(said, [CYP3A4], "Can atorvastatin be given with itraconazole?") == \
        ["hiv protease inhibitors"]
    assert left_out(said, [CYP3A4], "Atorvastatin with clarithromycin or itraconazole?") == []


def _passage(text: str) -> Passage:
    return Passage(id="p1", text=text, score=1.0, provenance=Provenance(
        doc_id="d1", source_file="drug-labels/fda-spl/no-title.xml", doc_type="label",
        char_start=0, char_end=len(text),
        title="Haloperidol", section_path=["5 WARNINGS", "Cardiovascular Effects"]))


def test_the_citation_is_partial_with_the_items_as_its_reason() -> None:
    passage = _passage(HALOPERIDOL)
    cited = [(u, passage) for u in split_passage(passage, 0)]
    dropped = verify_units("Cases of sudden death and QT-prolongation have been reported in "
                           "patients receiving haloperidol.", cited,
                           "Cardiac risks of haloperidol?")
    assert dropped.status is CitationStatus.partial
    assert any("leaves out what the cited text lists with it: torsades de pointes" in r
               for r in dropped.citations[0].reasons)
    whole = verify_units(HALOPERIDOL, cited, "Cardiac risks of haloperidol?")
    assert whole.status is CitationStatus.supported
