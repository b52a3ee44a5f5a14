"""FastAPI dependencies: the services and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import Principal, Role
from app.services import Services

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def authenticated(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    services: Services = Depends(get_services),
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = services.keys.authenticate(credentials.credentials)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def require_role(*roles: Role) -> Callable[[Principal], Principal]:
    def check(principal: Principal = Depends(authenticated)) -> Principal:
        if principal.role not in roles and principal.role is not Role.admin:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role.value!r} may not do this; needs one of "
                + ", ".join(r.value for r in roles),
            )
        return principal

    return check
