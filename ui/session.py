"""Who is signed in to this browser session, and which pages their role opens.

The UI holds one credential per browser session: the key or token its user signed in
with (or, for the single-user loopback set-up `medcite up` starts, MEDCITE_API_KEY). Every
call is made with it, so the UI can never do more than its user may; the pages a role
cannot use are not offered, and the API refuses them anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app.security.api_keys import Principal, Role
from ui.api_client import ApiError, MedciteClient
from ui.settings import UiSettings

CONNECTION_KEY = "connection"
SIGNED_OUT_KEY = "signed_out"

# Page -> roles that may use it (admin may use every page).
PAGE_ROLES: dict[str, frozenset[Role]] = {
    "ask": frozenset({Role.clinician, Role.integration}),
    "documents": frozenset({Role.policy_admin}),
    "audit": frozenset({Role.auditor}),
    "review": frozenset({Role.reviewer}),
}


@dataclass(frozen=True)
class Connection:
    api_url: str
    api_key: str
    principal: Principal

    def client(self) -> MedciteClient:
        return MedciteClient(self.api_url, self.api_key)


DEFAULT_API_URL = "http://127.0.0.1:8000"


def api_url(settings: UiSettings) -> str:
    return settings.api_url.strip() or DEFAULT_API_URL


def may_use(role: Role, page: str) -> bool:
    return role is Role.admin or role in PAGE_ROLES[page]


def pages_for(role: Role) -> list[str]:
    return [page for page in PAGE_ROLES if may_use(role, page)]


def sign_in(api_url: str, key: str) -> Connection:
    """Check the key with the API (GET /me); raises ApiError when it is refused."""
    key = key.strip()
    if not key:
        raise ApiError(None, "Enter an API key or token.")
    principal = MedciteClient(api_url, key).me()
    return Connection(api_url=api_url, api_key=key, principal=principal)


def current() -> Connection | None:
    connection = st.session_state.get(CONNECTION_KEY)
    return connection if isinstance(connection, Connection) else None


def connect(settings: UiSettings) -> tuple[Connection | None, str | None]:
    """The session's connection, signing in with MEDCITE_API_KEY on first use.

    Returns (connection, error): the error of an automatic sign-in that failed."""
    url = api_url(settings)
    connection = current()
    if connection is not None and connection.api_url == url:
        return connection, None
    if st.session_state.get(SIGNED_OUT_KEY) or not settings.api_key:
        return None, None
    try:
        connection = sign_in(url, settings.api_key)
    except ApiError as exc:
        return None, f"Signing in with MEDCITE_API_KEY failed: {exc}"
    st.session_state[CONNECTION_KEY] = connection
    return connection, None


def store(connection: Connection) -> None:
    st.session_state[CONNECTION_KEY] = connection
    st.session_state[SIGNED_OUT_KEY] = False


def sign_out() -> None:
    # Forget the key and everything fetched with it (answers, audit records, diffs).
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.session_state[SIGNED_OUT_KEY] = True


def require(page: str) -> Connection:
    """The connection for a page, or stop the page with a clear message."""
    connection = current()
    if connection is None:
        st.warning("Sign in first.")
        st.stop()
        raise AssertionError("unreachable")  # st.stop() raises; this tells type checkers
    if not may_use(connection.principal.role, page):
        st.error(
            f"Your role ({connection.principal.role.value}) may not use this page; it needs "
            + " or ".join(sorted(r.value for r in PAGE_ROLES[page])) + "."
        )
        st.stop()
    return connection
