"""What an audit record holds, as typed models shared by the log, the API and the CLI.

Each action has its own details model, tagged by `kind` (= the action), so a record can be
read back and validated without guessing. Requests are recorded without the FHIR bundle:
only the ids of the resources that were used.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from app.answering.models import (
    AnswerSentence,
    AnswerStatus,
    AskRequest,
    AskResponse,
    CitationStatus,
)
from retrieval.models import SearchFilters


class AuditUnavailable(RuntimeError):
    """The audit log could not be written or read; callers must not go on unaudited.
    (Defined here, away from SQLAlchemy, so catching it costs no import.)"""


class AuditAction(StrEnum):
    ask = "ask"
    audit_query = "audit_query"
    access_denied = "access_denied"
    ingest = "ingest"
    key_create = "key_create"
    key_revoke = "key_revoke"
    purge = "purge"
    retire = "retire"
    feedback = "feedback"
    review = "review"
    review_export = "review_export"
    backup = "backup"
    restore = "restore"


class AuditActor(BaseModel):
    """Who acted: an API key, or an operator at the command line (no key id)."""

    key_id: str | None = None
    name: str
    role: str


class AuditedPassage(BaseModel):
    passage_id: str
    doc_id: str
    # The corpus-relative file (what evaluation gold names); absent on older records.
    source_file: str | None = None
    version: str | None = None
    score: float


class AuditedCitation(BaseModel):
    passage_id: str
    status: CitationStatus
    score: float


class AuditedSentence(BaseModel):
    text: str
    status: CitationStatus
    citations: list[AuditedCitation] = Field(default_factory=list)
    removed: bool = Field(default=False, description="Dropped from the answer by strict mode.")


class AskDetails(BaseModel):
    kind: Literal["ask"] = "ask"
    question: str | None = Field(
        default=None, description="Absent when the request was refused before it was read."
    )
    question_chars: int = 0
    filters: SearchFilters | None = None
    top_k: int | None = None
    strict: bool = False
    fhir_resource_ids: list[str] = Field(default_factory=list)
    model_endpoint: str
    model: str
    passages: list[AuditedPassage] = Field(default_factory=list)
    sentences: list[AuditedSentence] = Field(default_factory=list)
    answer_status: AnswerStatus | None = None
    abstained: bool | None = None
    abstain_reason: str | None = None
    latency_ms: float
    error: str | None = None
    # Whether the model was asked (an abstention decided from retrieval alone was not):
    # the generator-error alarm's denominator, read back by every API worker.
    generated: bool | None = None


class AccessDeniedDetails(BaseModel):
    kind: Literal["access_denied"] = "access_denied"
    method: str
    path: str
    required_roles: list[str]


class AuditQueryDetails(BaseModel):
    kind: Literal["audit_query"] = "audit_query"
    filters: dict[str, Any]
    returned: int


class IngestedFile(BaseModel):
    relpath: str
    status: str
    doc_id: str | None = None
    reason: str | None = None
    doc_key: str | None = None
    version: int | None = None
    changes: str | None = None


class IngestDetails(BaseModel):
    kind: Literal["ingest"] = "ingest"
    path: str
    groups: list[str] | None = None
    files: int
    counts: dict[str, int]
    chunks_written: int
    elapsed_s: float
    # Only files that changed something or failed; unchanged ones are counted, not listed.
    changed: list[IngestedFile] = Field(default_factory=list)


class KeyDetails(BaseModel):
    kind: Literal["key_create", "key_revoke"]
    key_id: str
    name: str | None = None
    role: str | None = None
    groups: list[str] = Field(default_factory=list)


class PurgeDetails(BaseModel):
    """Carries what verification needs to accept a log whose oldest records are gone."""

    kind: Literal["purge"] = "purge"
    older_than_days: int
    cutoff: str
    purged: int
    purged_from_seq: int | None = None
    purged_to_seq: int | None = None
    first_kept_seq: int = Field(description="The first record of the chain after this purge.")
    last_purged_hash: str = Field(
        description="What the first kept record chains to: the hash of the last purged "
        "record (or of whatever the chain started from before)."
    )


class RetireDetails(BaseModel):
    kind: Literal["retire"] = "retire"
    doc_key: str
    reason: str | None = None


class FeedbackRating(StrEnum):
    up = "up"
    down = "down"


class FeedbackReason(StrEnum):
    wrong = "wrong"
    incomplete = "incomplete"
    outdated_source = "outdated_source"
    unsafe = "unsafe"
    citation_unsupported = "citation_unsupported"
    other = "other"


MAX_COMMENT_CHARS = 2000


class FeedbackDetails(BaseModel):
    """A user's rating of one answer (`answer_id` = the seq of its ask record). The latest
    record of a user for an answer is their feedback; earlier ones stay as history."""

    kind: Literal["feedback"] = "feedback"
    answer_id: int
    rating: FeedbackRating
    reason: FeedbackReason | None = None
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    supersedes: int | None = Field(
        default=None, description="The seq of this user's previous feedback on the answer.")


class ReviewVerdict(StrEnum):
    correct = "correct"
    incorrect = "incorrect"
    unsafe = "unsafe"


class ReviewGold(BaseModel):
    """A document that answers the question: a file of the corpus, and optionally a
    short text a relevant passage must contain (evaluation gold)."""

    source_file: str = Field(min_length=1, max_length=500)
    contains: str = Field(default="", max_length=500)
    passage_id: str | None = None
    doc_id: str | None = None


class ReviewDetails(BaseModel):
    """A reviewer's label of one answer; the latest label of an answer is the one used."""

    kind: Literal["review"] = "review"
    answer_id: int
    verdict: ReviewVerdict
    key_facts: list[list[str]] = Field(
        default_factory=list, description="Facts a correct answer must state, each as its "
        "acceptable surface forms (evaluation key_facts).")
    gold: list[ReviewGold] = Field(default_factory=list)
    question_kind: str | None = None
    note: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    supersedes: int | None = None


