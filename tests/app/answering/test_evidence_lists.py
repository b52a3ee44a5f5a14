"""An evidence-only answer quotes a list item with its list: one bullet of "ALL of the
following" alone misstates the criterion."""

from __future__ import annotations

from app.answering.pipeline import MAX_LIST_EVIDENCE_UNITS, with_their_lists
from app.answering.units import split_passage
from retrieval.models import Passage, Provenance

CRITERIA = (
    "Additional Dextromethorphan/Bupropion (Auvelity) Criteria:\n\n"
    "- Must have an inadequate clinical response of at least 30 days with ALL of the "
    "following:\n"
    "   - ONE dopamine/norepinephrine reuptake inhibitor (DNRI)\n"
    "   - ONE selective norepinephrine reuptake inhibitor (SNRI)\n"
    "   - TWO selective serotonin reuptake inhibitors (SSRIs)\n\n"
    "Prescriptions from a psychiatrist are exempt.")


def _passage(text: str, index: int = 0) -> Passage:
    return Passage(id=f"p{index}", text=text, score=1.0, provenance=Provenance(
        doc_id="md:antidepressants", source_file="antidepressants.md", doc_type="formulary",
        char_start=0, char_end=len(text), title="Antidepressants",
        section_path=["Antidepressants", "Criteria"]))


def test_an_item_brings_its_list_and_the_sentence_introducing_it() -> None:
    passage = _passage(CRITERIA)
    units = [split_passage(passage, 0)]
    ssri = next(u for u in units[0] if "SSRIs" in u.reading(passage))
    quoted = [u.reading(p) for u, p in with_their_lists([(ssri, passage)], units)]
    assert quoted[0] == "Additional Dextromethorphan/Bupropion (Auvelity) Criteria:"
    assert [q.split("(")[0].strip("- ").split()[0] for q in quoted[1:]] == [
        "Must", "ONE", "ONE", "TWO"]
    # The sentence after the list is not part of it.
    assert not any("psychiatrist" in q for q in quoted)


def test_a_sentence_stays_alone_and_nothing_is_quoted_twice() -> None:
    passage = _passage(CRITERIA)
    units = [split_passage(passage, 0)]
    exempt = next(u for u in units[0] if "psychiatrist" in u.reading(passage))
    assert [u.uid for u, _ in with_their_lists([(exempt, passage)], units)] == [exempt.uid]
    items = [u for u in units[0] if u.kind == "item"]
    both = with_their_lists([(items[0], passage), (items[-1], passage)], units)
    assert len({u.uid for u, _ in both}) == len(both) == 5


def test_a_long_list_is_cut_at_the_evidence_limit() -> None:
    text = "Contraindications:\n" + "\n".join(f"- Condition number {i} of the list"
                                               for i in range(40))
    passage = _passage(text)
    units = [split_passage(passage, 0)]
    item = units[0][5]
    assert len(with_their_lists([(item, passage)], units)) == MAX_LIST_EVIDENCE_UNITS
