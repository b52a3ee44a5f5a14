"""Markdown and plain text: formulary pages, prior-authorisation criteria, coverage summaries.

Parsed line by line rather than with unstructured's partition_md, which renders to HTML and
then runs the same spaCy classifier as partition_html (see ngc.py) and loses tables' rows.
Besides Markdown headings, three plain-text heading styles found in the corpora are read:
`//Lipid Testing` (a title), `Indications:` / `**Clinical PA Criteria:**` (a label on its
own line) and `Analgesic Agents: **Gout**` (a drug class within a category).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from ingest.identity import split_version_suffix
from ingest.models import ParsedDocument, SourceFile
from ingest.parsers.builder import DocumentBuilder, normalise_line, relpath_stem
from ingest.parsers.markup import table_pieces

# Heading levels below any Markdown heading, for the plain-text heading styles.
_CLASS_LEVEL = 7
_LABEL_LEVEL = 8
_MAX_LABEL_WORDS = 6
_MAX_BOLD_LABEL_WORDS = 12
_LABEL_CONNECTORS = {"and", "of", "or", "for", "the", "to", "in", "with", "&", "a", "on", "by"}

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FRONT_DATE = re.compile(r"^(?:effective_date|date)\s*:\s*['\"]?(\d{4}-\d{2}-\d{2})", re.M)
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SLASH_TITLE = re.compile(r"^\s*/{2,}\s*(\S.*)$")
_SETEXT = re.compile(r"^ {0,3}(={2,}|-{2,})\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_CLASS_LINE = re.compile(r"^([^*:]{3,80}):\s*\*\*([^*]+)\*+\s*:?\s*$")
_BOLD_LABEL = re.compile(r"^\*\*([^*]{2,100}?):?\*\*\**\s*:?\s*$")
_PLAIN_LABEL = re.compile(r"^([A-Z][\w/&()' -]{1,60}):\s*$")
_ARROW_BULLET = re.compile(r"^(\s*)=>\s*")
_RULE = re.compile(r"^ {0,3}([-*_])(\s*\1){2,}\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)]|[A-Za-z][.)])")
_BARE_URL = re.compile(r"^\s*<?(https?://\S+?)>?\s*$")
# "**QL** – All colchicine products: 6 doses per claim ...", "**AR** - All drugs: a PA is
# required for patients younger than 40 years": a formulary flag's rule for the drugs
# named before the colon, a unit of its own (not the tail of the criteria above it).
_NOTE_FLAGS = "PA|QL|ST|AR|AL|BVG|SP"  # as the payers' legends write them ("BvG" too)
_FLAG_NOTE = re.compile(
    rf"^\*\*((?i:{_NOTE_FLAGS}))\*\*\s*[–—-]\s*([^:]{{2,120}}):\s*(\S.*)$")
_NOTE_HEADING = re.compile(rf"^({_NOTE_FLAGS}): \S")

_ESCAPABLE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>|=^~])")
_AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
_SUP = re.compile(r"[ \t]*<sup>(.*?)</sup>", re.I | re.S)
_BR = re.compile(r"<\s*/?\s*br\s*/?\s*>", re.I)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK_ANGLED = re.compile(r"\[([^\]]+)\]\(<[^>]*>(?:\s+\"[^\"]*\")?\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_ATTR_LIST = re.compile(r"\{\s*:[^}]*\}")
_MARKS = (
    re.compile(r"\*\*(.+?)\*\*"),
    re.compile(r"__(.+?)__"),
    re.compile(r"==(.+?)=="),
    re.compile(r"\^\^(.+?)\^\^"),
)


@dataclass
class _Heading:
    level: int
    text: str


@dataclass
class _Table:
    rows: list[list[str]]


@dataclass
class _Para:
    lines: list[str] = field(default_factory=list)


@dataclass
class _Note:
    """A flag's rule (`_FLAG_NOTE`): its heading names the flag and the drugs."""

    heading: str
    text: str


_Block = _Heading | _Table | _Para | _Note


def parse_markdown(text: str, source: SourceFile) -> ParsedDocument:
    body, front = _split_front_matter(text.replace("\r\n", "\n").replace("\r", "\n"))
    body, source_url = _split_source_url(body)
    blocks = _blocks(body.split("\n"))
    title = _title(blocks, source)
    builder = DocumentBuilder()
    _add_blocks(builder, blocks, title)
    date = _FRONT_DATE.search(front)
    return builder.build(
        doc_id=f"md:{relpath_stem(source.relpath)}",
        title=title,
        source_file=source.relpath,
        doc_type=source.doc_type,
        effective_date=date.group(1) if date else None,
        metadata={"source_url": source_url},
    )


def _split_front_matter(text: str) -> tuple[str, str]:
    match = _FRONT_MATTER.match(text)
    return (text[match.end() :], match.group(0)) if match else (text, "")


