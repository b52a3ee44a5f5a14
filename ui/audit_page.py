"""The Audit page (auditors): search the audit log by user, date and document, then open a
record to read the question, the answer, its sources and how it was verified.

Each search is itself recorded by the API (an `audit_query` record)."""

from __future__ import annotations

from datetime import date

import streamlit as st

from app.audit.models import AskDetails, AuditAction, AuditRecord
from ui import render, render_audit, render_review, session
from ui.api_client import ApiError, MedciteClient

RESULTS_KEY = "audit_results"  # list[AuditRecord], newest first
CURSOR_KEY = "audit_next_cursor"
QUERY_KEY = "audit_query"  # the filters of the shown results, for "older records"
ANY_ACTION = "(any)"
PAGE_SIZE = 50


def _as_date(value: object) -> date | None:
    return value if isinstance(value, date) else None


def _search_form() -> dict[str, object] | None:
    with st.form("audit_search"):
        a, b, c = st.columns(3)
        user = a.text_input("User (key name or id)", key="audit_user")
        doc_id = a.text_input("Document", key="audit_doc",
                              help="Only answers whose retrieved passages include it.")
        date_from = b.date_input("From (UTC)", value=None, format="YYYY-MM-DD",
                                 key="audit_from")
        date_to = b.date_input("To (UTC)", value=None, format="YYYY-MM-DD", key="audit_to")
        actions = [ANY_ACTION, *(a.value for a in AuditAction)]
        action = c.selectbox("Action", actions, index=actions.index("ask"), key="audit_action")
        submitted = st.form_submit_button("Search", type="primary")
    if not submitted:
        return None
    return {
        "user": user.strip() or None,
        "doc_id": doc_id.strip() or None,
        "date_from": _as_date(date_from),
        "date_to": _as_date(date_to),
        "action": None if action == ANY_ACTION else action,
    }


def _search(client: MedciteClient, query: dict[str, object], cursor: int | None) -> None:
    page = client.audit(limit=PAGE_SIZE, cursor=cursor, **query)  # type: ignore[arg-type]
    earlier: list[AuditRecord] = st.session_state.get(RESULTS_KEY, []) if cursor else []
    st.session_state[RESULTS_KEY] = [*earlier, *page.records]
    st.session_state[CURSOR_KEY] = page.next_cursor
    st.session_state[QUERY_KEY] = query


def _show_ask_record(record: AuditRecord, details: AskDetails) -> None:
    st.markdown("**Question**")
    if details.question is None:
        st.caption(f"Not kept ({details.question_chars} characters, refused unread).")
    else:
        st.markdown(render.escape_text(details.question), unsafe_allow_html=True)

    left, right = st.columns([3, 2], gap="large")
    numbers = render_audit.passage_numbers(details)
    with left:
        st.markdown("**Answer as given**")
        if details.abstained:
            st.info(render.escape_text(
                f"Abstained: {details.abstain_reason or 'no reason given'}"))
        for sentence in details.sentences:
            st.markdown(render_audit.render_audited_sentence(sentence, numbers),
                        unsafe_allow_html=True)
        if not details.sentences and not details.abstained:
            st.caption("No answer sentences (see the verification facts).")
        st.markdown("**Verification**")
        for line in render_audit.verification_lines(record, details):
            st.markdown("- " + render.escape_text(line))
    with right:
        st.markdown("**Sources retrieved**")
        st.dataframe(render_audit.source_rows(details), hide_index=True,
                     use_container_width=True)


def _show_record(record: AuditRecord) -> None:
    with st.container(border=True):
        st.markdown(
            render.escape_text(
                f"Record {record.seq} · {record.ts.isoformat(timespec='seconds')} · "
                f"{record.actor.name} ({record.actor.role}) · {record.action.value} · "
                f"HTTP {record.http_status}"
            ),
            unsafe_allow_html=True,
        )
        if isinstance(record.details, AskDetails):
            _show_ask_record(record, record.details)
        else:
            st.json(record.details.model_dump(mode="json"))


def _show_alarms(client: MedciteClient) -> None:
    """The quality alarms (GET /alarms): rates over the window against their thresholds."""
    try:
        states = client.alarms()
    except ApiError as exc:
        st.warning(render.escape_text(f"Quality alarms unavailable: {exc}"))
        return
    raised = [s for s in states if s.active]
    st.subheader("Quality alarms")
    if raised:
        st.error(render.escape_text(
            "Raised: " + ", ".join(s.signal.replace("_", " ") for s in raised)))
    with st.expander("Quality signals", expanded=bool(raised)):
        st.table(render_review.alarm_rows(states))


def show() -> None:
    connection = session.require("audit")
    client = connection.client()
    _show_alarms(client)
    st.subheader("Audit log")
    query = _search_form()
    if query is not None:
        try:
            _search(client, query, None)
        except ApiError as exc:
            st.error(render.escape_text(str(exc)))
            return

    records: list[AuditRecord] | None = st.session_state.get(RESULTS_KEY)
    if records is None:
        st.caption("Search to list records, newest first.")
        return
    if not records:
        st.info("No records match.")
        return
    st.dataframe(render_audit.record_rows(records), hide_index=True, use_container_width=True,
                 height=min(38 + 35 * len(records), 320))
    by_seq = {record.seq: record for record in records}
    cursor = st.session_state.get(CURSOR_KEY)
    if cursor and st.button(f"Load {PAGE_SIZE} older records", key="audit_more"):
        try:
            _search(client, st.session_state[QUERY_KEY], cursor)
        except ApiError as exc:
            st.error(render.escape_text(str(exc)))
            return
        st.rerun()
    seq = st.selectbox("Open record", list(by_seq),
                       format_func=lambda s: render_audit.record_label(by_seq[s]))
    if seq in by_seq:
        _show_record(by_seq[seq])
