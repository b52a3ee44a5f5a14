"""The Review page (reviewers): the queue of sampled and flagged answers, each with its
question, the answer as given with every citation's verification, the sources' text and
the users' feedback; a form labels it (correct / incorrect / unsafe, the key facts a
correct answer needs, the documents that answer it). Reading the queue is recorded by
the API; labels go into the audit chain."""

from __future__ import annotations

import streamlit as st

from app.audit.models import AskDetails, ReviewVerdict
from app.operations.models import GoldRequest, QueueItem, ReviewRequest
from ui import render, render_audit, render_review, session
from ui.api_client import ApiError, MedciteClient

QUEUE_KEY = "review_queue"


def _load(client: MedciteClient, include_labelled: bool) -> None:
    st.session_state[QUEUE_KEY] = client.review_queue(include_labelled)


def _show_item(item: QueueItem) -> None:
    details = item.record.details
    assert isinstance(details, AskDetails)
    st.markdown("**Question**")
    st.markdown(render.escape_text(details.question or "(not kept)"), unsafe_allow_html=True)
    left, right = st.columns([3, 2], gap="large")
    numbers = render_audit.passage_numbers(details)
    with left:
        st.markdown("**Answer as given**")
        if details.abstained:
            st.info(render.escape_text(f"Abstained: {details.abstain_reason or ''}"))
        for sentence in details.sentences:
            st.markdown(render_audit.render_audited_sentence(sentence, numbers),
                        unsafe_allow_html=True)
        st.markdown("**Verification**")
        for line in render_audit.verification_lines(item.record, details):
            st.markdown("- " + render.escape_text(line))
        lines = render_review.feedback_lines(item)
        if lines:
            st.markdown("**Feedback**")
            for line in lines:
                st.markdown("- " + render.escape_text(line))
    with right:
        st.markdown("**Sources**")
        for number, source in enumerate(item.sources, start=1):
            title = source.title or source.doc_id
            with st.expander(f"[{number}] {title} — {source.source_file or ''}"):
                st.markdown(render.escape_text(source.text or "(no longer stored)"),
                            unsafe_allow_html=True)


def _label_form(client: MedciteClient, item: QueueItem) -> None:
    current = item.label.details if item.label else None
    with st.form(f"label_{item.answer_id}"):
        verdicts = [v.value for v in ReviewVerdict]
        verdict = st.radio("Verdict", verdicts, horizontal=True,
                           index=verdicts.index(current.verdict.value) if current else 0)
        facts = st.text_area(
            "Key facts a correct answer needs (one per line; forms separated by |)",
            value=render_review.format_key_facts(current.key_facts) if current else "")
        options = {s.passage_id: f"{s.source_file or s.doc_id} ({s.passage_id[:8]})"
                   for s in item.sources}
        gold = st.multiselect("Passages that answer the question", list(options),
                              format_func=options.__getitem__)
        contains = st.text_input("Text the answering passage contains (optional)")
        other_file = st.text_input("Or a corpus file that answers it (path)")
        kind = st.text_input("Question kind (dose, formulary_status, unanswerable, …)",
                             value=current.question_kind or "" if current else "")
        note = st.text_area("Note", value=current.note or "" if current else "")
        submitted = st.form_submit_button("Save label", type="primary")
    if not submitted:
        return
    entries = [GoldRequest(passage_id=p, contains=contains.strip()) for p in gold]
    if other_file.strip():
        entries.append(GoldRequest(source_file=other_file.strip(), contains=contains.strip()))
    try:
        request = ReviewRequest(
            verdict=ReviewVerdict(verdict), key_facts=render_review.parse_key_facts(facts),
            gold=entries, question_kind=kind.strip() or None, note=note.strip() or None)
        client.review(item.answer_id, request)
    except (ApiError, ValueError) as exc:
        st.error(render.escape_text(str(exc)))
        return
    st.success(f"Label saved for answer #{item.answer_id}.")


def show() -> None:
    connection = session.require("review")
    client = connection.client()
    st.subheader("Review queue")
    include = st.checkbox("Include answers already labelled", key="review_include")
    if st.button("Refresh", key="review_refresh") or QUEUE_KEY not in st.session_state:
        try:
            _load(client, include)
        except ApiError as exc:
            st.error(render.escape_text(str(exc)))
            return
    queue = st.session_state[QUEUE_KEY]
    st.caption(f"{len(queue.items)} to review: every answer with negative feedback, and "
               f"{queue.sample_rate:.0%} of the {queue.answers_in_window} answers of the "
               f"last {queue.window_days} days.")
    if not queue.items:
        st.info("Nothing to review.")
        return
    by_id = {item.answer_id: item for item in queue.items}
    answer_id = st.selectbox("Answer", list(by_id),
                             format_func=lambda a: render_review.queue_label(by_id[a]))
    item = by_id[answer_id]
    with st.container(border=True):
        _show_item(item)
    _label_form(client, item)
