"""Structure-aware chunking: a chunk never crosses a section boundary.

Sections up to `max_chars` (tables up to twice that) stay whole; longer ones are cut
at sentence boundaries with a small overlap. Offsets stay exact so a citation can be
traced back into the parsed document text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.models import ParsedDocument, Section

# A sentence ends at . ! ? or a line break; decimals like "2.5 mg" are not ends.
_BOUNDARY = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9(\[•\-])|\n+")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    section: Section
    start: int  # offsets in ParsedDocument.text
    end: int


def _split_points(text: str) -> list[int]:
    return [m.end() for m in _BOUNDARY.finditer(text)]


def _windows(text: str, max_chars: int, overlap: int) -> list[tuple[int, int]]:
    """Cut `text` into windows ending at sentence boundaries where possible."""
    points = _split_points(text) + [len(text)]
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        limit = start + max_chars
        candidates = [p for p in points if start < p <= limit]
        end = candidates[-1] if candidates and limit < len(text) else min(limit, len(text))
        if limit >= len(text):
            end = len(text)
        if end <= start:
            end = min(limit, len(text))
        spans.append((start, end))
        if end >= len(text):
            break
        # Restart a little before the end, on a boundary, so facts that straddle
        # the cut appear whole in at least one chunk.
        back = [p for p in points if end - overlap <= p < end and p > start]
        start = back[0] if back else end
    return spans


def chunk_document(doc: ParsedDocument, max_chars: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in doc.sections:
        limit = max_chars * 2 if section.is_table else max_chars
        if len(section.text) <= limit:
            spans = [(0, len(section.text))]
        else:
            spans = _windows(section.text, max_chars, overlap)
        for s, e in spans:
            piece = section.text[s:e]
            stripped = piece.strip()
            if not stripped:
                continue
            lead = len(piece) - len(piece.lstrip())
            start = section.start + s + lead
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=stripped,
                    section=section,
                    start=start,
                    end=start + len(stripped),
                )
            )
    return chunks


def embedding_text(doc: ParsedDocument, chunk: Chunk) -> str:
    """What the embedder sees: the passage with its title and section path, since a
    dose sentence alone rarely names the drug or the indication.

    The title and path stay even where they repeat the passage's own first line: a
    variant that named each heading once (2026-11-24) lost recall@5 on all three eval
    sets (MedQuAD 0.887 -> 0.843) and ranked the pediatric Lipitor dose above the adult
    one, so it was reverted (bench/RESULTS-retrieval.md)."""
    path = " > ".join(chunk.section.path)
    return f"{doc.title}\n{path}\n{chunk.text}"
