"""The Ask page: a question with filters and an optional patient, the answer streamed as
it is generated, then the verified answer with citation badges beside its sources.

Display strings are built in ui/render.py; this module wires widgets, the API client and
session state together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import streamlit as st

from app.answering.models import AnswerStatus, AskRequest, AskResponse
from app.audit.models import FeedbackRating, FeedbackReason
from app.operations.models import FeedbackRequest
from retrieval.models import SearchFilters
from ui import render, render_review, session
from ui.api_client import ApiError, MedciteClient
from ui.patients import list_patient_bundles, load_bundle

DOC_TYPES = ["guideline", "label", "formulary", "coverage"]
NO_PATIENT = "(none)"
# Redrawing the draft on every token would flood the browser connection.
DRAFT_REFRESH_S = 0.25

# Session-state keys that outlive a rerun: the last answer and the last error.
RESPONSE_KEY = "last_response"
ERROR_KEY = "last_error"


@dataclass(frozen=True)
class Choices:
    """What the sidebar collected for the next question."""

    filters: SearchFilters | None
    patient: str | None  # a label from list_patient_bundles()
    strict: bool


def _parse_payers(text: str) -> list[str] | None:
    payers = [part.strip() for part in text.split(",") if part.strip()]
    return payers or None


def _sidebar() -> Choices:
    with st.sidebar:
        st.header("Filters")
        doc_types = st.multiselect("Document types", DOC_TYPES, key="doc_types")
        payer = st.text_input("Payer", key="payer", help="One payer, or several separated by ,")
        as_of = st.date_input(
            "As of", value=None, key="as_of", format="YYYY-MM-DD",
            help="Answer from the document versions in force on this date (empty: current).",
        )

        st.header("Patient")
        patient = st.selectbox(
            "Synthetic patient (FHIR bundle)",
            [NO_PATIENT, *list_patient_bundles()],
            key="patient",
            help="Sends the patient's Synthea bundle so the answer can use age, "
            "conditions and medications.",
        )

        st.header("Options")
        strict = st.checkbox("Strict: drop sentences without a supported citation", key="strict")

    filters = SearchFilters(
        doc_types=doc_types or None, payers=_parse_payers(payer),
        as_of=as_of if isinstance(as_of, date) else None,
    )
    has_filters = any(v is not None for v in (filters.doc_types, filters.payers, filters.as_of))
    return Choices(
        filters=filters if has_filters else None,
        patient=None if patient == NO_PATIENT else patient,
        strict=strict,
    )


def _ask(client: MedciteClient, choices: Choices, question: str) -> None:
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
    progress = st.empty()
    draft_box = st.empty()
    progress.info("Retrieving sources…")
    raw: list[str] = []
    last_draw = 0.0
    try:
        for event in client.ask_stream(request):
            if event.event == "passages":
                count = len(event.data.get("passages", []))
                progress.info(
                    f"Retrieved {count} passages; generating the answer (up to a minute on CPU)…"
                )
            elif event.event == "token":
                raw.append(str(event.data.get("text", "")))
                if time.monotonic() - last_draw >= DRAFT_REFRESH_S:
                    draft_box.markdown(render.render_draft("".join(raw)), unsafe_allow_html=True)
                    last_draw = time.monotonic()
            elif event.event == "answer":
                progress.info("Checking every citation against its passage…")
                st.session_state[RESPONSE_KEY] = AskResponse.model_validate(event.data)
        if st.session_state[RESPONSE_KEY] is None:
            st.session_state[ERROR_KEY] = "The API closed the stream without an answer."
    except ApiError as exc:
        st.session_state[ERROR_KEY] = str(exc)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        st.session_state[ERROR_KEY] = f"The API sent an answer this UI does not understand: {exc}"
    finally:
        progress.empty()
        draft_box.empty()


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
        if response.status == AnswerStatus.evidence_only:
            # Quotes from the sources, never dressed as a composed answer.
            st.subheader("Evidence from the sources (verbatim)")
            for line in render.render_evidence(response):
                st.markdown(line, unsafe_allow_html=True)
        else:
            st.subheader("Answer")
            if render.is_abstention(response):
                _show_abstention_answer(response)
            else:
                for line in render.render_answer(response):
                    st.markdown(line, unsafe_allow_html=True)
        removed = render.render_removed(response)
        if removed:
            strict = bool(st.session_state.get("strict", False))
            with st.expander(render.removed_label(response, strict)):
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
        citations = render.all_citations(response)
        for number, passage in render.cited_passages(response):
            with st.container(border=True):
                st.markdown(
                    render.render_source(passage, number, citations, shorten=True),
                    unsafe_allow_html=True,
                )
                with st.expander(f"Full section: {render.section_label(passage)}"):
                    st.markdown(
                        render.render_full_passage(passage, citations), unsafe_allow_html=True
                    )
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


def _feedback_form(client: MedciteClient, response: AskResponse) -> None:
    """Under every answer: a rating that goes into the audit chain with the answer's id
    (a later one from the same user replaces it; both are kept)."""
    if response.answer_id is None:
        return
    with st.form(f"feedback_{response.answer_id}", border=True):
        st.markdown("**Was this answer right?**")
        rating = st.radio("Rating", ["👍 Useful and correct", "👎 Something is wrong"],
                          horizontal=True, label_visibility="collapsed")
        reasons = [None, *FeedbackReason]
        reason = st.selectbox(
            "What was wrong (for 👎)", reasons,
            format_func=lambda r: "—" if r is None else render_review.REASON_LABELS[r])
        comment = st.text_input("Comment (optional; no patient identifiers)", max_chars=2000)
        sent = st.form_submit_button("Send feedback")
    if not sent:
        return
    down = rating.startswith("👎")
    try:
        request = FeedbackRequest(
            rating=FeedbackRating.down if down else FeedbackRating.up,
            reason=reason if down else None, comment=comment.strip() or None)
        client.feedback(response.answer_id, request)
    except (ApiError, ValueError) as exc:
        st.error(render.escape_text(str(exc)))
        return
    st.success(f"Thank you: feedback on answer #{response.answer_id} recorded.")


def show() -> None:
    connection = session.require("ask")
    choices = _sidebar()
    question = st.text_area(
        "Question", key="question", height=100, placeholder="e.g. What is the starting dose of ..."
    )
    if st.button("Ask", type="primary", key="ask"):
        if question.strip():
            _ask(connection.client(), choices, question.strip())
        else:
            st.session_state[ERROR_KEY] = "Type a question first."

    error = st.session_state.get(ERROR_KEY)
    if error:
        # Error texts carry the API's `detail`, which must not be read as markdown.
        st.error(render.escape_text(error))
    response = st.session_state.get(RESPONSE_KEY)
    if isinstance(response, AskResponse):
        _show_response(response)
        _feedback_form(connection.client(), response)
