"""Turns block/inline markup trees (HTML, HL7 SPL narrative) into paragraphs, lists and tables.

SPL `<text>` and NGC's HTML share the same shape (paragraphs, nested lists, tables, inline
runs), so one renderer serves both; a `Dialect` names the tags.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

from ingest.parsers.builder import DocumentBuilder

MAX_TABLE_CHARS = 2500

BlockKind = Literal["text", "heading", "table"]
Element = etree._Element

# A marker for <br/> that survives whitespace collapsing.
BR_MARK = "\x00"
_WS = re.compile(r"\s+")
# Markup indentation leaves "(12) , and" / "( see"; a reader sees no space there.
_SPACE_BEFORE_CLOSE = re.compile(r" +([,;)\]])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[]) +")
_NUMERIC_SUP = re.compile(r"^[-−+]?\d+$")


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str
    # List items are "tight": joined to the previous tight block by one newline, not two.
    tight: bool = False


@dataclass(frozen=True)
class Dialect:
    blocks: frozenset[str]
    lists: frozenset[str]
    items: frozenset[str]
    skip: frozenset[str]
    headings: frozenset[str] = frozenset()
    table: str = "table"
    br: str = "br"
    footnote: str | None = None
    footnote_ref: str | None = None
    # Whether a paragraph that is entirely bold reads as a sub-heading (HTML guidelines do this).
    bold_headings: bool = False
    # Numbering of a list: "" for bullets, else "1", "a", "A", "i" or "I".
    numbering: Callable[[Element], str] = lambda el: ""


def local_name(el: Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def inner_text(el: Element) -> str:
    """All text inside `el`, tags dropped (inline runs join without added spaces)."""
    return "".join(str(t) for t in el.itertext())


def collapse(text: str) -> str:
    """Inline whitespace (source indentation included) becomes single spaces; <br/> a newline."""
    lines = (_WS.sub(" ", part).strip() for part in text.split(BR_MARK))
    text = "\n".join(line for line in lines if line)
    return _SPACE_AFTER_OPEN.sub(r"\1", _SPACE_BEFORE_CLOSE.sub(r"\1", text))


def list_marker(numbering: str, n: int) -> str:
    if numbering in ("a", "A"):
        letter = chr(ord("a") + (n - 1) % 26)
        return (letter.upper() if numbering == "A" else letter) + "."
    if numbering in ("i", "I"):
        roman = _roman(n)
        return (roman.upper() if numbering == "I" else roman) + "."
    return f"{n}." if numbering else "-"


def _roman(n: int) -> str:
    out = ""
    for value, digits in ((10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")):
        while n >= value:
            out += digits
            n -= value
    return out


def pipe_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"


def table_pieces(
    header: Sequence[Sequence[str]],
    body: Sequence[Sequence[str]],
    *,
    caption: str = "",
    notes: Sequence[str] = (),
    max_chars: int = MAX_TABLE_CHARS,
) -> list[str]:
    """Render a table as pipe rows; a long one is split by rows, repeating caption and header
    in every piece so each piece still says what its columns mean."""
    head = [caption] if caption else []
    head += [pipe_row(r) for r in header]
    if header:
        head.append(pipe_row(["---"] * max(len(r) for r in header)))
    rows = [pipe_row(r) for r in body if any(c.strip() for c in r)]
    fixed = len("\n".join([*head, *notes])) + 1
    pieces: list[list[str]] = [[]]
    size = fixed
    for row in rows:
        if pieces[-1] and size + len(row) + 1 > max_chars:
            pieces.append([])
            size = fixed
        pieces[-1].append(row)
        size += len(row) + 1
    return ["\n".join([*head, *piece, *notes]) for piece in pieces]


@dataclass
class _Footnotes:
    notes: list[str] = field(default_factory=list)
    by_id: dict[str, int] = field(default_factory=dict)


class _Renderer:
    def __init__(self, dialect: Dialect, footnotes: _Footnotes | None = None) -> None:
        self.d = dialect
        self.blocks: list[Block] = []
        self.buf: list[str] = []
        self.prefix: str | None = None  # list marker still to print for the current item
        self.cont = ""  # indentation of an item's later lines
        self.depth = 0
        self.footnotes = footnotes if footnotes is not None else _Footnotes()

    def render(self, root: Element) -> list[Block]:
        self._children(root)
        self._flush()
        return self.blocks

    def _children(self, el: Element) -> None:
        if el.text:
            self.buf.append(el.text)
        for child in el:
            self._visit(child)
            if child.tail:
                self.buf.append(child.tail)

    def _visit(self, el: Element) -> None:
        tag = local_name(el)
        if not tag or tag in self.d.skip:
            return
        if tag == self.d.br:
            self.buf.append(BR_MARK)
        elif tag == self.d.table:
            self._flush()
            self._table(el)
        elif tag in self.d.lists:
            self._flush()
            self._list(el)
        elif tag in self.d.headings or (tag in self.d.blocks and self._is_bold_heading(el)):
            self._flush()
            text = collapse(inner_text(el))
            if text:
                self.blocks.append(Block("heading", text))
        elif tag in self.d.blocks:
            self._flush()
            self._children(el)
            self._flush()
        elif tag == self.d.footnote:
            self.buf.append(self._footnote(el))
        elif tag == self.d.footnote_ref:
            number = self.footnotes.by_id.get(el.get("IDREF", ""))
            self.buf.append(f"[{number}]" if number else "")
        elif tag == "sup":
            self._sup(el)
        else:
            self._children(el)

    def _flush(self) -> None:
        text = collapse("".join(self.buf))
        self.buf.clear()
        if not text:
            return
        if self.prefix is None:
            self.blocks.append(Block("text", text))
            return
        lines = text.split("\n")
        first = self.prefix + lines[0]
        rest = [self.cont + line for line in lines[1:]]
        self.blocks.append(Block("text", "\n".join([first, *rest]), tight=True))
        self.prefix = self.cont

    def _list(self, el: Element) -> None:
        numbering = self.d.numbering(el)
        number = 0
        self.depth += 1
        for child in el:
            if local_name(child) in self.d.items:
                number += 1
                self._item(child, list_marker(numbering, number))
            else:
                self._visit(child)
                if child.tail:
                    self.buf.append(child.tail)
        self._flush()
        self.depth -= 1

    def _item(self, el: Element, marker: str) -> None:
        saved = (self.prefix, self.cont)
        indent = "  " * (self.depth - 1)
        self.prefix, self.cont = f"{indent}{marker} ", indent + "  "
        self._children(el)
        self._flush()
        self.prefix, self.cont = saved

    def _is_bold_heading(self, el: Element) -> bool:
        if not self.d.bold_headings or self.prefix is not None:
            return False
        if any(
            local_name(d) in self.d.blocks | self.d.lists | {self.d.table}
            for d in el.iterdescendants()
        ):
            return False
        full = inner_text(el)
        squeezed = _WS.sub("", full)
        if not squeezed or len(full.strip()) > 150:
            return False
        bold = "".join(inner_text(b) for b in el.iterdescendants("strong", "b"))
        return _WS.sub("", bold) == squeezed

    def _sup(self, el: Element) -> None:
        text = collapse(inner_text(el))
        before = "".join(self.buf).rstrip(BR_MARK)
        # "10<sup>9</sup>/L" must not read as "109/L".
        if _NUMERIC_SUP.match(text) and before[-1:].isdigit():
            self.buf.append("^" + text)
        else:
            self._children(el)

    def _footnote(self, el: Element) -> str:
        sub = _Renderer(self.d, self.footnotes)
        text = " ".join(b.text for b in sub.render(el))
        self.footnotes.notes.append(text)
        number = len(self.footnotes.notes)
        if el.get("ID"):
            self.footnotes.by_id[el.get("ID", "")] = number
        return f"[{number}]"

    def _table(self, el: Element) -> None:
        footnotes = _Footnotes()
        caption = ""
        header: list[list[str]] = []
        body: list[list[str]] = []
        for part in el:
            tag = local_name(part)
            if tag == "caption":
                caption = self._cell(part, footnotes)
            elif tag == "thead":
                header += [self._row(tr, footnotes) for tr in _rows(part)]
            elif tag in ("tbody", "tfoot", "tr"):
                body += [self._row(tr, footnotes) for tr in _rows(part)]
        if not header:
            header, body = _leading_header_rows(el, body)
        if all(sum(1 for c in row if c) <= 1 for row in [*header, *body]):
            self._layout_table(caption, [*header, *body], footnotes)
            return
        notes = [f"[{i}] {text}" for i, text in enumerate(footnotes.notes, 1)]
        for piece in table_pieces(header, body, caption=caption, notes=notes):
            self.blocks.append(Block("table", piece))

    def _layout_table(self, caption: str, rows: list[list[str]], footnotes: _Footnotes) -> None:
        """A one-column "table" is page layout (a boxed note), so it reads as paragraphs."""
        texts = [caption, *(" ".join(c for c in row if c) for row in rows)]
        texts += [f"[{i}] {t}" for i, t in enumerate(footnotes.notes, 1)]
        self.blocks += [Block("text", t) for t in texts if t]

    def _row(self, tr: Element, footnotes: _Footnotes) -> list[str]:
        cells: list[str] = []
        for cell in tr:
            if local_name(cell) not in ("td", "th"):
                continue
            cells.append(self._cell(cell, footnotes))
            span = cell.get("colspan", "1")
            cells += [""] * (int(span) - 1 if span.isdigit() and int(span) > 1 else 0)
        return cells

    def _cell(self, cell: Element, footnotes: _Footnotes) -> str:
        blocks = _Renderer(self.d, footnotes).render(cell)
        return " ".join(b.text.replace("\n", " ") for b in blocks)


def _rows(part: Element) -> list[Element]:
    return [part] if local_name(part) == "tr" else [r for r in part if local_name(r) == "tr"]


def _leading_header_rows(
    table: Element, body: list[list[str]]
) -> tuple[list[list[str]], list[list[str]]]:
    """Without <thead>, leading rows made only of <th> cells are the header."""
    trs = [tr for part in table for tr in _rows(part) if local_name(part) != "thead"]
    count = 0
    for tr in trs:
        cells = [c for c in tr if local_name(c) in ("td", "th")]
        if not cells or any(local_name(c) != "th" for c in cells):
            break
        count += 1
    return body[:count], body[count:]


def render_blocks(root: Element, dialect: Dialect) -> list[Block]:
    """Render `root`'s content (not its tail); footnotes outside tables come last."""
    renderer = _Renderer(dialect)
    blocks = renderer.render(root)
    if renderer.footnotes.notes:
        notes = "\n".join(f"[{i}] {t}" for i, t in enumerate(renderer.footnotes.notes, 1))
        blocks.append(Block("text", notes))
    return blocks


def add_blocks(
    builder: DocumentBuilder,
    path: tuple[str, ...],
    blocks: Sequence[Block],
    page: int | None = None,
) -> None:
    """Consecutive text blocks form one section; every table piece is its own section.

    A heading opens a sub-path. Headings with nothing between them nest (a part title then
    its first sub-title); a heading after content replaces them all, because plain HTML
    does not say how deep a bold paragraph sits.
    """
    headings: list[str] = []
    pending: list[str] = []
    open_heading = False
    prev_tight = False

    def flush() -> None:
        if pending:
            builder.add((*path, *headings), "".join(pending), page=page)
            pending.clear()

    for block in blocks:
        if block.kind == "heading":
            flush()
            headings = [*headings, block.text] if open_heading else [block.text]
            open_heading = True
            continue
        open_heading = False
        if block.kind == "table":
            flush()
            builder.add((*path, *headings), block.text, page=page, is_table=True)
            continue
        if pending:
            pending.append("\n" if block.tight and prev_tight else "\n\n")
        pending.append(block.text)
        prev_tight = block.tight
    flush()
