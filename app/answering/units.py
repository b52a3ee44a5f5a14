"""Passages as numbered units the model cites by id: sentences, table rows (read with
their header) and list items.

The model never copies a quote: it names unit ids (`P2.4`), the JSON schema allows only
the ids that were in its prompt, and the server takes the quoted text and its span from
the units themselves. So a citation can only point at text that was shown, and the span
is exact by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.models import Passage

_ROW = re.compile(r"^\s*\|.*\|\s*$")
_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+")
# A sentence ends at . ! ? ; followed by space and an upper-case letter, digit or bracket;
# abbreviations such as "e.g." or "mg." followed by lower case do not split.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])")
_TAGS = re.compile(r"<[^>]+>")
# Units longer than this are split at sentence ends (long table cells, run-on text).
MAX_UNIT_CHARS = 600


@dataclass(frozen=True)
class Unit:
    uid: str  # "P2.4": passage label and position
    passage_index: int
    start: int  # offsets of the unit inside the passage text
    end: int
    kind: str  # sentence | row | item
    # A table row's header cells, so "| Atorvastatin QL | 102 |" reads as
    # "Preferred: Atorvastatin QL | Quantity: 102".
    header: tuple[str, ...] = ()

    def source_text(self, passage: Passage) -> str:
        """The passage's own words: what the API shows as the citation's quote."""
        return passage.text[self.start:self.end]

    def reading(self, passage: Passage) -> str:
        """What the model is shown and what verification checks: rows with their header."""
        text = self.source_text(passage)
        if self.kind != "row" or not self.header:
            return _TAGS.sub("", text).strip()
        row = cells(text)
        pairs = []
        for i, cell in enumerate(row):
            if not cell:
                continue
            name = self.header[i] if i < len(self.header) else ""
            pairs.append(f"{name}: {cell}" if name and name != cell else cell)
        return " | ".join(pairs)


def cells(line: str) -> list[str]:
    return [" ".join(_TAGS.sub(" ", c).split()) for c in line.strip().strip("|").split("|")]


_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|vs|dr|st|no|approx|ca|fig|u\.s)|\b[A-Z])\.$",
                           re.IGNORECASE)
MIN_CLAIM_WORDS = 3


def claims(text: str) -> list[str]:
    """A model's sentence item cut at its sentence ends: each sentence is a claim checked
    on its own (seen: the patient's premise and the answer in one item, the answer
    judged partial for the premise's words). A piece ending in an abbreviation ("e.g.",
    "U.S.") and a piece of fewer than three words stay with the next and previous one."""
    pieces: list[str] = []
    for start, end in _sentences(text, 0):
        piece = text[start:end]
        if pieces and (_ABBREVIATION.search(pieces[-1])
                       or len(piece.split()) < MIN_CLAIM_WORDS):
            pieces[-1] = f"{pieces[-1]} {piece}"
        else:
            pieces.append(piece)
    return pieces


def _sentences(text: str, offset: int) -> list[tuple[int, int]]:
    spans = []
    start = 0
    for m in [*SENTENCE_END.finditer(text), None]:
        end = m.start() if m else len(text)
        piece = text[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((offset + start + lead, offset + start + len(piece.rstrip())))
        if m:
            start = m.end()
    return spans


def split_passage(passage: Passage, index: int) -> list[Unit]:
    """The units of one passage, in reading order."""
    label = f"P{index + 1}"
    raw: list[tuple[int, int, str, tuple[str, ...]]] = []
    header: tuple[str, ...] = ()
    lines = passage.text.splitlines(keepends=True)
    pos = 0
    for n, line in enumerate(lines):
        start, end = pos, pos + len(line.rstrip("\n\r"))
        pos += len(line)
        if not line.strip():
            header = ()
            continue
        if _ROW.match(line):
            if _RULE.match(line):
                continue
            following = lines[n + 1] if n + 1 < len(lines) else ""
            if _RULE.match(following):
                # A header (a row followed by a rule) is shown with every row of its
                # table; alone it states nothing. A chunk cut inside a table has none.
                header = tuple(cells(line))
                continue
            raw.append((start, end, "row", header))
            continue
        header = ()
        if line.lstrip().startswith("#"):
            continue  # a heading: already the passage's section path
        lead = len(line) - len(line.lstrip())
        if _ITEM.match(line):
            raw.append((start + lead, end, "item", ()))
            continue
        for s, e in _sentences(passage.text[start:end], start):
            raw.append((s, e, "sentence", ()))
    units: list[Unit] = []
    for start, end, kind, head in raw:
        pieces = ([(start, end)] if end - start <= MAX_UNIT_CHARS or kind == "row"
                  else _sentences(passage.text[start:end], start) or [(start, end)])
        for s, e in pieces:
            units.append(Unit(f"{label}.{len(units) + 1}", index, s, e, kind, head))
    return units
