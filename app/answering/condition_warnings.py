"""A warning the sources state for the condition a question asks about is part of the
answer.

"Cardiac risks of haloperidol in a patient with hypokalemia?" was answered, every
sentence supported, with the label's sudden-death sentences, while the retrieved Warnings
section says "... particular caution is advised in treating patients with other
QT-prolonging conditions (including electrolyte imbalance [particularly hypokalemia ...])"
after "Higher than recommended doses ... associated with a higher risk of QT-prolongation
and Torsades de pointes." True sentences that leave out the warning for the very
condition asked about are not a safe answer (the contraindications rule,
`contraindications.py`, is the same for populations). So when a question about a drug's
risks names a condition, and a retrieved warnings section of that drug's label names the
condition, an answer that cites none of those units gets them, quoted verbatim: the unit
naming the condition, with the sentence before it in the same paragraph when the
condition's unit refers back to it (a caution qualifies the risk stated just before).
"""

from __future__ import annotations

import re

from app.answering.label_sections import drug_sections
from app.answering.relevance import question_focus
from app.answering.units import Unit
from retrieval.drugs import drug_names
from retrieval.intent import BOXED_WARNING, PRECAUTIONS, WARNINGS, WARNINGS_AND_PRECAUTIONS
from retrieval.models import Passage

WARNING_CODES = frozenset({BOXED_WARNING, WARNINGS, PRECAUTIONS, WARNINGS_AND_PRECAUTIONS})
# A question about what could go wrong ("risks", "safe", "any concern") rather than a
# dose or a coverage rule.
_ASKS_RISK = re.compile(
    r"\brisks?\b|\bsafe(?:ly|ty)?\b|\bwarnings?\b|precaution|caution|concerns?\b|danger|"
    r"\bharm|\bok(?:ay)?\b|\bavoid\b", re.I)
# A sentence that points back at the risk stated before it: "other QT-prolonging
# conditions", "such patients", "these risks", "particular caution".
_REFERS_BACK = re.compile(
    r"\b(?:other|such|these|this|those|particular(?:ly)? caution|caution is advised)\b", re.I)
MAX_UNITS = 2


def is_warning(passage: Passage) -> bool:
    if passage.provenance.section_code in WARNING_CODES:
        return True
    return any(w in s.lower() for s in passage.provenance.section_path
               for w in ("warning", "precaution"))


def _names(word: str, text: str) -> bool:
    return re.search(rf"(?<![a-z]){re.escape(word)}", text.lower()) is not None


def omitted_warning(
    question: str, passages: list[Passage], units: list[list[Unit]], cited: set[str],
    conditions: list[str] | None = None,
) -> list[tuple[Unit, Passage]]:
    """The units of a retrieved warnings section of the asked drug's label that name the
    condition the question asks about (with the sentence they qualify), when the answer
    (`cited` unit ids) cites none of them; [] otherwise. `conditions`: the question's,
    when its focus was already read (`relevance.question_focus`)."""
    if not _ASKS_RISK.search(question):
        return []
    if conditions is None:
        conditions = question_focus(question).conditions
    drugs = set(drug_names(question))
    if not conditions or not drugs:
        return []

    def label_warning(passage: Passage) -> bool:
        return is_warning(passage) and passage.provenance.doc_type == "label"

    for passage, own in drug_sections(drugs, passages, units, cited, label_warning):
        for condition in conditions:
            at = [k for k, u in enumerate(own) if _names(condition, u.reading(passage))]
            if not at:
                continue
            if any(own[k].uid in cited for k in at):
                return []  # the answer already says it
            first = at[0]
            picked = [first]
            between = passage.text[own[first - 1].end:own[first].start] if first else ""
            if first and "\n\n" not in between \
                    and _REFERS_BACK.search(own[first].reading(passage)):
                picked.insert(0, first - 1)
            return [(own[k], passage) for k in picked[:MAX_UNITS]]
    return []
