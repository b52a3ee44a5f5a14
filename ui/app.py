"""medcite Streamlit page: ask a clinical question, read the cited and verified answer.

Run with `streamlit run ui/app.py`; configure with MEDCITE_API_URL and MEDCITE_API_KEY.
Everything that builds display strings lives in ui/render.py; this script only wires
widgets, the API client and session state together.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if sys.path[:1] != [_REPO_ROOT]:
    # Streamlit puts this script's folder (ui/) first on sys.path, where this very file
    # would shadow the `app` package that holds the API models. Putting the repository
    # root first (once, without duplicates across reruns) restores the package.
    sys.path[:] = [_REPO_ROOT, *(p for p in sys.path if p != _REPO_ROOT)]

import streamlit as st  # noqa: E402

from app.schemas import AskRequest, AskResponse  # noqa: E402
from retrieval.models import SearchFilters  # noqa: E402
from ui import render  # noqa: E402
from ui.api_client import ApiError, ApiTimeout, MedciteClient  # noqa: E402
from ui.patients import list_patient_bundles, load_bundle  # noqa: E402

DEFAULT_API_URL = "http://127.0.0.1:8000"
DOC_TYPES = ["guideline", "label", "formulary", "coverage"]
NO_PATIENT = "(none)"

# Session-state keys that outlive a rerun: the last answer and the last error.
RESPONSE_KEY = "last_response"
ERROR_KEY = "last_error"


@st.cache_data(ttl=30, show_spinner=False)
def _health(api_url: str) -> dict[str, Any]:
    # Cached briefly because every widget change reruns the script; failures raise and
    # are therefore not cached, so a restarted API is noticed on the next rerun.
    return MedciteClient(api_url, None).health().model_dump()


def _parse_payers(text: str) -> list[str] | None:
    payers = [part.strip() for part in text.split(",") if part.strip()]
    return payers or None


@dataclass(frozen=True)
class Choices:
    """What the sidebar collected for the next question."""

    api_key: str | None
    filters: SearchFilters | None
    patient: str | None  # a label from list_patient_bundles()
    strict: bool


def _sidebar(api_url: str, env_key: str) -> Choices:
    with st.sidebar:
        st.header("Connection")
        st.caption(f"API: {api_url}")
        override = st.text_input(
            "API key",
            type="password",
            key="api_key_override",
            help="Overrides MEDCITE_API_KEY for this browser session.",
        )
        api_key = override.strip() or env_key.strip() or None
        if api_key is None:
            st.warning("No API key: set MEDCITE_API_KEY or enter one above.")
        elif not override.strip():
            st.caption("Using the key from MEDCITE_API_KEY.")

        st.header("Filters")
        doc_types = st.multiselect("Document types", DOC_TYPES, key="doc_types")
        payer = st.text_input("Payer", key="payer", help="One payer, or several separated by ,")

        st.header("Patient")
        bundles = list_patient_bundles()
        patient = st.selectbox(
            "Synthetic patient (FHIR bundle)",
            [NO_PATIENT, *bundles],
            key="patient",
            help="Sends the patient's Synthea bundle so the answer can use age, "
            "conditions and medications.",
        )

        st.header("Options")
        strict = st.checkbox("Strict: drop sentences without a supported citation", key="strict")

    filters = SearchFilters(doc_types=doc_types or None, payers=_parse_payers(payer))
    has_filters = filters.doc_types is not None or filters.payers is not None
    return Choices(
        api_key=api_key,
        filters=filters if has_filters else None,
        patient=None if patient == NO_PATIENT else patient,
        strict=strict,
    )


def _show_health(api_url: str) -> None:
    try:
        health = _health(api_url)
    except ApiTimeout as exc:
        st.warning(render.escape_text(f"{exc}; it may be busy answering another question."))
        return
    except ApiError as exc:
        st.error(render.escape_text(f"{exc}. Is the API running? Check MEDCITE_API_URL."))
        return
    st.sidebar.caption(
        render.escape_text(
            f"Connected: collection {health['collection']}, {health['passages']} passages, "
            f"LLM {health['llm']} ({health['status']})"
        )
    )


def _ask(api_url: str, choices: Choices, question: str) -> None:
    st.session_state[RESPONSE_KEY] = None
    st.session_state[ERROR_KEY] = None
    try:
        bundle = load_bundle(list_patient_bundles()[choices.patient]) if choices.patient else None
    except (OSError, ValueError, KeyError) as exc:
        st.session_state[ERROR_KEY] = f"Could not read the patient bundle: {exc}"
        return
    request = AskRequest(
        question=question, filters=choices.filters, fhir_bundle=bundle, strict=choices.strict
    )
    client = MedciteClient(api_url, choices.api_key)
    try:
        with st.spinner("Retrieving, answering and verifying; this takes up to a minute on CPU"):
            st.session_state[RESPONSE_KEY] = client.ask(request)
    except ApiError as exc:
        st.session_state[ERROR_KEY] = str(exc)


def _show_response(response: AskResponse) -> None:
    summary = render.status_summary(response)
    show: dict[str, Callable[[str], object]] = {
        "success": st.success,
        "warning": st.warning,
        "error": st.error,
        "info": st.info,
    }
    # The abstain reason comes from the API, and st.info etc. render markdown.
    show[summary.level](render.escape_text(summary.text))

    left, right = st.columns([3, 2], gap="large")
    with left:
        st.subheader("Answer")
        if render.is_abstention(response):
            _show_abstention_answer(response)
        else:
            for line in render.render_answer(response):
                st.markdown(line, unsafe_allow_html=True)
        removed = render.render_removed(response)
        if removed:
            with st.expander(f"Removed by strict mode ({len(removed)})"):
                for line in removed:
                    st.markdown(line, unsafe_allow_html=True)
        patient = render.render_patient(response.patient)
        if patient:
            st.caption(patient, unsafe_allow_html=True)
        st.caption(render.render_footer(response))

    with right:
        if render.is_abstention(response) or not render.citation_numbers(response):
            st.subheader("Closest retrieved passages")
            for source in render.abstention_sources(response):
                with st.container(border=True):
                    st.markdown(source, unsafe_allow_html=True)
            return
        st.subheader("Sources")
        for _number, source in render.cited_sources(response):
            with st.container(border=True):
                st.markdown(source, unsafe_allow_html=True)
        others = render.uncited_passages(response)
        if others:
            with st.expander(f"Other retrieved passages ({len(others)})"):
                for passage in others:
                    st.markdown(
                        render.render_source(passage, None, show_score=True),
                        unsafe_allow_html=True,
                    )


def _show_abstention_answer(response: AskResponse) -> None:
    reason = response.abstain_reason or "no reason given"
    st.markdown("The service did not answer: " + render.escape_text(reason), unsafe_allow_html=True)
    draft = render.render_answer(response)
    if draft:
        # Shown for transparency only, folded away so it is not read as the answer.
        with st.expander(f"Rejected draft ({len(draft)} sentences, not verified)"):
            for line in draft:
                st.markdown(line, unsafe_allow_html=True)


def main() -> None:
    st.set_page_config(page_title="medcite", layout="wide")
    st.title("medcite")
    st.caption("Clinical answers in which every sentence cites, and is checked against, a source.")

    api_url = os.environ.get("MEDCITE_API_URL", "").strip() or DEFAULT_API_URL
    env_key = os.environ.get("MEDCITE_API_KEY", "")
    choices = _sidebar(api_url, env_key)
    _show_health(api_url)

    question = st.text_area(
        "Question", key="question", height=100, placeholder="e.g. What is the starting dose of ..."
    )
    if st.button("Ask", type="primary", key="ask"):
        if question.strip():
            _ask(api_url, choices, question.strip())
        else:
            st.session_state[ERROR_KEY] = "Type a question first."

    error = st.session_state.get(ERROR_KEY)
    if error:
        # Error texts carry the API's `detail`, which must not be read as markdown.
        st.error(render.escape_text(error))
    response = st.session_state.get(RESPONSE_KEY)
    if isinstance(response, AskResponse):
        _show_response(response)


main()
