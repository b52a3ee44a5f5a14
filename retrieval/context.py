"""Context assembly: widen a retrieved fragment with its neighbouring chunks of the same
section, within the generator's character budget.

A long section is split into overlapping windows at ingest, so a hit can be the middle
of a dosing table or a criteria list whose heading row or last condition sits in the
next chunk. The neighbours (same document, same version, same section, chunk_index ± n)
are stitched back by their character offsets, so the widened passage is an exact span
of the document: `provenance.char_start/char_end` describe it, and the verifier and the
UI see the very text the generator saw (citation spans stay offsets into it).

Neighbours are added best-ranked passage first, nearest chunk first, and only while the
total stays within the budget, so widening never pushes a retrieved passage out of the
prompt. A neighbour that is itself retrieved, or already added to another passage, is
not repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qdrant_client import models

from retrieval.models import Passage
from retrieval.schema import ChunkPayload
from retrieval.search import Retriever, to_passage
from retrieval.store import match, match_any

_FIELDS = ["doc_id", "version_id", "section_path", "chunk_index", "doc_chunks", "char_start",
           "char_end", "text", "access_groups", "unit_kind"]
# A formulary record is whole, and its text a rendering rather than a span of the
# document: it is never widened, nor stitched into another passage.
_WHOLE_UNITS = {"row"}


@dataclass(frozen=True)
class _Chunk:
    id: str
    index: int
    start: int
    end: int
    text: str


def stitch(chunks: list[_Chunk]) -> tuple[str, int, int]:
    """Text of consecutive chunks joined by their document offsets: overlaps kept once,
    a gap (whitespace stripped at ingest) filled with line breaks so offsets stay exact.
    Line breaks, not spaces: chunks end and start at line or sentence boundaries, and a
    table's last row joined to the next chunk's first line ("| Victoza (QL) | |  Link to
    Criteria") is no longer a row: a preferred drug silently left out of its list."""
    ordered = sorted(chunks, key=lambda c: c.start)
    text, start, end = ordered[0].text, ordered[0].start, ordered[0].end
    for c in ordered[1:]:
        if c.end <= end:
            continue
        if c.start >= end:
            text += "\n" * (c.start - end) + c.text
        else:
            text += c.text[end - c.start:]
        end = c.end
    return text, start, end


@dataclass
class ContextAssembler:
    retriever: Retriever
    budget_chars: int
    window: int = 2  # chunks on each side that may be added

    def assemble(
        self,
        passages: list[Passage],
        access_groups: list[str],
        keep: Callable[[str], bool] = lambda _text: True,
    ) -> list[Passage]:
        """`passages` with fragments widened; `keep` rejects neighbour text (e.g. text
        that looks like instructions to the model), which then ends the widening there."""
        used = sum(len(p.text) for p in passages)
        if not passages or used >= self.budget_chars:
            return passages
        hits = self._payloads([p.id for p in passages])
        split = {pid: pl for pid, pl in hits.items() if int(pl.get("doc_chunks", 1)) > 1
                 and pl.get("unit_kind") not in _WHOLE_UNITS}
        if not split:
            return passages
        near = self._neighbours(list(split.values()), access_groups)
        taken = {p.id for p in passages}
        out = []
        for p in passages:
            pl = split.get(p.id)
            if pl is None:
                out.append(p)
                continue
            widened, used = self._widen(p, pl, near, taken, used, keep)
            out.append(widened)
        return out

    def _widen(
        self,
        p: Passage,
        pl: dict[str, Any],
        near: dict[tuple[str, str, int], _Chunk],
        taken: set[str],
        used: int,
        keep: Callable[[str], bool],
    ) -> tuple[Passage, int]:
        key = (str(pl["version_id"]), " > ".join(pl.get("section_path") or []))
        index = int(pl["chunk_index"])
        chunks = [_Chunk(p.id, index, int(pl["char_start"]), int(pl["char_end"]), p.text)]
        text = p.text
        blocked: set[int] = set()  # directions (+1 / -1) that stopped
        for step in range(1, self.window + 1):
            for direction in (1, -1):  # the following text first: it finishes the thought
                if direction in blocked:
                    continue
                c = near.get((*key, index + direction * step))
                if c is None or c.id in taken or not keep(c.text):
                    blocked.add(direction)
                    continue
                candidate, _, _ = stitch([*chunks, c])
                if used - len(text) + len(candidate) > self.budget_chars:
                    blocked.add(direction)
                    continue
                chunks.append(c)
                taken.add(c.id)
                used += len(candidate) - len(text)
                text = candidate
        if len(chunks) == 1:
            return p, used
        text, start, end = stitch(chunks)
        provenance = p.provenance.model_copy(update={"char_start": start, "char_end": end})
        return p.model_copy(update={"text": text, "provenance": provenance}), used

    def whole_section(self, passage: Passage, access_groups: list[str],
                      max_chunks: int = 12) -> Passage | None:
        """The passage's whole section (every chunk of it, stitched), or None when the
        section runs past `max_chunks` or a piece of it is outside the caller's groups:
        a list answered from part of a table would be a verified, incomplete answer."""
        hits = self._payloads([passage.id])
        pl = hits.get(passage.id)
        if pl is None or pl.get("unit_kind") in _WHOLE_UNITS:
            return None
        index, path = int(pl["chunk_index"]), list(pl.get("section_path") or [])
        flt = models.Filter(must=[
            match_any("access_groups", access_groups or ["\0none"]),
            match("doc_id", str(pl["doc_id"])),
            match("version_id", str(pl["version_id"])),
            models.FieldCondition(key="chunk_index", range=models.Range(
                gte=index - max_chunks, lte=index + max_chunks)),
        ])
        with self.retriever._lock:
            records, _ = self.retriever.client.scroll(
                self.retriever.collection, scroll_filter=flt, limit=4 * max_chunks + 2,
                with_payload=_FIELDS, with_vectors=False,
            )
        by_index: dict[int, ChunkPayload] = {}
        ids: dict[int, str] = {}
        for r in records:
            cp = ChunkPayload.read(r.payload)
            by_index[cp.chunk_index] = cp
            ids[cp.chunk_index] = str(r.id)

        def same(i: int) -> bool:
            c = by_index.get(i)
            return c is not None and c.unit_kind not in _WHOLE_UNITS and c.section_path == path

        def bounds(i: int) -> bool:
            # Another section's chunk or a record (records follow the section chunks),
            # or past either end of the document.
            return i < 0 or i >= int(pl.get("doc_chunks") or 0) or (
                i in by_index and not same(i))

        if not same(index):
            return None
        lo = hi = index
        while same(lo - 1):
            lo -= 1
        while same(hi + 1):
            hi += 1
        # Whole only when bounded on both sides by what this caller may read: a missing
        # neighbour may be more of the section.
        if not (bounds(lo - 1) and bounds(hi + 1)):
            return None
        chunks = [_Chunk(ids[i], i, by_index[i].char_start, by_index[i].char_end,
                         by_index[i].text) for i in range(lo, hi + 1)]
        text, start, end = stitch(chunks)
        provenance = passage.provenance.model_copy(update={"char_start": start,
                                                           "char_end": end})
        return passage.model_copy(update={"text": text, "provenance": provenance})

    def field_of(self, passage: Passage, field: str, access_groups: list[str]
                 ) -> Passage | None:
        """The chunk of the passage's document version whose section is `field` (an NGC
        summary's "Date Released"), as a passage, or None when it has none the caller
        may read."""
        flt = models.Filter(must=[
            match_any("access_groups", access_groups or ["\0none"]),
            match("doc_id", passage.provenance.doc_id),
            *([match("version_id", passage.provenance.version_id)]
              if passage.provenance.version_id else []),
            match("section_path", field),
        ])
        with self.retriever._lock:
            records, _ = self.retriever.client.scroll(
                self.retriever.collection, scroll_filter=flt, limit=8, with_payload=True,
                with_vectors=False,
            )
        own = [r for r in records
               if (ChunkPayload.read(r.payload).section_path or [""])[-1] == field]
        if not own:
            return None
        first = min(own, key=lambda r: ChunkPayload.read(r.payload).chunk_index)
        return to_passage(first, passage.score)

    def _payloads(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        with self.retriever._lock:  # embedded Qdrant: one caller at a time
            records = self.retriever.client.retrieve(
                self.retriever.collection, ids=ids, with_payload=_FIELDS, with_vectors=False
            )
        return {str(r.id): dict(r.payload or {}) for r in records}

    def _neighbours(
        self, hits: list[dict[str, Any]], access_groups: list[str]
    ) -> dict[tuple[str, str, int], _Chunk]:
        """Chunks within `window` of any hit, of the same document version, in one scroll,
        keyed by (version_id, section path, chunk_index)."""
        around = [
            models.Filter(must=[
                match("doc_id", str(h["doc_id"])),
                match("version_id", str(h["version_id"])),
                models.FieldCondition(key="chunk_index", range=models.Range(
                    gte=int(h["chunk_index"]) - self.window,
                    lte=int(h["chunk_index"]) + self.window,
                )),
            ])
            for h in hits
        ]
        # The caller's groups again: a neighbour is as protected as the hit itself.
        flt = models.Filter(
            must=[match_any("access_groups", access_groups or ["\0none"])], should=around
        )
        limit = len(hits) * (2 * self.window + 1)
        with self.retriever._lock:
            records, _ = self.retriever.client.scroll(
                self.retriever.collection, scroll_filter=flt, limit=limit,
                with_payload=_FIELDS, with_vectors=False,
            )
        out: dict[tuple[str, str, int], _Chunk] = {}
        for r in records:
            pl = ChunkPayload.read(r.payload)
            if pl.unit_kind in _WHOLE_UNITS:
                continue
            key = (str(pl.version_id), " > ".join(pl.section_path), pl.chunk_index)
            out[key] = _Chunk(str(r.id), key[2], pl.char_start, pl.char_end, pl.text)
        return out
