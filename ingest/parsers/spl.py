"""FDA Structured Product Labeling (SPL) drug labels: HL7 v3 XML, urn:hl7-org:v3."""

from __future__ import annotations

import re
from datetime import date

from lxml import etree

from ingest.models import ParsedDocument, SourceFile
from ingest.parsers.builder import DocumentBuilder, normalise_line
from ingest.parsers.markup import (
    BR_MARK,
    Dialect,
    Element,
    add_blocks,
    collapse,
    inner_text,
    render_blocks,
)

NS = "urn:hl7-org:v3"
_V = {"v": NS}

PRODUCT_DATA_CODE = "48780-1"
UNCLASSIFIED_CODE = "42229-5"
PACKAGE_LABEL_CODE = "51945-4"
BOXED_WARNING_CODE = "34066-1"

# LOINC display names that title-case badly; the rest become e.g. "Storage And Handling".
_CODE_TITLES = {
    "42231-1": "Medication Guide",
    "42230-3": "Patient Package Insert",
    PACKAGE_LABEL_CODE: "Package Label - Principal Display Panel",
    BOXED_WARNING_CODE: "Boxed Warning",
    UNCLASSIFIED_CODE: "Unclassified",
}
# Document titles that name the format, not the product.
_GENERIC_TITLES = {"drug facts", "drug label", "label", "package insert"}

SPL_DIALECT = Dialect(
    blocks=frozenset({"paragraph", "caption"}),
    lists=frozenset({"list"}),
    items=frozenset({"item"}),
    skip=frozenset({"renderMultiMedia"}),
    footnote="footnote",
    footnote_ref="footnoteRef",
    numbering=lambda el: _numbering(el),
)
_STYLE_NUMBERING = {"littlealpha": "a", "bigalpha": "A", "littleroman": "i", "bigroman": "I"}


def _numbering(el: Element) -> str:
    if el.get("listType") != "ordered":
        return ""
    styles = (el.get("styleCode") or "").lower().split()
    return next((_STYLE_NUMBERING[s] for s in styles if s in _STYLE_NUMBERING), "1")


_BRAND_LINE = re.compile(r"^(?P<brand>[^()]+?)\s*\((?P<generic>[^()]+)\)\s*(?P<form>.*)$")
_MARKS = re.compile(r"[®™©]")


def is_spl(root: Element) -> bool:
    return root.tag == f"{{{NS}}}document"


def parse_spl(root: Element, source: SourceFile) -> ParsedDocument:
    builder = DocumentBuilder(join_continuations=True)
    panels: list[Element] = []
    for section in root.findall("v:component/v:structuredBody/v:component/v:section", _V):
        if _code(section) == PACKAGE_LABEL_CODE:
            panels.append(section)  # carton text is the least useful; keep it last
        else:
            _add_section(builder, section, ())
    for section in panels:
        _add_section(builder, section, ())
    products = _products(root)
    return builder.build(
        doc_id=f"spl:{_attr(root, 'v:setId', 'root') or source.path.stem}",
        title=_title(root, products) or source.path.stem,
        source_file=source.relpath,
        doc_type=source.doc_type,
        effective_date=_iso_date(_attr(root, "v:effectiveTime", "value")),
        version=_attr(root, "v:versionNumber", "value"),
        metadata=_metadata(root, products),
    )


def _add_section(
    builder: DocumentBuilder, section: Element, parent: tuple[str, ...],
    parent_code: str | None = None,
) -> None:
    if _code(section) == PRODUCT_DATA_CODE:
        return
    own = _code(section)
    # A label's boxed warning is one of its top-level sections. Coded inside another
    # section it is a box drawn around text there (haloperidol's adult dose ranges
    # inside Dosage and Administration; a cap's tamper-evident notice), and belongs
    # to that section: a boxed-warning question must not get dose ranges.
    if own == BOXED_WARNING_CODE and parent:
        own = UNCLASSIFIED_CODE
    title = _section_title(section, own, top_level=not parent)
    path = (*parent, title) if title else parent
    # A sub-section keeps its own LOINC code ("5.1 Serious Infections" is often coded
    # only as unclassified): the nearest classified one, so every chunk of Warnings
    # and Precautions says 43685-7.
    code = own if own and own != UNCLASSIFIED_CODE else parent_code or own or None
    with builder.scope(code=code):
        for highlight in section.findall("v:excerpt/v:highlight/v:text", _V):
            add_blocks(builder, (*path, "Highlights"), render_blocks(highlight, SPL_DIALECT))
        text = section.find("v:text", _V)
        if text is not None:
            add_blocks(builder, path, render_blocks(text, SPL_DIALECT))
    for child in section.findall("v:component/v:section", _V):
        _add_section(builder, child, path, code)


