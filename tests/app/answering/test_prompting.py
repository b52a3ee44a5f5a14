"""The prompt's passage headers (app/answering/prompting.py): where units come from, a
list's date only where the date is part of the answer, and a copied header recognised."""

from __future__ import annotations

from app.answering.prompting import passage_header, without_header
from retrieval.models import Passage, Provenance


def _passage(doc_type: str, payer: str | None = None) -> Passage:
    return Passage(id="p", text="x", score=1.0, provenance=Provenance(
        doc_id="d", title="LIPITOR (atorvastatin calcium) tablets", source_file="f",
        doc_type=doc_type, section_path=["2 DOSAGE AND ADMINISTRATION", "2.6 Cyclosporine"],
        char_start=0, char_end=1, effective_date="2014-01-13", payer=payer))


def test_a_labels_version_date_is_not_in_its_header_a_formularys_is() -> None:
    assert passage_header(_passage("label")) == (
        "LIPITOR (atorvastatin calcium) tablets | 2 DOSAGE AND ADMINISTRATION > "
        "2.6 Cyclosporine")
    assert passage_header(_passage("formulary", "Ohio Medicaid")).endswith(
        " | payer: Ohio Medicaid | effective 2014-01-13")


def test_a_copied_header_is_removed_and_nothing_else() -> None:
    label = _passage("label")
    said = "In patients taking cyclosporine, avoid LIPITOR."
    assert without_header(f"{passage_header(label)} {said}", [label]) == said
    assert without_header(said, [label]) == said
    # Copied with its spacing normalised: the header's double space became one.
    spaced = label.model_copy(update={"provenance": label.provenance.model_copy(update={
        "section_path": ["2  DOSAGE AND ADMINISTRATION", "2.6 Cyclosporine"]})})
    assert without_header("LIPITOR (atorvastatin calcium) tablets | 2 DOSAGE AND "
                          f"ADMINISTRATION > 2.6 Cyclosporine {said}", [spaced]) == said
    # A header written as a sentence of its own is no sentence.
    assert without_header(passage_header(label), [label]) == ""
    assert without_header(passage_header(label) + ".", [label]) == ""


def test_the_example_is_an_exchange_of_its_own() -> None:
    """Inside the instructions, the example came back word for word."""
    import json
    import re

    from app.answering.prompting import (
        EXAMPLE_TURNS,
        UNIT_SYSTEM_PROMPT,
        GenUnitAnswer,
        build_unit_messages,
    )

    assert "Examplex is 5 mg" not in UNIT_SYSTEM_PROMPT
    messages = build_unit_messages("What is the dose of atorvastatin?", [], [], set())
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"].endswith("Question: What is the dose of atorvastatin?")
    asked, said = (m["content"] for m in EXAMPLE_TURNS)
    answer = GenUnitAnswer.model_validate(json.loads(said))
    shown = set(re.findall(r"^\[(P\d+\.\d+)\]", asked, re.M))
    cited = {u for s in answer.sentences for u in s.units}
    assert cited and cited <= shown
