"""Who the caller is: lets a client (the Streamlit UI) show only what the key may do.

Any valid key or token may ask; the answer is the caller's own role and groups, which it
already holds, so reading it is not audited.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api.deps import authenticated
from app.security.api_keys import Principal

router = APIRouter(tags=["auth"])


@router.get(
    "/me",
    response_model=Principal,
    responses={401: {"description": "Missing or invalid API key or token"}},
)
def me(principal: Principal = Depends(authenticated)) -> Principal:
    """The authenticated caller: key id, name, role and access groups."""
    return principal
