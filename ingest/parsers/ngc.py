"""National Guideline Clearinghouse (NGC) summaries: XML whose field values are escaped HTML.

The HTML is rendered with lxml.html, not unstructured's partition_html: partition_html
classifies every paragraph with spaCy (a ~10 s import pulling in torch, then ~1 s per
guideline here) only to tell "Text" from "NarrativeText", which this parser does not use,
and it flattens nested lists and bold sub-headings that lxml keeps.
"""

from __future__ import annotations

import re
from datetime import date

from lxml import etree, html

from ingest.models import ParsedDocument, ParseError, SourceFile
from ingest.parsers.builder import DocumentBuilder, normalise_line
from ingest.parsers.markup import (
    Block,
    Dialect,
    Element,
    add_blocks,
    collapse,
    inner_text,
    render_blocks,
)

HTML_DIALECT = Dialect(
    blocks=frozenset({"p", "div", "blockquote", "section", "article", "pre", "dd", "dt", "center"}),
    lists=frozenset({"ul", "ol", "dl"}),
    items=frozenset({"li"}),
    skip=frozenset({"script", "style", "head", "img"}),
    headings=frozenset({"h1", "h2", "h3", "h4", "h5", "h6"}),
    bold_headings=True,
    numbering=lambda el: (el.get("type") or "1") if el.tag == "ol" else "",
)

# Identical NGC boilerplate in every summary; it would only crowd out real passages.
_SKIPPED_SECTIONS = {"disclaimer"}
_TITLE_FIELD = "guideline title"
_DATE_FIELD = "date released"
_DEVELOPER_FIELD = "guideline developer(s)"

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_MARKER = re.compile(r"^\s*(?:[-*]|\w{1,4}\.)\s+")
_DATE = re.compile(r"(\d{4})(?:\s+([A-Za-z]{3})[a-z]*\.?(?:\s+(\d{1,2}))?)?")


def is_ngc(root: Element) -> bool:
    return root.tag == "Version" or root.find("Section/Field") is not None


def parse_ngc(root: Element, source: SourceFile) -> ParsedDocument:
    builder = DocumentBuilder()
    fields: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for section in root.iterfind("Section"):
        section_name = normalise_line(section.get("Name", ""))
        if section_name.lower() in _SKIPPED_SECTIONS:
            continue
        for field in section.iterfind("Field"):
            _add_field(builder, section_name, field, fields, seen)
    released = fields.get(_DATE_FIELD, "")
    return builder.build(
        doc_id=f"ngc:{source.path.stem}",
        title=fields.get(_TITLE_FIELD) or source.path.stem,
        source_file=source.relpath,
        doc_type=source.doc_type,
        effective_date=release_date(released),
        metadata={
            "date_released": released,
            "developer": fields.get(_DEVELOPER_FIELD, ""),
        },
    )


def _add_field(
    builder: DocumentBuilder,
    section_name: str,
    field: Element,
    fields: dict[str, str],
    seen: set[tuple[str, str]],
) -> None:
    name = normalise_line(field.get("Name", ""))
    values = [v.get("Value", "") for v in field.iterfind("FieldValue") if v.get("Value")]
    # NGC repeats some fields (the citation, the status) in a later section verbatim.
    key = (field.get("ID", name), "\x1f".join(values))
    if not values or key in seen:
        return
    seen.add(key)
    blocks = _field_blocks(values)
    fields.setdefault(name.lower(), _plain(blocks))
    with builder.scope(kind=field_kind(section_name, name)):
        add_blocks(builder, (section_name, name), blocks)


# NGC's summary template: what each section is for. The recommendations (and what
# qualifies them or forbids them) answer clinical questions; the administrative and
# bibliographic fields answer "when was it released, who wrote it, where is it" only.
_RECOMMENDATION_SECTIONS = {"recommendations", "contraindications", "regulatory alert",
                            "qualifying statements"}
_ADMIN_SECTIONS = {"general", "identifying information and availability", "neats assessment",
                   "institute of medicine (iom) national healthcare quality report categories"}
_ADMIN_FIELDS = {"guideline category", "clinical specialty", "intended users"}
_METHODS_SECTIONS = {"methodology"}


def field_kind(section_name: str, field_name: str) -> str:
    """"recommendation", "admin", "methods" or "section" for an NGC field."""
    section, field = section_name.lower(), field_name.lower()
    if section in _RECOMMENDATION_SECTIONS:
        return "recommendation"
    if section in _ADMIN_SECTIONS or field in _ADMIN_FIELDS:
        return "admin"
    if section in _METHODS_SECTIONS:
        return "methods"
    return "section"


def _field_blocks(values: list[str]) -> list[Block]:
    """One value is an HTML fragment; several are picklist choices, shown as a list."""
    if len(values) == 1:
        return html_blocks(values[0])
    items = [collapse(inner_text(html_fragment(v))) for v in values]
    return [Block("text", f"- {item}", tight=True) for item in items if item]


def _plain(blocks: list[Block]) -> str:
    """A field as one line for the title and metadata: list markers become "; "."""
    lines = [ln for b in blocks if b.kind != "table" for ln in b.text.split("\n")]
    return "; ".join(_MARKER.sub("", ln).strip() for ln in lines if ln.strip())


def html_fragment(markup: str) -> Element:
    try:
        fragment: Element = html.fragment_fromstring(markup, create_parent="div")
        return fragment
    except (etree.ParserError, ValueError) as exc:
        raise ParseError(f"unreadable HTML in a guideline field: {exc}") from exc


def html_blocks(markup: str) -> list[Block]:
    return render_blocks(html_fragment(markup), HTML_DIALECT)


def release_date(value: str) -> str | None:
    """'2013 Dec 20' -> 2013-12-20; '1999 May (revised 2014 Oct)' -> 2014-10-01.

    The revision is the version in force. A month or a year alone is dated to its first
    day; the exact wording stays in metadata["date_released"].
    """
    revised = re.search(r"revised\s+([^)]*)", value, flags=re.IGNORECASE)
    match = _DATE.search(revised.group(1) if revised else value)
    if not match:
        return None
    year, month_name, day = match.groups()
    month = _MONTHS.get((month_name or "jan").lower())
    if month is None:
        return None
    try:
        return date(int(year), month, int(day or 1)).isoformat()
    except ValueError:
        return None
