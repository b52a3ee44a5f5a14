"""Accumulates a document's sections so that every section's offsets point into its text."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

from ingest.models import DocType, ParsedDocument, ParseError, Section

SECTION_SEPARATOR = "\n\n"
JOIN_BELOW = 200  # characters: a fragment, not a topic of its own

# Spaces that render as blanks; NBSP and friends are folded so quotes match typed text.
_HSPACE = re.compile(r"[ \t\f\v\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
# Invisible characters that split words for search but carry no meaning.
_INVISIBLE = re.compile(r"[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalise_text(text: str) -> str:
    """Collapse runs of spaces/tabs, keep line and paragraph breaks, strip the ends.

    A line's leading indentation is kept (tabs as two spaces) because it is how nested
    list items show their depth.
    """
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(_normalise_indented(line) for line in text.split("\n"))
    # Dedent as a whole: the first line's indentation is relative to the lines after it.
    return textwrap.dedent(_BLANK_LINES.sub("\n\n", text)).strip("\n").lstrip(" ")


def _normalise_indented(line: str) -> str:
    body = line.lstrip(" \t")
    if not body.strip():
        return ""
    indent = line[: len(line) - len(body)].replace("\t", "  ")
    # Nesting steps are two spaces; an odd stray space is noise, not depth.
    return " " * (len(indent) // 2 * 2) + _HSPACE.sub(" ", body).rstrip()


def normalise_line(text: str) -> str:
    """A single-line label (a title, a path element): every whitespace run becomes one space."""
    return " ".join(_INVISIBLE.sub("", text).split())


def relpath_stem(relpath: str) -> str:
    """'a/b/c.v2.md' -> 'a/b/c.v2': a doc_id part that is stable across runs and machines."""
    return re.sub(r"\.[^./]+$", "", relpath.replace("\\", "/"))


class DocumentBuilder:
    """Appends sections to one full text, separated by blank lines, recording offsets."""

    def __init__(self, *, join_continuations: bool = False) -> None:
        # A parser whose untitled sub-sections continue their parent's text (SPL) joins a
        # fragment added under the same path to the text right before it: haloperidol's
        # "Adults" dose ranges are three sibling sections of one line or two each, and
        # apart none says what it is about. Only fragments (JOIN_BELOW): joining whole
        # untitled sub-sections ("Priapism", "Vision loss" under Patient Counseling)
        # made one long section whose windows cut the topics apart (recall measured).
        self._join = join_continuations
        self._parts: list[str] = []
        self._sections: list[Section] = []
        self._length = 0
        # What the sections added now are (see `scope`).
        self._code: str | None = None
        self._kind = "section"

    @contextmanager
    def scope(self, *, code: str | None = None, kind: str | None = None) -> Iterator[None]:
        """Sections added inside carry this code and kind (tables stay "table")."""
        saved = (self._code, self._kind)
        self._code = code
        self._kind = kind or saved[1]
        try:
            yield
        finally:
            self._code, self._kind = saved

    @property
    def sections(self) -> list[Section]:
        return list(self._sections)

    def add(
        self,
        path: tuple[str, ...],
        text: str,
        page: int | None = None,
        is_table: bool = False,
    ) -> Section | None:
        """Add one section; returns None (and adds nothing) when `text` is blank."""
        clean = normalise_text(text)
        if not clean:
            return None
        clean_path = tuple(p for p in (normalise_line(x) for x in path) if p)
        kind = "table" if is_table and self._kind == "section" else self._kind
        if self._parts:
            self._parts.append(SECTION_SEPARATOR)
            self._length += len(SECTION_SEPARATOR)
        start = self._length
        self._parts.append(clean)
        self._length += len(clean)
        last = self._sections[-1] if self._sections else None
        if (self._join and last is not None and not is_table and not last.is_table
                and min(len(last.text), len(clean)) < JOIN_BELOW
                and (last.path, last.code, last.kind, last.page)
                == (clean_path, self._code, kind, page)):
            joined = Section(clean_path, last.text + SECTION_SEPARATOR + clean, last.start,
                             self._length, page, False, code=self._code, kind=kind)
            self._sections[-1] = joined
            return joined
        section = Section(clean_path, clean, start, self._length, page, is_table,
                          code=self._code, kind=kind)
        self._sections.append(section)
        return section

    def build(
        self,
        *,
        doc_id: str,
        title: str,
        source_file: str,
        doc_type: DocType,
        effective_date: str | None = None,
        version: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ParsedDocument:
        if not self._sections:
            raise ParseError("no text content found in the document")
        return ParsedDocument(
            doc_id=doc_id,
            title=normalise_line(title),
            source_file=source_file,
            doc_type=doc_type,
            text="".join(self._parts),
            sections=list(self._sections),
            effective_date=effective_date,
            version=version,
            metadata={k: v for k, v in (metadata or {}).items() if v},
        )
