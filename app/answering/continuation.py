"""The source's own continuation of a cited statement, which the answer left out.

Seen verified and incomplete: "Monitor HBV carriers during and several months after
therapy." for "Chronic hepatitis B carrier starting adalimumab - what monitoring does the
label require?", citing the first sentence of 5.4; the sentence after it, "In patients
who develop HBV reactivation, stop HUMIRA and initiate effective anti-viral therapy …",
is the rest of what the label requires. Likewise "recommends against routinely
measuring LFTs or CK after a moderate-dose statin is initiated" is the item right after
"suggests establishing baseline LFTs and CK before initiation of drug therapy".

A sentence or list item right before or after a cited one, in the same passage, that is
on the question's words and, read with the cited unit, still addresses the question, is
the source continuing the same statement: the server quotes it verbatim after the
sentence it continues, marked as the source's words. Table rows are not continued (the
next row is another drug), nor a unit the answer already states or cites.

The same holds inside a cited unit: a Highlights item "Hepatitis B virus reactivation:
Monitor HBV carriers during and several months after therapy. If reactivation occurs,
stop HUMIRA and begin anti-viral therapy (5.4)" was cited for its first sentence alone.
The sentence after the stated ones, in the unit the answer cited, is quoted too
(`unsaid_rest`): the unit already passed the relevance test as cited.
"""

from __future__ import annotations

from collections.abc import Callable

from app.answering.citation_checks import content_words, unit_context, vacuous
from app.answering.units import SENTENCE_END, Unit
from retrieval.models import Passage

MAX_CONTINUATIONS = 2
# Question words a neighbour (with its section path) must share: one is any sentence of
# the section, two is the subject (the same floor as evidence-only quotes).
MIN_OVERLAP = 2
# A neighbour whose content words the answer already holds this much adds nothing.
STATED = 0.8
_KINDS = frozenset({"sentence", "item"})

Anchored = tuple[str, Unit, Passage]  # (the cited unit's id it continues, unit, passage)


def continuing_units(
    question: str,
    units: list[list[Unit]],
    passages: list[Passage],
    cited: list[str],
    answer_text: str,
    addresses: Callable[[list[tuple[Unit, Passage]]], bool],
) -> list[Anchored]:
    """Neighbours of the cited units (`cited`, in answer order) that continue them on
    the question; `addresses(units)` is the relevance test of a verified answer."""
    words = content_words(question)
    said = content_words(answer_text)
    position = {u.uid: (i, j) for i, own in enumerate(units) for j, u in enumerate(own)}
    taken = set(cited)
    out: list[Anchored] = []
    for uid in cited:
        if uid not in position:
            continue
        i, j = position[uid]
        own = units[i]
        anchor = own[j]
        if anchor.kind not in _KINDS:
            continue
        for k in (j + 1, j - 1):
            if not 0 <= k < len(own) or own[k].uid in taken or own[k].kind not in _KINDS:
                continue
            unit = own[k]
            passage = passages[unit.passage_index]
            text = unit.reading(passage)
            mine = content_words(text)
            if vacuous(text) or not mine or _stated(mine, said, STATED):
                continue
            if len(words & content_words(text + " " + unit_context(passage))) < MIN_OVERLAP:
                continue
            if not addresses([(anchor, passage), (unit, passage)]):
                continue
            taken.add(unit.uid)
            out.append((uid, unit, passage))
            if len(out) == MAX_CONTINUATIONS:
                return out
    return out


# A sentence of a cited unit counts as stated when the answer holds this much of it: the
# answer words it shorter ("- Hepatitis B virus reactivation: Monitor HBV carriers …"
# stated as "Monitor HBV carriers …").
PART_STATED = 0.6


def _stated(words: set[str], said: set[str], share: float) -> bool:
    """Whether the answer (`said`) holds at least `share` of these content words."""
    return not words or len(words & said) >= share * len(words)


def unsaid_rest(
    question: str,
    units: list[list[Unit]],
    passages: list[Passage],
    cited: list[str],
    answer_text: str,
) -> list[tuple[str, str, Unit, Passage]]:
    """(cited unit id, sentence, unit, passage): in each cited unit of several sentences,
    the sentence right after the last one the answer states, when it is not stated
    either and shares a word with the question (the unit's section path and title
    count)."""
    words = content_words(question)
    said = content_words(answer_text)
    by_id = {u.uid: u for own in units for u in own}
    out: list[tuple[str, str, Unit, Passage]] = []
    for uid in cited:
        unit = by_id.get(uid)
        if unit is None or unit.kind not in _KINDS:
            continue
        passage = passages[unit.passage_index]
        parts = [x.strip() for x in SENTENCE_END.split(unit.reading(passage)) if x.strip()]
        stated = [i for i, x in enumerate(parts)
                  if _stated(content_words(x), said, PART_STATED)]
        if len(parts) < 2 or not stated or stated[-1] + 1 >= len(parts):
            continue
        nxt = parts[stated[-1] + 1]
        if vacuous(nxt) or _stated(content_words(nxt), said, PART_STATED):
            continue
        if not words & content_words(nxt + " " + unit_context(passage)):
            continue
        out.append((uid, nxt, unit, passage))
        if len(out) == MAX_CONTINUATIONS:
            break
    return out
