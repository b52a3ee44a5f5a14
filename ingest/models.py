"""Types that cross the ingest pipeline's stage boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel


class DocType(StrEnum):
    guideline = "guideline"
    label = "label"
    formulary = "formulary"
    coverage = "coverage"
    # Patient bundles are context for /ask, never indexed as knowledge.
    patient = "patient"


@dataclass(frozen=True)
class Section:
    """One structural unit of a parsed document (an SPL section, a guideline field,
    a Markdown heading block, a PDF page block, a formulary table).

    `start`/`end` are character offsets of `text` inside `ParsedDocument.text`,
    so a chunk's offsets point back into the document's full parsed text.
    """

    path: tuple[str, ...]
    text: str
    start: int
    end: int
    page: int | None = None
    is_table: bool = False
    # The source's own code for what the section is (an SPL section's LOINC code:
    # 34066-1 boxed warning, 34068-7 dosage and administration...), when it has one.
    code: str | None = None
    # What kind of unit the section is: "section" (content), "table", "recommendation"
    # (a guideline's recommendations), "admin" (administrative and bibliographic fields:
    # release date, source, status, availability...), "methods" (how a guideline was made).
    kind: str = "section"


@dataclass
class ParsedDocument:
    doc_id: str
    title: str
    source_file: str
    doc_type: DocType
    text: str
    sections: list[Section]
    effective_date: str | None = None  # ISO yyyy-mm-dd when the source states one
    version: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceFile:
    """A file the manifest says to ingest, with what the manifest says about it."""

    path: Path
    relpath: str
    doc_type: DocType
    access_groups: tuple[str, ...]
    payer: str | None = None
    effective_date: str | None = None
    # Stable identity across versions (see ingest/identity.py).
    doc_key: str = ""


class ParseError(Exception):
    """A file that cannot be parsed; the message is shown to the operator as the reason."""


JobStatus = Literal["queued", "running", "done", "failed"]


class IngestJob(BaseModel):
    """One upload's ingest, as the API reports it (and the UI reads it)."""

    job_id: str
    status: JobStatus
    filename: str
    doc_key: str | None = None
    version: int | None = None
    previous_version: int | None = None
    chunks: int = 0
    reason: str | None = None
    changes: str | None = None
    progress: float = 0.0
    submitted_by: str | None = None
