"""A cited sentence copied with a word swapped.

The small model copies a unit and changes one word to fit the question: "Sudden
*hearing* loss in one or both eyes can be a sign of … NAION" (the unit says vision),
"the recommended dose for *hidradenitis suppurativa* is …" (the unit names another
indication). Coverage forgives a few uncovered words, and when two units are cited the
swapped-in word is often in the other one ("hearing loss" was). A sentence that is
mostly one unit's words in that unit's order, with a content word of that unit replaced
by one the unit does not hold, states something the unit does not say.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from app.answering.relevance import PAYER_NAMES
from app.answering.text import STOPWORDS, normalise, stem
from retrieval.drugs import find_drug_mentions, mentioned_in

# Share of the sentence's tokens that must come from one unit, in order, for the
# sentence to be read as that unit's copy rather than a sentence of its own.
MIN_COPIED = 0.6
_TOKEN = re.compile(r"[a-z0-9]+(?:[.'-][a-z0-9]+)*")
# How a source's statement is put, which a faithful restatement changes freely: "Ohio
# Medicaid requires documentation of …" for the criteria's "Must provide documentation of
# …" (seen withheld in the release check), "the label recommends" for "should".
_PHRASING = frozenset("""
    must provide provides provided require requires required requiring need needs needed
    should recommend recommends recommended suggest suggests suggested advise advises
    advised use uses used using take takes taken give gives given include includes
    included including allow allows allowed state states stated say says said list lists
    listed mean means indicate indicates indicated consider considers considered perform
    performs performed obtain obtains obtained submit submits submitted document
    documents documented show shows shown note notes noted apply applies applied
    """.split())


def _content(tokens: list[str]) -> set[str]:
    return {stem(t) for t in tokens if t not in STOPWORDS and t not in _PHRASING
            and t not in PAYER_NAMES and len(t) > 2 and not t[0].isdigit()}


def swapped_words(sentence: str, unit_text: str, context: str = "") -> list[tuple[str, str]]:
    """(the unit's words, the sentence's words) for each content word the sentence put in
    place of one of the unit's, when the sentence copies the unit. Numbers are left to the
    quantity check; a drug named by another of its names, and words of the unit's own
    heading, are not swaps."""
    said = _TOKEN.findall(normalise(sentence))
    source = _TOKEN.findall(normalise(unit_text))
    if len(said) < 4 or not source:
        return []
    matcher = SequenceMatcher(None, said, source, autojunk=False)
    copied = sum(block.size for block in matcher.get_matching_blocks())
    if copied < MIN_COPIED * len(said):
        return []
    have = _content(source) | _content(_TOKEN.findall(normalise(context)))
    kept = _content(said)
    where = unit_text + " " + context
    swaps = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "replace":
            continue
        new = [t for t in said[i1:i2] if _content([t]) and not _content([t]) <= have]
        old = [t for t in source[j1:j2] if _content([t]) and not _content([t]) <= kept]
        if not new or not old:
            continue  # an added word, a pronoun resolved, a word moved: not a swap
        drugs = find_drug_mentions(" ".join(new))
        if drugs and all(mentioned_in(d, where) for d in drugs):
            continue  # "atorvastatin" for "LIPITOR"
        swaps.append((" ".join(source[j1:j2]), " ".join(said[i1:i2])))
    return swaps
