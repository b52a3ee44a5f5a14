"""Typed results of retrieval: passages with their provenance."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class Provenance(BaseModel):
    doc_id: str
    title: str
    source_file: str
    doc_type: str
    section_path: list[str] = Field(default_factory=list)
    page: int | None = None
    char_start: int
    char_end: int
    effective_date: str | None = None
    version: str | None = Field(default=None, description="The source's own version label.")
    payer: str | None = None
    access_groups: list[str] = Field(default_factory=list)
    doc_key: str | None = Field(default=None, description="Stable identity across versions.")
    version_id: str | None = None
    version_number: int | None = Field(
        default=None, description="Which published version of the document (1, 2, ...).")
    section_code: str | None = Field(
        default=None, description="The source's code for the section: an SPL section's "
        "LOINC code (34066-1 boxed warning, 34068-7 dosage and administration, ...).")
    unit_kind: str | None = Field(
        default=None, description="section, table, row (a formulary record), "
        "recommendation, admin (administrative/bibliographic), methods.")
    applies_to: list[str] = Field(
        default_factory=list, description="For criteria a formulary page writes once per "
        "status or flag: the drugs of its rows they govern (the criteria name none).")


class Passage(BaseModel):
    """A retrieved chunk. `id` is the stable chunk id stored in Qdrant."""

    id: str
    text: str
    score: float
    provenance: Provenance


class SearchFilters(BaseModel):
    doc_types: list[str] | None = Field(
        default=None, description="Restrict to these document types (guideline, label, ...)."
    )
    payers: list[str] | None = Field(default=None, description="Restrict to these payers.")
    doc_ids: list[str] | None = Field(default=None, description="Restrict to these documents.")
    as_of: date | None = Field(
        default=None,
        description="Answer from the versions in force on this date (default: today's).",
    )
