"""Sign in with an API key or an OIDC access token."""

from __future__ import annotations

import streamlit as st

from ui import render, session
from ui.api_client import ApiError
from ui.settings import UiSettings


def show() -> None:
    st.subheader("Sign in")
    st.caption(
        "Use your own medcite API key or OIDC access token. The UI calls the API with it "
        "and nothing else, so you see and do exactly what your role allows."
    )
    settings = UiSettings()
    key = st.text_input("API key or token", type="password", key="login_key")
    if st.button("Sign in", type="primary", key="sign_in"):
        try:
            connection = session.sign_in(session.api_url(settings), key)
        except ApiError as exc:
            st.error(render.escape_text(str(exc)))
            return
        session.store(connection)
        st.rerun()