class ReviewExportDetails(BaseModel):
    kind: Literal["review_export"] = "review_export"
    path: str
    exported: int
    skipped: int


class BackupDetails(BaseModel):
    """A backup copies every question, answer and key out of the service: who took it and
    where it went are part of the record."""

    kind: Literal["backup"] = "backup"
    path: str
    parts: int
    archive_bytes: int
    # The audit records the archive holds (None: the log is not in the archive).
    audit_records: int | None = None


class RestoreDetails(BaseModel):
    kind: Literal["restore"] = "restore"
    archive: str
    parts: int
    audit_records: int | None = None
    set_aside: str | None = None


class UnreadableDetails(BaseModel):
    """Stands in for details that no longer validate (an edited record): still listable."""

    kind: Literal["unreadable"] = "unreadable"
    error: str


Details = Annotated[
    AskDetails | AccessDeniedDetails | AuditQueryDetails | IngestDetails | KeyDetails
    | PurgeDetails | RetireDetails | FeedbackDetails | ReviewDetails | ReviewExportDetails
    | BackupDetails | RestoreDetails | UnreadableDetails,
    Field(discriminator="kind"),
]


class AuditRecord(BaseModel):
    seq: int = Field(description="Position in the chain, from 1.")
    ts: datetime = Field(description="When it was recorded (UTC).")
    action: AuditAction
    actor: AuditActor
    http_status: int | None = None
    details: Details
    prev_hash: str
    hash: str = Field(description="SHA-256 of the record's canonical JSON, prev_hash included.")


class AuditPage(BaseModel):
    records: list[AuditRecord] = Field(description="Newest first.")
    next_cursor: int | None = Field(
        default=None, description="Pass as `cursor` for the next (older) page; null at the end."
    )


def _sentences(items: list[AnswerSentence], removed: bool) -> list[AuditedSentence]:
    return [
        AuditedSentence(
            text=s.text, status=s.status, removed=removed,
            citations=[
                AuditedCitation(passage_id=c.passage_id, status=c.status, score=c.score)
                for c in s.citations
            ],
        )
        for s in items
    ]


def ask_details(
    request: AskRequest | None,
    response: AskResponse | None,
    *,
    endpoint: str,
    model: str,
    latency_ms: float,
    max_question_chars: int,
    error: str | None = None,
) -> AskDetails:
    details = AskDetails(model_endpoint=endpoint, model=model, latency_ms=latency_ms, error=error)
    if request is not None:
        details.question_chars = len(request.question)
        # An over-long question was refused unread; keeping it would let anyone with a key
        # grow the audit database by megabytes per request.
        if len(request.question) <= max_question_chars:
            details.question = request.question
        details.filters, details.top_k = request.filters, request.top_k
        details.strict = request.strict
    if response is not None:
        details.passages = [
            AuditedPassage(passage_id=p.id, doc_id=p.provenance.doc_id,
                           source_file=p.provenance.source_file,
                           version=p.provenance.version, score=p.score)
            for p in response.passages
        ]
        details.sentences = _sentences(response.sentences, False) + _sentences(
            response.removed_sentences, True
        )
        details.answer_status = response.status
        details.generated = "generation" in response.timings_ms
        details.abstained, details.abstain_reason = response.abstained, response.abstain_reason
        details.fhir_resource_ids = list(response.patient.resource_ids) if response.patient else []
    return details
