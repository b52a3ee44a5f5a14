"""A sentence that restates a cited list but leaves some of its items out.

Seen verified: "Cases of sudden death and QT-prolongation have been reported in patients
receiving haloperidol", citing "Cases of sudden death, QT-prolongation, and Torsades de
pointes have been reported …". Every word of the sentence is in its unit, so coverage,
numbers and entities all pass, yet the answer drops the risk a clinician most needs.
A sentence that names two or more items of an enumeration in its cited unit and not
the others says less than its source while reading as the whole of it; unless the
question itself names the items kept (it asked about those), the citation is only
partial, with the items left out as its reason.
"""

from __future__ import annotations

import re

from app.answering.text import STOPWORDS, normalise, stem

_WORD = re.compile(r"[a-z0-9][a-z0-9\-]*")
# Clauses: an enumeration never runs across these.
_CLAUSE_END = re.compile(r"[;:.()\[\]]\s|[;:()\[\]]|\.$")
# Words that open or close an item inside its clause ("Cases of sudden death", "and
# Torsades de pointes have been reported"): the item is the words between them.
_BOUNDARY = frozenset(
    """of in with for to on by from as at taking receiving including include includes such
    is are was were be been have has had can may might should must will would that which
    who than the a an any each these those this""".split()
)
MAX_ITEM_WORDS = 4
MIN_ITEMS = 3  # "A, B, and C": two items are a pair, not a list a sentence abbreviates


def _words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def _content(words: list[str]) -> list[str]:
    return [w for w in words if w not in STOPWORDS and len(w) > 2 and not w.isdigit()]


def _tail(part: str) -> list[str]:
    """The first item of a list: the last words of its part, after a boundary word."""
    words = _words(part)
    out: list[str] = []
    for w in reversed(words):
        if w in _BOUNDARY or len(out) == MAX_ITEM_WORDS:
            break
        out.insert(0, w)
    return out


def _head(part: str) -> list[str]:
    """The last item of a list: the first words of its part, up to a boundary word."""
    out: list[str] = []
    for w in _words(part):
        if w in _BOUNDARY or w in ("and", "or") or len(out) == MAX_ITEM_WORDS:
            break
        out.append(w)
    return out


def _is_item(words: list[str]) -> bool:
    """A list's middle item is a short noun phrase: no function word, adverb or verb
    of the surrounding prose in it ("like other statins", "occasionally causes")."""
    return 0 < len(words) <= 3 and not any(
        w in _BOUNDARY or w in ("and", "or", "like", "regardless", "defined", "causes")
        or w.endswith("ly") for w in words)


def enumerations(text: str) -> list[list[str]]:
    """The lists of `text` ("A, B, and C", "A, B or C"), each as its items' words."""
    found: list[list[str]] = []
    for clause in _CLAUSE_END.split(text):
        parts = [p for p in clause.split(",")]
        if len(parts) < MIN_ITEMS - 1:
            continue
        last = parts[-1]
        joined = re.match(r"\s*(?:and|or)\s+(.*)$", last, re.I | re.S)
        if joined is None:
            # "A, B and C": the last comma part holds the last two items.
            pair = re.match(r"(.*?)\s+(?:and|or)\s+(.*)$", last, re.I | re.S)
            if pair is None:
                continue
            middle_parts, final = parts[1:-1] + [pair.group(1)], pair.group(2)
        else:
            middle_parts, final = parts[1:-1], joined.group(1)
        middle = [_words(p) for p in middle_parts]
        if not all(_is_item(m) for m in middle):
            continue  # a comma inside prose ("Atorvastatin, like other statins, …")
        items = [_tail(parts[0]), *middle, _head(final)]
        items = [i for i in items if _content(i)]
        if len(items) >= MIN_ITEMS:
            found.append(items)
    return found


def _named(item: list[str], words: set[str]) -> bool:
    """Whether the sentence names the item: any of its content words will do, so that
    an item is counted as left out only when nothing of it is said."""
    return any(stem(w) in words for w in _content(item))


def left_out(sentence: str, cited: list[str], question: str = "") -> list[str]:
    """Items of a cited unit's list that the sentence leaves out while naming two or
    more of the others; [] when it names the whole list, at most one item, or only
    items the question asked about."""
    said = {stem(w) for w in _words(sentence)}
    asked = {stem(w) for w in _words(question)}
    out: list[str] = []
    for text in cited:
        for items in enumerations(text):
            kept = [i for i in items if _named(i, said)]
            dropped = [i for i in items if not _named(i, said)]
            if len(kept) < 2 or not dropped:
                continue
            if all(_named(i, asked) for i in kept):
                continue  # the question named the items the sentence keeps
            out += [" ".join(i) for i in dropped]
    return list(dict.fromkeys(out))
