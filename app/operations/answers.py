"""What is said about an answer after it was given: clinician feedback, the review queue
and reviewers' labels, all read from and appended to the audit chain.

An answer's id is the seq of its `ask` audit record (AskResponse.answer_id), so feedback
and labels refer to exactly what was shown. A user's feedback on an answer is their
latest `feedback` record for it (earlier ones stay in the chain, linked by
`supersedes`); an answer's label is its latest `review` record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from app.audit.log import AuditLog, AuditQuery
from app.audit.models import (
    AskDetails,
    AuditAction,
    AuditRecord,
    FeedbackDetails,
    FeedbackRating,
    ReviewDetails,
)
from app.operations.models import GivenFeedback, GivenLabel, QueueItem, ReviewQueue
from app.security.api_keys import Principal, Role

# Roles that may read (and give feedback on, and label) any user's answer.
READERS_OF_ALL = frozenset({Role.reviewer, Role.auditor, Role.admin})
_PAGE = 200


def records(
    audit: AuditLog, action: AuditAction, since: datetime | None = None,
    user: str | None = None,
) -> Iterator[AuditRecord]:
    """Records of one action, newest first, back to `since` (a day boundary, UTC)."""
    cursor = None
    while True:
        page = audit.search(AuditQuery(
            action=action, user=user, since=since.date() if since else None, limit=_PAGE,
            cursor=cursor))
        yield from page.records
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def find_answer(audit: AuditLog, answer_id: int) -> AuditRecord | None:
    """The ask record `answer_id` when it is an answer that was given (HTTP 200)."""
    page = audit.search(AuditQuery(action=AuditAction.ask, cursor=answer_id + 1, limit=1))
    rec = page.records[0] if page.records else None
    if rec is None or rec.seq != answer_id or rec.http_status != 200:
        return None
    if not isinstance(rec.details, AskDetails) or rec.details.answer_status is None:
        return None
    return rec


def may_see(principal: Principal, answer: AuditRecord) -> bool:
    """Their own answers; reviewers, auditors and admins see all."""
    return principal.role in READERS_OF_ALL or (
        answer.actor.key_id is not None and answer.actor.key_id == principal.key_id)


def previous_feedback(audit: AuditLog, principal: Principal, answer_id: int) -> int | None:
    """The seq of this user's latest feedback on the answer, if any."""
    for rec in records(audit, AuditAction.feedback, user=principal.key_id):
        d = rec.details
        if (rec.actor.key_id == principal.key_id and isinstance(d, FeedbackDetails)
                and d.answer_id == answer_id):
            return rec.seq
        if rec.seq < answer_id:
            return None  # feedback always follows its answer
    return None


def previous_label(audit: AuditLog, answer_id: int) -> int | None:
    for rec in records(audit, AuditAction.review):
        if isinstance(rec.details, ReviewDetails) and rec.details.answer_id == answer_id:
            return rec.seq
        if rec.seq < answer_id:
            return None
    return None


