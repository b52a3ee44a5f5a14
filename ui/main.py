"""medcite's Streamlit UI: sign in, then the pages the signed-in role may use.

Run with `streamlit run ui/main.py`; configure with MEDCITE_API_URL (and, for the
single-user loopback set-up only, MEDCITE_API_KEY, which signs the browser in with that
key). Pages: Ask (clinician, integration), Documents (policy_admin), Audit (auditor),
Review (reviewer); admin sees all four. Each page's logic lives in ui/<page>_page.py;
ui/views/ holds the one-line scripts st.navigation runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_UI_DIR = Path(__file__).resolve().parent
_REPO_ROOT = str(_UI_DIR.parent)
if sys.path[:1] != [_REPO_ROOT]:
    # Streamlit puts this script's folder (ui/) first on sys.path and not the repository
    # root, so the `ui` and `app` packages would not import. Putting the root first (once,
    # without duplicates across reruns) makes them importable from any working directory.
    sys.path[:] = [_REPO_ROOT, *(p for p in sys.path if p != _REPO_ROOT)]

import streamlit as st  # noqa: E402

from ui import render, session  # noqa: E402
from ui.api_client import ApiError, ApiTimeout, MedciteClient  # noqa: E402
from ui.settings import UiSettings  # noqa: E402

PAGES: dict[str, tuple[str, str, str]] = {
    # page -> (script, title, icon)
    "ask": ("views/ask.py", "Ask", ":material/quick_reference_all:"),
    "documents": ("views/documents.py", "Documents", ":material/description:"),
    "audit": ("views/audit.py", "Audit", ":material/policy:"),
    "review": ("views/review.py", "Review", ":material/rate_review:"),
}


@st.cache_data(ttl=30, show_spinner=False)
def _health(api_url: str) -> dict[str, Any]:
    # Cached briefly because every widget change reruns the script; failures raise and
    # are therefore not cached, so a restarted API is noticed on the next rerun.
    return MedciteClient(api_url, None).health().model_dump()


def _show_health(api_url: str) -> None:
    try:
        health = _health(api_url)
    except ApiTimeout as exc:
        st.sidebar.warning(render.escape_text(f"{exc}; it may be busy answering a question."))
        return
    except ApiError as exc:
        st.error(render.escape_text(f"{exc}. Is the API running? Check MEDCITE_API_URL."))
        return
    st.sidebar.caption(
        render.escape_text(
            f"API {api_url}: {health['passages']} passages, LLM {health['llm']} "
            f"({health['status']})"
        )
    )


def _show_identity(connection: session.Connection) -> None:
    who = connection.principal
    with st.sidebar:
        st.markdown(
            render.escape_text(f"Signed in as {who.name}")
            + f"  \n<small>role <b>{who.role.value}</b> · groups "
            + render.escape_text(", ".join(who.groups) or "none")
            + "</small>",
            unsafe_allow_html=True,
        )
        if st.button("Sign out", key="sign_out"):
            session.sign_out()
            st.rerun()


def main() -> None:
    st.set_page_config(page_title="medcite", layout="wide")
    settings = UiSettings()
    api_url = session.api_url(settings)
    connection, error = session.connect(settings)

    if connection is None:
        pages = [st.Page(str(_UI_DIR / "views/sign_in.py"), title="Sign in",
                         icon=":material/login:")]
    else:
        pages = [
            st.Page(str(_UI_DIR / PAGES[name][0]), title=PAGES[name][1], icon=PAGES[name][2])
            for name in session.pages_for(connection.principal.role)
        ]
    navigation = st.navigation(pages)

    st.title("medcite")
    st.caption("Clinical answers in which every sentence cites, and is checked against, a source.")
    _show_health(api_url)
    if error:
        st.error(render.escape_text(error))
    if connection is not None:
        _show_identity(connection)
    navigation.run()


main()
