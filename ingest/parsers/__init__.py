"""Turn one source file into a `ParsedDocument`: pick the parser by extension and content."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from lxml import etree

from ingest.models import ParsedDocument, ParseError, SourceFile
from ingest.parsers.cms_formulary import is_drug_list, parse_cms_drugs
from ingest.parsers.generic import parse_generic
from ingest.parsers.markdown import parse_markdown
from ingest.parsers.ngc import is_ngc, parse_ngc
from ingest.parsers.pdf import parse_pdf
from ingest.parsers.spl import is_spl, parse_spl

__all__ = ["parse_file", "ParseError"]

Parser = Callable[[bytes, SourceFile], ParsedDocument]


def parse_file(source: SourceFile, max_bytes: int) -> ParsedDocument:
    """Parse `source.path`; every failure is a ParseError whose message says why."""
    parser = _PARSERS.get(source.path.suffix.lower())
    if parser is None:
        suffix = source.path.suffix or "(no extension)"
        raise ParseError(f"unsupported file type {suffix}")
    data = _read(source, max_bytes)
    document = parser(data, source)
    return _with_source_defaults(document, source)


def _read(source: SourceFile, max_bytes: int) -> bytes:
    try:
        size = source.path.stat().st_size
        if size > max_bytes:
            raise ParseError(f"file is {size} bytes, over the limit of {max_bytes}")
        with source.path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:  # it grew while we looked
        raise ParseError(f"file is over {max_bytes} bytes, the limit")
    if not data.strip():
        raise ParseError("empty file")
    return data


def _with_source_defaults(document: ParsedDocument, source: SourceFile) -> ParsedDocument:
    """The manifest's type always applies; its effective date only where the file has none."""
    stated = document.effective_date is not None
    return replace(
        document,
        doc_type=source.doc_type,
        effective_date=document.effective_date if stated else source.effective_date,
        metadata={
            **document.metadata,
            **(
                {"effective_date_from": "document" if stated else "manifest"}
                if stated or source.effective_date
                else {}
            ),
        },
    )


def _parse_xml(data: bytes, source: SourceFile) -> ParsedDocument:
    # No entity expansion or network access: uploaded XML is untrusted.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ParseError(f"invalid XML: {exc}") from exc
    if is_spl(root):
        return parse_spl(root, source)
    if is_ngc(root):
        return parse_ngc(root, source)
    raise ParseError(
        f"unrecognised XML (root element <{etree.QName(root).localname}>): "
        "neither an FDA SPL drug label nor an NGC guideline summary"
    )


def _parse_json(data: bytes, source: SourceFile) -> ParsedDocument:
    try:
        content = json.loads(_decode(data))
    except ValueError as exc:
        raise ParseError(f"invalid JSON: {exc}") from exc
    if isinstance(content, dict) and "resourceType" in content:
        raise ParseError(f"FHIR {content['resourceType']} found: patient records are never indexed")
    if is_drug_list(content):
        return parse_cms_drugs(content, source)
    raise ParseError("unrecognised JSON: not a CMS QHP drugs.json list of drugs with plans")


def _parse_text(data: bytes, source: SourceFile) -> ParsedDocument:
    return parse_markdown(_decode(data), source)


def _decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise ParseError("binary content where text was expected")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Office exports are often Windows-1252; anything else is better refused than garbled.
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ParseError(f"text is neither UTF-8 nor Windows-1252: {exc}") from exc


_PARSERS: dict[str, Parser] = {
    ".xml": _parse_xml,
    ".pdf": parse_pdf,
    ".md": _parse_text,
    ".markdown": _parse_text,
    ".txt": _parse_text,
    ".json": _parse_json,
    ".html": parse_generic,
    ".htm": parse_generic,
    ".docx": parse_generic,
}
