"""Request and response models of the HTTP API."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from retrieval.models import Passage, SearchFilters


class CitationStatus(StrEnum):
    supported = "supported"
    partial = "partial"
    unsupported = "unsupported"
    invalid = "invalid"


class AnswerStatus(StrEnum):
    # Every sentence supported by its cited units, and the cited evidence addresses the
    # question (its drugs, the patient's medication, payer, condition and the attribute
    # asked for).
    verified = "verified"
    partially_verified = "partially_verified"
    unverified = "unverified"
    # Sentences are supported by their citations, but the evidence they cite does not
    # address the question asked: never shown as an answer.
    off_topic = "off_topic"
    # No generated sentence verified, but retrieved units address the question: they are
    # returned verbatim, as quotes with their sources, not as a composed answer.
    evidence_only = "evidence_only"
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
    unit_id: str | None = Field(
        default=None, description="The cited unit of the passage (P2.4): a sentence, a "
        "table row or a list item; the quote is its text.")
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
    quoted_by_server: bool = Field(
        default=False, description="The source's own words, added by the server and not "
        "written by the model: a contraindication for the patients, or a warning for the "
        "condition, the question asks about that the generated answer left out; the "
        "payer's criteria for the drug asked about beside the cited criteria of its status "
        "or flag; or the source's statement right before or after a cited one that "
        "continues it on the question; or, for a question asking for every item, the "
        "items of the cited table or list the generated answer did not name.")
    quoted_as: Literal["contraindication", "warning", "criteria", "continuation",
                       "list_rest"] | None = Field(
        default=None, description="What a sentence quoted by the server is.")


# How a sentence the server quoted is introduced, wherever an answer is shown.
QUOTED_LABELS = {
    "warning": "Warning, quoted from the source:",
    "contraindication": "Contraindication, quoted from the source:",
    "continuation": "The source goes on:",
    "criteria": "The payer's criteria for this drug, quoted from the source:",
    "list_rest": "The rest of the cited list, quoted from the source:",
}


def quoted_label(quoted_as: str | None) -> str:
    return QUOTED_LABELS.get(quoted_as or "", QUOTED_LABELS["contraindication"])


class EvidenceQuote(BaseModel):
    """A retrieved unit returned verbatim (status evidence_only): what the sources say,
    not what the model wrote."""

    passage_id: str
    unit_id: str
    text: str
    span_start: int
    span_end: int
    header: list[str] = Field(
        default_factory=list, description="A table row's column headers: a quoted row "
        "('| Atorvastatin (QL) | Altoprev |') says which drug is preferred only with them.")


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
    status_reason: str | None = Field(
        default=None, description="Why the status is off_topic or evidence_only.")
    evidence: list[EvidenceQuote] = Field(
        default_factory=list,
        description="For evidence_only: the units that address the question, verbatim.")
    patient: PatientContext | None = None
    excluded_passage_ids: list[str] = Field(
        default_factory=list,
        description="Retrieved passages kept from the model because they contain "
        "instruction-like text (possible prompt injection).",
    )
    model: str
    answered_from: Literal["model", "records"] = Field(
        default="model", description="'records': a formulary status question answered "
        "from the formulary's records, or a document's release date from its release "
        "field (a lookup, verified like a generated answer), not written by the model; "
        "`model` says which.")
    timings_ms: dict[str, float] = Field(default_factory=dict)
    answer_id: int | None = Field(
        default=None, description="The seq of this answer's audit record: what feedback "
        "and review refer to (POST /answers/{answer_id}/feedback).")


class HealthResponse(BaseModel):
    status: str
    collection: str
    passages: int
    llm: str
