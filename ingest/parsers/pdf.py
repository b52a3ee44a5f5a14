"""PDF documents, read page by page with pypdf; headings are found from font sizes and faces.

unstructured's partition_pdf(strategy="fast") was tried on the CDC guide: it needs eight
more packages (opencv, onnxruntime, matplotlib, ...), takes ~20 s to import and ~13 s to
parse, tags line fragments of body text as "Title", and interleaves two-column pages. pypdf
keeps the publisher's reading order and reports each run's font, which marks real headings.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PdfStreamError

from ingest.models import ParsedDocument, ParseError, SourceFile
from ingest.parsers.builder import DocumentBuilder, normalise_line, relpath_stem

_LIGATURES = str.maketrans({"ﬁ": "fi", "ﬂ": "fl", "ﬀ": "ff", "ﬃ": "ffi", "ﬄ": "ffl"})
_LIST_MARKER = re.compile(r"^\s*(?:[•❑▪■●○◦–\-*]|\(?\d{1,2}[.)]|\(?[a-zA-Z][.)])\s")
_SUBSET_PREFIX = re.compile(r"^[A-Z]{6}\+")
_LETTERS = re.compile(r"[A-Za-z]")
_USELESS_TITLES = re.compile(r"^(untitled|microsoft word|document\d*)\b|\.(docx?|indd|pdf)$", re.I)

# A line repeated at the top or bottom of this share of pages is a running header/footer.
_RUNNING_SHARE = 0.25
_MARGIN_SHARE = 0.1
_MAX_HEADING_CHARS = 200
_MAX_HEADING_LINES = 4
_CHAPTER_RATIO = 1.3


@dataclass
class _Line:
    text: str = ""
    y: float = 0.0
    size: float = 0.0
    # Characters per font face, to tell a heading line from body text with a bold word.
    fonts: Counter[str] = field(default_factory=Counter)
    placed: bool = False

    @property
    def font(self) -> str:
        return self.fonts.most_common(1)[0][0] if self.fonts else ""


@dataclass(frozen=True)
class _Style:
    body_family: str
    body_size: float
    levels: dict[float, int]  # heading font size -> depth, 0 for chapter titles

    def is_heading(self, line: _Line) -> bool:
        return _is_heading(line, self.body_family, self.body_size)


@dataclass
class _Page:
    number: int
    height: float
    lines: list[_Line]


def parse_pdf(data: bytes, source: SourceFile) -> ParsedDocument:
    reader = _open(data)
    pages = [_read_page(reader, i) for i in range(len(reader.pages))]
    if not any(line.text.strip() for page in pages for line in page.lines):
        raise ParseError("PDF has no extractable text (a scanned image? OCR is not supported)")
    _drop_running_lines(pages)
    style = _style(pages)
    builder = DocumentBuilder()
    first_heading = _add_pages(builder, pages, style)
    return builder.build(
        doc_id=f"pdf:{relpath_stem(source.relpath)}",
        title=_title(reader, first_heading) or source.path.stem,
        source_file=source.relpath,
        doc_type=source.doc_type,
        metadata=_metadata(reader, len(pages)),
    )


def _open(data: bytes) -> PdfReader:
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise ParseError("not a PDF file (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("PDF is encrypted (password-protected); supply an unprotected copy")
        if len(reader.pages) == 0:
            raise ParseError("PDF has no pages")
    except ParseError:
        raise
    except (FileNotDecryptedError, DependencyError) as exc:
        raise ParseError(f"PDF is encrypted and cannot be decrypted: {exc}") from exc
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ParseError(f"corrupt or unreadable PDF: {exc}") from exc
    return reader


def _read_page(reader: PdfReader, index: int) -> _Page:
    page = reader.pages[index]
    lines: list[_Line] = [_Line()]

    def visit(
        text: str, cm: list[float], tm: list[float], font: dict[str, Any] | None, size: float
    ) -> None:
        # pypdf hands every piece of its own extract_text() output here, newlines included.
        for n, part in enumerate(text.split("\n")):
            if n:
                lines.append(_Line())
            _place(lines[-1], part, cm, tm, font, size)

    try:
        page.extract_text(visitor_text=visit)
        height = float(page.mediabox.height)
    except Exception as exc:  # pypdf raises many kinds on damaged content streams
        raise ParseError(f"corrupt or unreadable PDF (page {index + 1}): {exc}") from exc
    kept = [line for line in lines if line.text.strip()]
    return _Page(index + 1, height, kept)


def _place(
    line: _Line,
    text: str,
    cm: list[float],
    tm: list[float],
    font: dict[str, Any] | None,
    size: float,
) -> None:
    line.text += text
    visible = len(text.strip())
    if not visible:
        return
    name = _SUBSET_PREFIX.sub("", str(font.get("/BaseFont", "")).lstrip("/")) if font else ""
    line.fonts[name] += visible
    effective = abs(size * tm[3] * cm[3]) or abs(size * tm[0] * cm[0])
    line.size = max(line.size, round(effective, 1))
    if not line.placed:
        _, b, _, d, _, f = cm
        line.y = b * tm[4] + d * tm[5] + f  # baseline in page space
        line.placed = True


def _running_key(line: _Line) -> str:
    # Letters only: "Version 2.3- September" and "Version 2.3 - September" are one footer.
    return re.sub(r"[^a-z]", "", line.text.lower())


def _in_margin(line: _Line, height: float) -> bool:
    return line.y < height * _MARGIN_SHARE or line.y > height * (1 - _MARGIN_SHARE)


def _drop_running_lines(pages: list[_Page]) -> None:
    """Remove page numbers and running headers/footers, which would split sentences."""
    counts: Counter[str] = Counter()
    for page in pages:
        counts.update({_running_key(ln) for ln in page.lines if _in_margin(ln, page.height)})
    threshold = max(3, int(len(pages) * _RUNNING_SHARE))
    for page in pages:
        page.lines = [
            ln
            for ln in page.lines
            if not (
                _in_margin(ln, page.height)
                and (counts[_running_key(ln)] >= threshold or not _running_key(ln))
            )
        ]


def _family(font: str) -> str:
    return font.split("-")[0].split(",")[0].lower()


def _style(pages: list[_Page]) -> _Style:
    """The commonest (face, size) is body text. Headings 1.3x body size or more are chapter
    titles (level 0) whatever their exact size, since designers vary those per chapter; the
    smaller heading sizes are levels 1, 2, ... from the largest down."""
    styles: Counter[tuple[str, float]] = Counter()
    for page in pages:
        for line in page.lines:
            styles[(_family(line.font), line.size)] += len(line.text)
    (family, size), _ = styles.most_common(1)[0]
    heading_sizes = {
        ln.size for page in pages for ln in page.lines if _is_heading(ln, family, size)
    }
    minor = sorted((s for s in heading_sizes if s < size * _CHAPTER_RATIO), reverse=True)
    levels = {s: 0 for s in heading_sizes} | {s: rank for rank, s in enumerate(minor, 1)}
    return _Style(family, size, levels)


def _is_heading(line: _Line, body_family: str, body_size: float) -> bool:
    text = line.text.strip()
    if len(_LETTERS.findall(text)) < 3 or len(text) > _MAX_HEADING_CHARS:
        return False
    if _LIST_MARKER.match(text):
        return False
    # Body text with a bold run mixes faces; a heading is set wholly in one.
    if line.fonts[line.font] < 0.9 * sum(line.fonts.values()):
        return False
    if line.size >= body_size + 1:
        return True
    return line.size >= body_size - 0.5 and _family(line.font) != body_family


@dataclass
class _Heading:
    level: int
    text: str


def _page_items(page: _Page, style: _Style) -> list[_Heading | _Line]:
    """Group runs of heading-styled lines into headings. A run that starts mid-paragraph or
    is long is body text set in a display face (a callout, a reference), not a heading."""
    items: list[_Heading | _Line] = []
    run: list[_Line] = []
    previous: _Line | None = None

    def close_run() -> None:
        text = normalise_line(" ".join(ln.text for ln in run))
        if run and len(run) <= _MAX_HEADING_LINES and len(text) <= _MAX_HEADING_CHARS:
            items.append(_Heading(style.levels[run[0].size], text))
        else:
            items.extend(run)
        run.clear()

    for line in page.lines:
        heading = style.is_heading(line)
        continues_run = heading and run and style.levels[line.size] == style.levels[run[0].size]
        if not continues_run:
            close_run()
        if continues_run or (heading and (previous is None or _starts_paragraph(line, previous))):
            run.append(line)
        else:
            items.append(line)
        previous = line
    close_run()
    return items


def _add_pages(builder: DocumentBuilder, pages: list[_Page], style: _Style) -> str:
    """Add one section per (heading path, page); returns the document's first heading."""
    stack: list[_Heading] = []
    first_heading = ""
    for page in pages:
        paragraphs: list[str] = []
        previous: _Line | None = None
        for item in _page_items(page, style):
            if isinstance(item, _Heading):
                _flush(builder, stack, paragraphs, page.number)
                stack = [h for h in stack if h.level < item.level] + [item]
                first_heading = first_heading or item.text
                previous = None
                continue
            _append_line(paragraphs, item, previous)
            previous = item
        _flush(builder, stack, paragraphs, page.number)
    return first_heading


