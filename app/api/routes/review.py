"""The review queue (role reviewer): GET /review/queue lists a fixed random share of
recent answers plus every answer with negative feedback, each with its sources and how
it was verified; POST /review/{answer_id} labels one into the audit chain. Labelled
answers become evaluation questions with `medcite review export`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from app.api.deps import actor_of, get_services, require_role
from app.audit.models import (
    AskDetails,
    AuditAction,
    AuditQueryDetails,
    ReviewDetails,
    ReviewGold,
)
from app.core.container import Services
from app.operations.answers import find_answer, previous_label, review_queue
from app.operations.models import (
    QueueItem,
    ReviewQueue,
    ReviewRequest,
    ReviewResponse,
    SourcePassage,
)
from app.security.api_keys import Principal, Role
from retrieval.search import to_passage

router = APIRouter(tags=["review"])

ServicesDep = Annotated[Services, Depends(get_services)]
Reviewer = Annotated[Principal, Depends(require_role(Role.reviewer))]


def _sources(services: Services, item: QueueItem) -> list[SourcePassage]:
    details = item.record.details
    if not isinstance(details, AskDetails) or not details.passages:
        return []
    ids = [p.passage_id for p in details.passages]
    try:
        found = services.client.retrieve(services.settings.collection, ids=ids,
                                         with_payload=True, with_vectors=False)
        stored = {str(r.id): to_passage(r, 0.0) for r in found}
    except Exception:  # noqa: BLE001 - the sources' text is a help, not the record
        stored = {}
    out = []
    for p in details.passages:
        hit = stored.get(p.passage_id)
        out.append(SourcePassage(
            passage_id=p.passage_id, doc_id=p.doc_id,
            source_file=p.source_file or (hit.provenance.source_file if hit else None),
            title=hit.provenance.title if hit else None, text=hit.text if hit else None))
    return out


@router.get(
    "/review/queue",
    response_model=ReviewQueue,
    responses={401: {"description": "Missing or invalid API key"},
               403: {"description": "Role is not reviewer or admin"},
               503: {"description": "Audit log unavailable"}},
)
def queue(
    principal: Reviewer, services: ServicesDep,
    include_labelled: bool = Query(False, description="Also answers already labelled."),
    limit: int = Query(50, ge=1, le=200),
) -> ReviewQueue:
    """Flagged answers first, then the sample, newest first. Reading it is recorded."""
    settings = services.settings
    result = review_queue(services.audit, settings.review_sample_rate,
                          settings.review_window_days, include_labelled, limit=limit)
    for item in result.items:
        item.sources = _sources(services, item)
    services.audit.append(AuditAction.audit_query, actor_of(principal), AuditQueryDetails(
        filters={"view": "review_queue", "include_labelled": str(include_labelled),
                 "limit": str(limit)}, returned=len(result.items)), 200)
    return result


@router.post(
    "/review/{answer_id}",
    response_model=ReviewResponse,
    status_code=201,
    responses={401: {"description": "Missing or invalid API key"},
               403: {"description": "Role is not reviewer or admin"},
               404: {"description": "No answer with this id"},
               422: {"description": "Invalid label, or a gold passage not of this answer"},
               503: {"description": "Audit log unavailable"}},
)
def label(
    answer_id: Annotated[int, Path(ge=1, le=2**62)], body: ReviewRequest,
    principal: Reviewer, services: ServicesDep,
) -> ReviewResponse:
    """Label an answer; a later label of the same answer supersedes this one."""
    answer = find_answer(services.audit, answer_id)
    if answer is None or not isinstance(answer.details, AskDetails):
        raise HTTPException(404, f"no answer with id {answer_id}")
    passages = {p.passage_id: p for p in answer.details.passages}
    gold = []
    for g in body.gold:
        if g.passage_id is not None:
            p = passages.get(g.passage_id)
            if p is None:
                raise HTTPException(422, f"passage {g.passage_id} was not retrieved for "
                                    "this answer; name its source_file instead")
            source_file = g.source_file or p.source_file
            if not source_file:
                raise HTTPException(422, f"passage {g.passage_id}: its file is not in this "
                                    "(older) record; give source_file")
            gold.append(ReviewGold(source_file=source_file, contains=g.contains,
                                   passage_id=p.passage_id, doc_id=p.doc_id))
        elif g.source_file:
            gold.append(ReviewGold(source_file=g.source_file, contains=g.contains))
        else:
            raise HTTPException(422, "each gold entry needs a passage_id or a source_file")
    details = ReviewDetails(
        answer_id=answer_id, verdict=body.verdict, gold=gold,
        key_facts=[[form.strip() for form in fact] for fact in body.key_facts],
        question_kind=body.question_kind, note=(body.note or "").strip() or None,
        supersedes=previous_label(services.audit, answer_id))
    rec = services.audit.append(AuditAction.review, actor_of(principal), details, 201)
    services.ops.metrics.reviews.labels(body.verdict.value).inc()
    return ReviewResponse(label_id=rec.seq, label=details)
