"""The Qdrant point payload: one typed model that ingest writes and retrieval,
evaluation and the benchmarks read, and the one list of fields that get a payload index.

Reading goes through `ChunkPayload.read`, which fills defaults for points written by an
older pipeline, so no reader indexes a payload by string keys of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Keyword fields queries filter on (retrieval/search.py build_filter, the context
# widening's scroll, evaluation's in-force scroll). Every backend indexes exactly these.
KEYWORD_FIELDS: tuple[str, ...] = (
    "doc_id", "doc_key", "version_id", "doc_type", "access_groups", "payer", "source_file",
    # The document's structure, typed (retrieval/search.py drug-aware and section-aware
    # ranking; "status of X on payer Y as of D" as a filtered lookup).
    "unit_kind", "section_code", "drugs", "status", "flags",
)
INTEGER_FIELDS: tuple[str, ...] = ("chunk_index",)


class ChunkPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = ""
    doc_id: str = ""
    doc_key: str | None = None
    version_id: str | None = None
    title: str = ""
    source_file: str = ""
    doc_type: str = ""
    section_path: list[str] = Field(default_factory=list)
    page: int | None = None
    char_start: int = 0
    char_end: int = 0
    effective_date: str | None = None
    version: str | None = None
    payer: str | None = None
    access_groups: list[str] = Field(default_factory=list)
    doc_chunks: int = 0
    chunk_index: int = 0
    is_table: bool = False
    # What the unit is: "section" (prose), "table" (a whole table or a piece of one),
    # "row" (one formulary record: a drug with its payer, status, flags and limits),
    # "recommendation" (a guideline's recommendations), "admin" (administrative and
    # bibliographic fields), "methods".
    unit_kind: str = "section"
    # The source's code for the section: an SPL section's LOINC code (34066-1 boxed
    # warning, 34068-7 dosage and administration, ...).
    section_code: str | None = None
    # Drugs named by the unit (never classes), normalised by retrieval/drugs.py
    # drug_names: "Lipitor" and "atorvastatin calcium" are both "atorvastatin".
    drugs: list[str] = Field(default_factory=list)
    # For a formulary's criteria written once per status or flag ("Criteria > Clinical
    # PA"): the drugs of the page's rows they govern, which the criteria never name
    # (ingest/chunking.py scope_criteria). Also in `drugs`; kept apart so that an answer
    # can show why such a unit is about a drug it does not name.
    applies_to: list[str] = Field(default_factory=list)
    # A formulary record's status ("Preferred", "Non-Preferred", "Covered"...) and
    # flags ("PA", "QL", "ST", "BVG"...).
    status: str | None = None
    flags: list[str] = Field(default_factory=list)
    ingested_at: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def read(cls, raw: Mapping[str, Any] | None) -> ChunkPayload:
        return cls.model_validate(dict(raw or {}))

    def write(self) -> dict[str, Any]:
        return self.model_dump()
