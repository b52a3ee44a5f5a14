"""Request and response models of the HTTP API."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from retrieval.models import Passage, SearchFilters


class CitationStatus(StrEnum):
    supported = "supported"
    partial = "partial"
    unsupported = "unsupported"
    invalid = "invalid"


class AnswerStatus(StrEnum):
    verified = "verified"  # every sentence has a supported citation
    partially_verified = "partially_verified"
    unverified = "unverified"
    abstained = "abstained"


class AskRequest(BaseModel):
    question: str = Field(min_length=1, description="The clinical question.")
    filters: SearchFilters | None = None
    fhir_bundle: dict[str, Any] | None = Field(
        default=None, description="FHIR R4 Bundle (Patient, Conditions, Medications) as context."
    )
    top_k: int | None = Field(default=None, ge=1, le=20)
    strict: bool = Field(
        default=False, description="Drop sentences without a supported citation."
    )


class Citation(BaseModel):
    passage_id: str
    quote: str
    status: CitationStatus
    score: float = Field(description="0..1 support score from the verifier.")
    reasons: list[str] = Field(default_factory=list)
    span_start: int | None = Field(
        default=None, description="Offset of the supporting span inside the passage text."
    )
    span_end: int | None = None


class AnswerSentence(BaseModel):
    text: str
    citations: list[Citation]
    status: CitationStatus


class PatientContext(BaseModel):
    """What the answer used from the FHIR bundle (no names or identifiers)."""

    age: int | None = None
    sex: str | None = None
    conditions: list[str] = Field(default_factory=list)
    medications: list[str] = Field(default_factory=list)
    allergies: list[str] = Field(default_factory=list)
    retrieval_terms: list[str] = Field(
        default_factory=list,
        description="Patient facts added to the search query (the question referred to "
        "the patient); empty when retrieval used the question alone.",
    )
    resource_ids: list[str] = Field(default_factory=list)


class AskResponse(BaseModel):
    question: str
    status: AnswerStatus
    abstained: bool
    abstain_reason: str | None = None
    sentences: list[AnswerSentence]
    passages: list[Passage] = Field(description="Retrieved passages, cited or not.")
    removed_sentences: list[AnswerSentence] = Field(default_factory=list)
    patient: PatientContext | None = None
    excluded_passage_ids: list[str] = Field(
        default_factory=list,
        description="Retrieved passages kept from the model because they contain "
        "instruction-like text (possible prompt injection).",
    )
    model: str
    timings_ms: dict[str, float] = Field(default_factory=dict)


class HealthResponse(BaseModel):
    status: str
    collection: str
    passages: int
    llm: str
