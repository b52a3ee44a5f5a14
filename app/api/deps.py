"""FastAPI dependencies: the services and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.audit.models import AccessDeniedDetails, AuditAction, AuditActor
from app.core.container import Services
from app.security.api_keys import Principal, Role

_bearer = HTTPBearer(
    auto_error=False,
    description="API key or OIDC access token: `Authorization: Bearer <key or token>`",
)


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def actor_of(principal: Principal) -> AuditActor:
    return AuditActor(key_id=principal.key_id, name=principal.name, role=principal.role.value)


def authenticated(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    services: Services = Depends(get_services),
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = services.keys.authenticate(credentials.credentials)
    if principal is None and services.oidc is not None:
        principal = services.oidc.authenticate(credentials.credentials)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key or token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Kept so a request that fails validation after authentication is still audited.
    request.state.principal = principal
    return principal


def require_role(*roles: Role) -> Callable[..., Principal]:
    def check(
        request: Request,
        principal: Principal = Depends(authenticated),
        services: Services = Depends(get_services),
    ) -> Principal:
        if principal.role not in roles and principal.role is not Role.admin:
            # A known key reaching for what it may not do is worth an audit record;
            # AuditUnavailable from here becomes a 503, like every unaudited request.
            services.audit.append(
                AuditAction.access_denied, actor_of(principal),
                AccessDeniedDetails(method=request.method, path=request.url.path,
                                    required_roles=[r.value for r in roles]),
                http_status=status.HTTP_403_FORBIDDEN,
            )
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role.value!r} may not do this; needs one of "
                + ", ".join(r.value for r in roles),
            )
        return principal

    return check
