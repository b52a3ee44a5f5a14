"""A drug's own criteria are part of an answer that cites the criteria its status or flag
carries.

A payer page writes criteria once per status or flag ("Criteria > Non-Preferred": what
every non-preferred drug needs) and then, for some drugs, criteria of their own
("Criteria > Lovastatin ER (Altoprev), Pitavastatin (Livalo), Fluvastatin (Lescol)": "at
least 30 days with two preferred drugs in the same drug class"). The status criteria
govern the drug (ingest's `applies_to`), so an answer citing only them is supported and
on the question, yet it leaves out what this drug alone needs (seen verified with the
real model: "Is Livalo preferred for Ohio Medicaid, and what is needed to get it?"
answered with the non-preferred criteria alone). When such a section was retrieved and
the answer does not state it, its units are quoted verbatim as a sentence of their own.
Citing is not stating: the model cited the drug's own "two preferred drugs" bullet for
"Livalo is non-preferred" and wrote the status criteria alone (seen verified).
"""

from __future__ import annotations

import re

from app.answering.citation_checks import coverage
from app.answering.relevance import QuestionFocus
from app.answering.units import Unit
from ingest.chunking import under_criteria
from retrieval.drugs import DrugMention, mentioned_in
from retrieval.models import Passage

# Units quoted at most: a drug's own criteria are a few bullets.
MAX_UNITS = 3
# The line that restates the heading ("Additional Colesevelam (Welchol) Criteria"): it
# states no criterion.
TITLE_LINE = re.compile(r"\bcriteria\s*:?\s*$", re.I)
# A criterion is stated when the answer's sentences hold every word of it: the status
# criteria's "at least one preferred drug in the same drug class" holds all of the
# drug's own "two preferred drugs in the same drug class" but the number.
STATED = 1.0
# The attributes of a question that asks what an approval takes.
_ASKS = frozenset({"approval_requirements", "coverage_criterion"})


def _governs(passage: Passage, drug: DrugMention) -> bool:
    return any(mentioned_in(drug, name) for name in passage.provenance.applies_to)


def _own_criteria(passage: Passage, drug: DrugMention) -> bool:
    """A criteria section headed by the drug's name (among others, maybe)."""
    path = passage.provenance.section_path
    return (not passage.provenance.applies_to and under_criteria(path)
            and mentioned_in(drug, path[-1]))


def omitted_drug_criteria(
    focus: QuestionFocus, passages: list[Passage], units: list[list[Unit]], cited: set[str],
    told: str,
) -> list[tuple[Unit, Passage]]:
    """The units of a retrieved criteria section headed by the asked drug, when the answer
    (`told`: its sentences) states none of them and cites (`cited` unit ids) criteria
    that govern the drug by its status or flag; from the same payer's page as the cited
    criteria, the same file first. [] otherwise."""
    if not focus.drugs or not any(a.name in _ASKS for a in focus.attributes):
        return []
    cited_at = {u.passage_index for own in units for u in own if u.uid in cited}
    for drug in focus.drugs:
        governing = [passages[i] for i in sorted(cited_at) if _governs(passages[i], drug)]
        if not governing:
            continue
        payers = {p.provenance.payer for p in governing}
        files = {p.provenance.source_file for p in governing}
        own = [i for i, p in enumerate(passages)
               if _own_criteria(p, drug) and p.provenance.payer in payers]
        own.sort(key=lambda i: passages[i].provenance.source_file not in files)
        for index in own:
            readings = [(u, text) for u in (units[index] if index < len(units) else [])
                        if not TITLE_LINE.search(text := u.reading(passages[index]))]
            if any(coverage(text, told, "")[0] >= STATED for _, text in readings):
                return []  # the answer states the drug's own criteria
            fresh = [u for u, _ in readings]
            if fresh:
                return [(u, passages[index]) for u in fresh[:MAX_UNITS]]
    return []
