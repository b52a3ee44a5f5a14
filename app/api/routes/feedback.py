"""POST /answers/{answer_id}/feedback: a clinician's rating of an answer, into the audit
chain. One per user per answer: a later one supersedes (and names) the earlier, which
stays in the chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from app.api.deps import actor_of, get_services, require_role
from app.audit.models import AccessDeniedDetails, AuditAction, FeedbackDetails
from app.core.container import Services
from app.operations.answers import find_answer, may_see, previous_feedback
from app.operations.models import FeedbackRequest, FeedbackResponse
from app.security.api_keys import Principal, Role

router = APIRouter(tags=["feedback"])

ServicesDep = Annotated[Services, Depends(get_services)]
AnswerId = Annotated[int, Path(ge=1, le=2**62, description="AskResponse.answer_id")]
# Who may rate: those who ask, and those who read others' answers.
Rater = Annotated[Principal, Depends(require_role(
    Role.clinician, Role.integration, Role.reviewer, Role.auditor))]


@router.post(
    "/answers/{answer_id}/feedback",
    response_model=FeedbackResponse,
    status_code=201,
    responses={401: {"description": "Missing or invalid API key"},
               403: {"description": "Not your answer (reviewers and auditors may rate any)"},
               404: {"description": "No answer with this id"},
               422: {"description": "Invalid rating, reason or comment"},
               503: {"description": "Audit log unavailable"}},
)
def give_feedback(
    answer_id: AnswerId, body: FeedbackRequest, principal: Rater, services: ServicesDep,
    request: Request,
) -> FeedbackResponse:
    audit = services.audit
    answer = find_answer(audit, answer_id)
    if answer is None:
        raise HTTPException(404, f"no answer with id {answer_id}")
    if not may_see(principal, answer):
        audit.append(AuditAction.access_denied, actor_of(principal), AccessDeniedDetails(
            method=request.method, path=request.url.path,
            required_roles=["the asker", Role.reviewer.value, Role.auditor.value]), 403)
        raise HTTPException(403, "you may only rate answers given to you")
    comment = (body.comment or "").strip() or None
    details = FeedbackDetails(
        answer_id=answer_id, rating=body.rating, reason=body.reason, comment=comment,
        supersedes=previous_feedback(audit, principal, answer_id))
    rec = audit.append(AuditAction.feedback, actor_of(principal), details, 201)
    services.ops.observe_feedback(details)
    return FeedbackResponse(feedback_id=rec.seq, **details.model_dump(exclude={"kind"}))