def _append_line(paragraphs: list[str], line: _Line, previous: _Line | None) -> None:
    text = " ".join(line.text.translate(_LIGATURES).split())
    if not paragraphs or previous is None or _starts_paragraph(line, previous):
        paragraphs.append(text)
    elif _LIST_MARKER.match(text):
        paragraphs[-1] += "\n" + text
    elif _continues_word(paragraphs[-1], text):
        paragraphs[-1] += text
    else:
        paragraphs[-1] += " " + text


def _continues_word(before: str, after: str) -> bool:
    """A word broken at a hyphen, or a URL broken after '/', '.' or '_', joins with no space."""
    if before.endswith("-") and before[-2:-1].isalpha():
        return True
    last = before.rsplit(" ", 1)[-1]
    return (
        ("://" in last or last.startswith("www.")) and last[-1:] in "/._" and " " not in after[:1]
    )


def _starts_paragraph(line: _Line, previous: _Line) -> bool:
    gap = previous.y - line.y
    # Moving up means a new column or text frame; a wide gap is a paragraph break.
    return gap < 0 or gap > 1.6 * max(line.size, previous.size, 1.0)


def _flush(
    builder: DocumentBuilder, stack: list[_Heading], paragraphs: list[str], page: int
) -> None:
    if not paragraphs:
        return
    path = tuple(h.text for h in stack) or (f"Page {page}",)
    builder.add(path, "\n\n".join(paragraphs), page=page)
    paragraphs.clear()


def _info(reader: PdfReader, field: str) -> str:
    try:
        info = reader.metadata
        value = getattr(info, field, None) if info is not None else None
    except Exception:  # damaged info dictionaries are common and not worth failing over
        return ""
    return normalise_line(str(value or ""))


def _title(reader: PdfReader, first_heading: str) -> str:
    meta_title = _info(reader, "title")
    if meta_title and not _USELESS_TITLES.search(meta_title):
        return meta_title
    return first_heading


def _metadata(reader: PdfReader, page_count: int) -> dict[str, str]:
    return {"author": _info(reader, "author"), "pages": str(page_count)}