def _split_source_url(text: str) -> tuple[str, str]:
    """A bare URL as the last line is where the summary came from, not content."""
    lines = text.rstrip().split("\n")
    match = _BARE_URL.match(lines[-1]) if lines else None
    if match and len(lines) > 1:
        return "\n".join(lines[:-1]), match.group(1)
    return text, ""


def _blocks(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        i = _read_block(lines, i, blocks)
    return _title_from_first_line(_captions(blocks))


def _captions(blocks: list[_Block]) -> list[_Block]:
    """A short line standing alone right above a table names it ("Analgesic Agents:
    Gout" in the older drug-list pages): a heading for that table, so the table's rows
    keep their drug class in the section path."""
    out = list(blocks)
    for k, block in enumerate(out):
        if not isinstance(block, _Para) or len(block.lines) != 1:
            continue
        nxt = next((b for b in out[k + 1:] if not (isinstance(b, _Para) and not b.lines)), None)
        line = block.lines[0].strip()
        if isinstance(nxt, _Table) and _is_caption(line):
            out[k] = _Heading(_CLASS_LEVEL, line.rstrip(":"))
    return out


def _is_caption(line: str) -> bool:
    return (
        0 < len(line) <= 80 and len(line.split()) <= 10
        and not line.endswith((".", ";", ","))
        and not _LIST_ITEM.match(line)
    )


def _read_block(lines: list[str], i: int, blocks: list[_Block]) -> int:
    """Read the block starting at line i into `blocks`; return the next line's index."""
    line = lines[i]
    if not line.strip() or _RULE.match(line):
        blocks.append(_Para())  # a paragraph break
        return i + 1
    fence = _FENCE.match(line)
    if fence:
        return _read_fence(lines, i, fence.group(1), blocks)
    if _is_table_start(lines, i):
        return _read_table(lines, i, blocks)
    heading = _heading(line)
    if heading:
        blocks.append(heading)
        return i + 1
    note = _FLAG_NOTE.match(line.strip())
    if note:
        blocks.append(_Note(note_heading(note.group(1), clean_inline(note.group(2))),
                            clean_inline(line.strip())))
        return i + 1
    if i + 1 < len(lines) and _SETEXT.match(lines[i + 1]) and _starts_paragraph(blocks):
        level = 1 if lines[i + 1].strip().startswith("=") else 2
        blocks.append(_Heading(level, clean_inline(line)))
        return i + 2
    if not blocks or not isinstance(blocks[-1], _Para):
        blocks.append(_Para())
    last = blocks[-1]
    assert isinstance(last, _Para)
    last.lines.append(clean_inline(_ARROW_BULLET.sub(r"\1- ", line)))
    return i + 1


def note_heading(flag: str, subject: str) -> str:
    """The heading of a flag's rule: "QL: All colchicine products"."""
    return f"{flag.upper()}: {subject}"


def note_flag(heading: str) -> str | None:
    """The flag of a section headed by `note_heading`, else None."""
    match = _NOTE_HEADING.match(heading)
    return match.group(1) if match else None


def _starts_paragraph(blocks: list[_Block]) -> bool:
    # A setext underline turns only a one-line paragraph into a heading.
    return not blocks or not isinstance(blocks[-1], _Para) or not blocks[-1].lines


def _heading(line: str) -> _Heading | None:
    atx = _ATX.match(line)
    if atx:
        return _Heading(len(atx.group(1)), clean_inline(atx.group(2)))
    slash = _SLASH_TITLE.match(line)
    if slash:
        return _Heading(1, clean_inline(slash.group(1)))
    match = _CLASS_LINE.match(line.strip())
    if match and len(line) <= 120:
        return _Heading(_CLASS_LEVEL, clean_inline(match.group(2)).rstrip("*: "))
    label = _label(line.strip())
    return _Heading(_LABEL_LEVEL, label) if label else None


def _label(line: str) -> str:
    """'Indications:' or '**Clinical PA Criteria:**' alone on a line, in title case."""
    bold = _BOLD_LABEL.match(line)
    match = bold or _PLAIN_LABEL.match(line)
    if not match:
        return ""
    words = clean_inline(match.group(1)).split()
    # A whole bold line is plainly meant as a heading; a plain "Xxx:" only when short.
    if not 1 <= len(words) <= (_MAX_BOLD_LABEL_WORDS if bold else _MAX_LABEL_WORDS):
        return ""
    return " ".join(words) if all(_title_word(w) for w in words) else ""


def _title_word(word: str) -> bool:
    first = next((ch for ch in word if ch.isalnum()), "")
    if not first:
        return True  # "-", "&", "/"
    return first.isupper() or first.isdigit() or word.lower() in _LABEL_CONNECTORS


def _read_fence(lines: list[str], i: int, marker: str, blocks: list[_Block]) -> int:
    end = i + 1
    while end < len(lines) and not lines[end].strip().startswith(marker):
        end += 1
    blocks.append(_Para(lines[i + 1 : end]))
    blocks.append(_Para())
    return end + 1


def _is_table_start(lines: list[str], i: int) -> bool:
    return (
        "|" in lines[i]
        and i + 1 < len(lines)
        and bool(_TABLE_SEPARATOR.match(lines[i + 1]))
        and "|" in lines[i + 1]
    )


def _read_table(lines: list[str], i: int, blocks: list[_Block]) -> int:
    rows = [_cells(lines[i])]
    end = i + 2
    while end < len(lines) and "|" in lines[end] and lines[end].strip():
        rows.append(_cells(lines[end]))
        end += 1
    blocks.append(_Table(rows))
    return end


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [clean_inline(c.replace("\\|", "|")) for c in re.split(r"(?<!\\)\|", body)]


def _title_from_first_line(blocks: list[_Block]) -> list[_Block]:
    """A short first line standing alone, in a file with no heading first, is its title."""
    first = next(
        (k for k, b in enumerate(blocks) if not (isinstance(b, _Para) and not b.lines)), None
    )
    if first is None or not isinstance(blocks[first], _Para):
        return blocks
    para = blocks[first]
    assert isinstance(para, _Para)
    has_more = any(not isinstance(b, _Para) or b.lines for b in blocks[first + 1 :])
    if len(para.lines) != 1 or not has_more:
        return blocks
    line = para.lines[0].strip()
    if len(line) <= 80 and len(line.split()) <= 12 and not line.endswith((".", ":", ";", ",")):
        blocks[first] = _Heading(1, line)
    return blocks


def clean_inline(text: str) -> str:
    """Markdown/HTML inline markup to plain text; link text stays, URLs go."""
    protected = _ESCAPABLE.sub(lambda m: chr(0xE000 + ord(m.group(1))), text)
    protected = _AUTOLINK.sub(r"\1", protected)
    protected = _SUP.sub(
        lambda m: f" ({_strip_marks(_TAG.sub('', m.group(1))).strip()})", protected
    )
    protected = _BR.sub(" ", protected)
    protected = _IMAGE.sub(r"\1", protected)
    protected = _LINK_ANGLED.sub(r"\1", protected)
    protected = _LINK.sub(r"\1", protected)
    protected = _TAG.sub("", protected)
    protected = _ATTR_LIST.sub("", protected)
    protected = _strip_marks(protected)
    restored = re.sub("[\ue000-\ue07f]", lambda m: chr(ord(m.group(0)) - 0xE000), protected)
    return html.unescape(restored).rstrip()


def _strip_marks(text: str) -> str:
    for pattern in _MARKS:
        text = pattern.sub(r"\1", text)
    return text


def _add_blocks(builder: DocumentBuilder, blocks: list[_Block], title: str) -> None:
    stack: list[_Heading] = []
    paragraphs: list[str] = []

    def path() -> tuple[str, ...]:
        # Text before any heading still needs a path to show with a citation.
        return tuple(h.text for h in stack) or (title,)

    def flush() -> None:
        builder.add(path(), "\n\n".join(p for p in paragraphs if p.strip()))
        paragraphs.clear()

    for block in blocks:
        if isinstance(block, _Heading):
            flush()
            stack = [h for h in stack if h.level < block.level] + [block]
        elif isinstance(block, _Table):
            flush()
            for piece in _table_texts(block):
                builder.add(path(), piece, is_table=True)
        elif isinstance(block, _Note):
            flush()
            # Beside the criteria labels it follows ("Subsequent Authorization
            # Criteria"), not under them: the rule is the drug class's own.
            outer = tuple(h.text for h in stack if h.level < _LABEL_LEVEL) or (title,)
            builder.add((*outer, block.heading), block.text)
        elif block.lines:
            paragraphs.append("\n".join(block.lines))
    flush()


def _table_texts(table: _Table) -> list[str]:
    header, *body = table.rows
    return table_pieces([header], body)


def _title(blocks: list[_Block], source: SourceFile) -> str:
    heading = next((b for b in blocks if isinstance(b, _Heading) and b.level == 1), None)
    if heading and heading.text:
        return heading.text
    first = next(
        (b for b in blocks if isinstance(b, _Heading) or (isinstance(b, _Para) and b.lines)),
        None,
    )
    # Only a paragraph that opens the document can stand for its title.
    line = normalise_line(first.lines[0]) if isinstance(first, _Para) else ""
    if line and len(line) <= 100 and not line.endswith((".", ":", ";")):
        if not _LIST_ITEM.match(line):
            return line
    return _humanise(split_version_suffix(source.path.stem)[0])


def _humanise(stem: str) -> str:
    """'Diagnostic_Pap_Smears' -> 'Diagnostic Pap Smears'; 'LipidTesting' -> 'Lipid Testing'."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem.replace("_", " "))
    return normalise_line(spaced)
