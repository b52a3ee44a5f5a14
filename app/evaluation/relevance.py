"""Questions, gold and the relevance judgment of a retrieved passage.

Gold is a source file plus a short substring the passage must contain, never a chunk
id, so a question set stays valid when parsing or chunking changes. A question's gold
entries are alternatives: the same fact in a repackaged label, a re-published page or a
duplicate answer. Finding any one answers the question, so the first passage that
matches any of them is credited and later matches count as no gain: a question has
exactly one thing to find.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gold:
    source_file: str  # relative path under the dataset's corpus folder
    contains: str = ""  # empty: any passage of the file is relevant
    grade: float = 1.0  # >1 for graded sets: a full answer outranks a partial one


@dataclass(frozen=True)
class EvalQuestion:
    qid: str
    text: str
    gold: tuple[Gold, ...] = ()  # empty: the corpus does not answer it
    tags: tuple[str, ...] = field(default=())
    # What is asked (dose, formulary_status, unanswerable, ...; eval/README.md).
    kind: str = ""
    # Facts a correct answer must state; each is a tuple of acceptable surface forms.
    key_facts: tuple[tuple[str, ...], ...] = ()
    # Repository-relative FHIR Bundle the question refers to ("my patient's statin").
    bundle: str | None = None
    # Answer from the versions in force on this day (YYYY-MM-DD).
    as_of: str | None = None
    # The question asks for every item (all contraindications, all preferred agents).
    is_list: bool = False

    @property
    def answerable(self) -> bool:
        return bool(self.gold)


@dataclass(frozen=True)
class Hit:
    """One retrieved passage, whatever system returned it."""

    source_file: str
    text: str
    score: float


def normalise(text: str) -> str:
    # NFKC folds ligatures and non-breaking spaces that PDFs and labels are full of.
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def matches(hit: Hit, gold: Gold) -> bool:
    return hit.source_file == gold.source_file and normalise(gold.contains) in normalise(
        hit.text
    )


def judge(hits: list[Hit], question: EvalQuestion) -> tuple[list[float], list[float]]:
    """(gains of the hits in rank order, ideal gains) for the metrics."""
    gains = [0.0] * len(hits)
    for rank, hit in enumerate(hits):
        grades = [g.grade for g in question.gold if matches(hit, g)]
        if grades:
            gains[rank] = max(grades)
            break
    ideal = [max(g.grade for g in question.gold)] if question.gold else []
    return gains, ideal
