"""The operations API's response models (light: the UI reads them too)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.audit.models import (
    MAX_COMMENT_CHARS,
    AuditActor,
    AuditRecord,
    FeedbackDetails,
    FeedbackRating,
    FeedbackReason,
    ReviewDetails,
    ReviewVerdict,
)

# PostgreSQL text can't hold NUL.
_NO_NUL = r"^[^\x00]*$"
Short = Annotated[str, Field(min_length=1, max_length=300, pattern=_NO_NUL)]


class GivenFeedback(BaseModel):
    feedback_id: int = Field(description="The seq of the feedback's audit record.")
    ts: datetime
    by: AuditActor
    details: FeedbackDetails


class GivenLabel(BaseModel):
    label_id: int
    ts: datetime
    by: AuditActor
    details: ReviewDetails


class SourcePassage(BaseModel):
    """A retrieved passage as stored now (its chunk's text), for the reviewer to read."""

    passage_id: str
    doc_id: str
    source_file: str | None = None
    title: str | None = None
    text: str | None = Field(default=None, description="Null when no longer stored.")


class QueueItem(BaseModel):
    answer_id: int
    why: list[str] = Field(description="flagged (negative feedback) and/or sampled.")
    record: AuditRecord = Field(description="The ask record: question, answer sentences "
                                "with their citations' verification, retrieved passages.")
    sources: list[SourcePassage] = Field(default_factory=list)
    feedback: list[GivenFeedback] = Field(
        default_factory=list, description="Each user's current feedback.")
    label: GivenLabel | None = None


class ReviewQueue(BaseModel):
    sample_rate: float
    window_days: int
    answers_in_window: int
    items: list[QueueItem]


class AlarmState(BaseModel):
    signal: str
    rate: float | None = Field(description="Share over the window; null with no events.")
    threshold: float
    events: int = Field(description="Events in the window the rate is a share of.")
    hits: int
    min_events: int
    window_s: float
    active: bool
    since: datetime | None = Field(default=None, description="When the alarm was raised.")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: FeedbackRating
    reason: FeedbackReason | None = Field(
        default=None, description="What was wrong (a thumbs-down only).")
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS, pattern=_NO_NUL)

    @model_validator(mode="after")
    def _reason_for_down_only(self) -> FeedbackRequest:
        if self.reason is not None and self.rating is FeedbackRating.up:
            raise ValueError("a reason goes with a thumbs-down only")
        return self


class FeedbackResponse(BaseModel):
    feedback_id: int = Field(description="The seq of the feedback's audit record.")
    answer_id: int
    rating: FeedbackRating
    reason: FeedbackReason | None = None
    comment: str | None = None
    supersedes: int | None = None


class GoldRequest(BaseModel):
    """A passage of the answer that answers the question, or any corpus file."""

    model_config = ConfigDict(extra="forbid")

    passage_id: str | None = Field(default=None, max_length=100)
    source_file: str | None = Field(default=None, max_length=500, pattern=_NO_NUL)
    contains: str = Field(default="", max_length=500, pattern=_NO_NUL,
                          description="A short text a relevant passage contains.")


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: ReviewVerdict
    key_facts: list[Annotated[list[Short], Field(min_length=1, max_length=10)]] = Field(
        default_factory=list, max_length=20,
        description="Facts a correct answer must state, each as its acceptable forms.")
    gold: list[GoldRequest] = Field(default_factory=list, max_length=20)
    question_kind: str | None = Field(default=None, pattern=r"^[a-z_]{1,40}$",
                                      description="dose, formulary_status, ... (eval/README)")
    note: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS, pattern=_NO_NUL)


class ReviewResponse(BaseModel):
    label_id: int
    label: ReviewDetails