def _section_title(section: Element, code: str, *, top_level: bool) -> str:
    title = section.find("v:title", _V)
    if title is not None:
        text = normalise_line(inner_text(title))
        if text:
            return text
    # An untitled unclassified sub-section is a continuation of its parent, not a new topic.
    if code == UNCLASSIFIED_CODE and not top_level:
        return ""
    if code in _CODE_TITLES:
        return _CODE_TITLES[code]
    name = section.find("v:code", _V)
    display = name.get("displayName", "") if name is not None else ""
    display = re.sub(r"^SPL\s+|\s+SECTION$", "", display.strip(), flags=re.IGNORECASE)
    return display.title()


def _code(section: Element) -> str:
    code = section.find("v:code", _V)
    return code.get("code", "") if code is not None else ""


def _attr(root: Element, path: str, name: str) -> str | None:
    el = root.find(path, _V)
    value = el.get(name) if el is not None else None
    return value.strip() if value and value.strip() else None


def _iso_date(value: str | None) -> str | None:
    """HL7 TS values are yyyymmdd[hhmmss...]; anything else is not a date we can state."""
    if not value or not re.match(r"^\d{8}", value):
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8])).isoformat()
    except ValueError:
        return None


def _products(root: Element) -> list[tuple[str, str, str]]:
    """(name, generic name, dosage form) of each product the label lists."""
    out: list[tuple[str, str, str]] = []
    for product in root.iterfind(".//v:subject/v:manufacturedProduct/v:manufacturedProduct", _V):
        name = _text(product.find("v:name", _V))
        generic = _text(product.find("v:asEntityWithGeneric/v:genericMedicine/v:name", _V))
        form = product.find("v:formCode", _V)
        form_name = form.get("displayName", "") if form is not None else ""
        if name or generic:
            out.append((name, generic, form_name.lower()))
    return out


def _text(el: Element | None) -> str:
    return normalise_line(inner_text(el)) if el is not None else ""


def _title(root: Element, products: list[tuple[str, str, str]]) -> str:
    raw = root.find("v:title", _V)
    lines = _title_lines(raw) if raw is not None else []
    for line in lines:
        brand_line = _brand_line(line)
        if brand_line:
            return brand_line
    joined = normalise_line(" ".join(lines))
    if joined and not joined.lower().startswith("these highlights") and len(joined) <= 150:
        if joined.lower() not in _GENERIC_TITLES:
            return joined
    return _product_title(products)


def _title_lines(title: Element) -> list[str]:
    parts: list[str] = [title.text or ""]
    for el in title.iterdescendants():
        parts.append(BR_MARK if etree.QName(el).localname == "br" else (el.text or ""))
        parts.append(el.tail or "")
    return [line for line in collapse("".join(parts)).split("\n") if line]


def _brand_line(line: str) -> str:
    """'LIPITOR® (atorvastatin calcium) Tablets for oral administration' ->
    'LIPITOR (atorvastatin calcium) tablets'."""
    lowered = line.lower()
    if lowered.startswith(("these highlights", "initial u.s. approval", "see full")):
        return ""
    match = _BRAND_LINE.match(_MARKS.sub("", line))
    if not match:
        return ""
    form = re.split(r",|\bfor\b", match["form"], maxsplit=1)[0].strip().lower()
    return normalise_line(f"{match['brand']} ({match['generic']}) {form}")


def _product_title(products: list[tuple[str, str, str]]) -> str:
    if not products:
        return ""
    name, generic, form = products[0]
    if not name or name.lower() == generic.lower():
        return normalise_line(f"{name or generic} {form}")
    return normalise_line(f"{name} ({generic}) {form}" if generic else f"{name} {form}")


def _unique(values: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        if value and value.lower() not in seen:
            seen[value.lower()] = value
    return list(seen.values())


def _metadata(root: Element, products: list[tuple[str, str, str]]) -> dict[str, str]:
    generics = _unique([g for _, g, _ in products])
    brands = _unique([n for n, g, _ in products if n.lower() != g.lower()])
    manufacturer = root.find("v:author/v:assignedEntity/v:representedOrganization/v:name", _V)
    label_type = root.find("v:code", _V)
    return {
        "generic_names": ", ".join(generics),
        "brand_names": ", ".join(brands),
        "manufacturer": _text(manufacturer),
        "label_type": label_type.get("displayName", "") if label_type is not None else "",
        "set_id": _attr(root, "v:setId", "root") or "",
    }
