""""When was this guideline released / last revised?" answered from the document's own
release field, not by the model.

An NGC guideline summary states its dates in one administrative field, "Date Released"
("1999 May (revised 2014 Oct)"), which ingest keeps as its own chunk (ingest/parsers/
ngc.py, kind "admin"). The packaged 1.5B model, given that field among other passages,
answered "last revised on May 27, 2005 and January 16, 2015" from dates elsewhere in the
summary. A release question is a lookup: the field, quoted whole with its document's
title, cited, then verified and tested for relevance like any answer (the question's
names and topic must be in the cited field's title), so that the field of another
guideline is never returned.
"""

from __future__ import annotations

import re

from app.answering.prompting import GenUnitAnswer, GenUnitSentence
from app.answering.relevance import QuestionFocus
from app.answering.units import Unit
from retrieval.models import Passage

# A question about a document's dates: "when was … released / published / revised",
# "release date of …". Not "when was the indication added to the label" (a label's
# revision history is not one field).
_RELEASE = re.compile(
    r"\b(?:when|what year|what date)\b.{0,120}\b(?:released?|published|revised|updated|"
    r"issued)\b|\b(?:release|publication|revision) date\b", re.I)
# The field's name in the NGC template (ingest/parsers/ngc.py keeps it as the last
# element of the chunk's section path).
RELEASE_FIELD = "Date Released"
RELEASE_FIELDS = frozenset({RELEASE_FIELD.lower()})


def is_release_question(question: str, focus: QuestionFocus) -> bool:
    """A question asking only when a named document (not a drug's label) was released
    or revised."""
    return bool(_RELEASE.search(question)) and not (focus.drugs or focus.patient_drugs)


def asked_document(passages: list[Passage]) -> Passage | None:
    """The document the question is about: the one most of the retrieved passages come
    from (rank breaks ties). A release question retrieves its guideline's administrative
    fields, and now and then another guideline's status line first."""
    if not passages:
        return None
    votes: dict[str, list[int]] = {}
    for rank, p in enumerate(passages):
        votes.setdefault(p.provenance.doc_id, []).append(rank)
    best = min(votes.values(), key=lambda ranks: (-len(ranks), ranks[0]))
    return passages[best[0]]


def is_release_field(passage: Passage) -> bool:
    path = passage.provenance.section_path
    return bool(path) and path[-1].strip().lower() in RELEASE_FIELDS


def release_answer(passage: Passage, units: list[Unit]) -> GenUnitAnswer | None:
    """The release field's value quoted whole beside its document's title, citing every
    unit of the field; None when it states no year."""
    value = " ".join(u.reading(passage) for u in units).strip().rstrip(".")
    if not units or not re.search(r"\b\d{4}\b", value):
        return None
    title = passage.provenance.title.strip().rstrip(".")
    return GenUnitAnswer(sentences=[GenUnitSentence(text=f"{title}: date released {value}.",
                                                    units=[u.uid for u in units])])