def sampled(record: AuditRecord, rate: float) -> bool:
    """A fixed pseudo-random share of answers: the same answers on every request (the
    queue does not reshuffle), unpredictable from outside (it hashes the record's hash)."""
    digest = hashlib.sha256(f"review:{record.seq}:{record.hash}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def current_feedback(audit: AuditLog, since: datetime) -> dict[int, list[GivenFeedback]]:
    """answer id -> each user's latest feedback on it."""
    out: dict[int, dict[str, GivenFeedback]] = {}
    for rec in records(audit, AuditAction.feedback, since):
        if not isinstance(rec.details, FeedbackDetails):
            continue
        who = rec.actor.key_id or rec.actor.name
        per_user = out.setdefault(rec.details.answer_id, {})
        if who not in per_user:  # newest first: the first seen is the current one
            per_user[who] = GivenFeedback(feedback_id=rec.seq, ts=rec.ts, by=rec.actor,
                                          details=rec.details)
    return {k: list(v.values()) for k, v in out.items()}


def current_labels(audit: AuditLog, since: datetime | None = None) -> dict[int, GivenLabel]:
    out: dict[int, GivenLabel] = {}
    for rec in records(audit, AuditAction.review, since):
        if isinstance(rec.details, ReviewDetails) and rec.details.answer_id not in out:
            out[rec.details.answer_id] = GivenLabel(label_id=rec.seq, ts=rec.ts, by=rec.actor,
                                                    details=rec.details)
    return out


def review_queue(
    audit: AuditLog, sample_rate: float, window_days: int, include_labelled: bool = False,
    now: datetime | None = None, limit: int = 200,
) -> ReviewQueue:
    """Answers of the last `window_days` that were flagged (any user's current feedback is
    negative) or sampled; flagged first, then newest first."""
    since = (now or datetime.now(UTC)) - timedelta(days=window_days)
    feedback = current_feedback(audit, since)
    labels = current_labels(audit, since)
    flagged = {aid for aid, given in feedback.items()
               if any(f.details.rating is FeedbackRating.down for f in given)}
    answers = [r for r in records(audit, AuditAction.ask, since) if r.http_status == 200
               and isinstance(r.details, AskDetails) and r.details.answer_status is not None]
    items = []
    for rec in answers:
        why = [w for w, hit in (("flagged", rec.seq in flagged),
                                ("sampled", sampled(rec, sample_rate))) if hit]
        if not why or (rec.seq in labels and not include_labelled):
            continue
        items.append(QueueItem(answer_id=rec.seq, why=why, record=rec,
                               feedback=feedback.get(rec.seq, []), label=labels.get(rec.seq)))
    items.sort(key=lambda i: ("flagged" not in i.why, -i.answer_id))
    return ReviewQueue(sample_rate=sample_rate, window_days=window_days,
                       answers_in_window=len(answers), items=items[:limit])


# -- export to the evaluation's question format (eval/corpora_questions.jsonl) -----------


class ExportResult(BaseModel):
    exported: int
    skipped: dict[str, int] = Field(default_factory=dict)


def export_row(answer: AuditRecord, label: GivenLabel) -> dict[str, Any] | None:
    """One question of the evaluation format (app/evaluation/datasets.py reads it), or None
    when the answer cannot be replayed: its question was not kept, or it was asked with a
    patient bundle (only the bundle's resource ids are audited, not the bundle)."""
    d = answer.details
    if not isinstance(d, AskDetails) or d.question is None or d.fhir_resource_ids:
        return None
    lab = label.details
    gold = [{"source_file": g.source_file, "contains": g.contains} for g in lab.gold]
    kind = lab.question_kind or ("" if gold else "unanswerable")
    row: dict[str, Any] = {
        "id": f"review-{answer.seq}",
        "question": d.question,
        "tags": ["review", lab.verdict.value],
        "gold": gold,
        "kind": kind,
        "key_facts": [list(forms) for forms in lab.key_facts if forms],
    }
    if d.filters is not None and d.filters.as_of is not None:
        row["as_of"] = d.filters.as_of.isoformat()
    return row


def export_labelled(audit: AuditLog, out: Path) -> ExportResult:
    """Write every labelled answer (its current label) as evaluation questions, oldest
    first, to `out` (JSON lines)."""
    labels = current_labels(audit)
    result = ExportResult(exported=0)
    lines = []
    for answer_id in sorted(labels):
        answer = find_answer(audit, answer_id)
        row = export_row(answer, labels[answer_id]) if answer is not None else None
        if row is None:
            why = ("answer not in the log" if answer is None else
                   "asked with a patient bundle" if isinstance(answer.details, AskDetails)
                   and answer.details.fhir_resource_ids else "question not kept")
            result.skipped[why] = result.skipped.get(why, 0) + 1
            continue
        lines.append(json.dumps(row, ensure_ascii=False))
        result.exported += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return result

