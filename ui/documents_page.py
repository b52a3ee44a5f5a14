"""The Documents page (policy teams): upload a new version, follow its ingest, read the
diff against the previous version, browse the version history, retire a document."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date

import streamlit as st

from ingest.identity import date_from_filename
from ui import render, render_docs, session
from ui.api_client import ApiError, MedciteClient
from ui.models import DocumentDiff, DocumentInfo, IngestJob

DOC_TYPES = ["formulary", "coverage", "guideline", "label"]
# Ingest embeds every chunk on the API's CPU: minutes for a large file on a busy machine.
JOB_TIMEOUT_S = 900.0
JOB_POLL_S = 1.0

SELECTED_KEY = "documents_selected"  # doc_key whose versions and diff are shown
JOB_KEY = "documents_last_job"
MESSAGE_KEY = "documents_message"


def wait_for_job(
    client: MedciteClient,
    job: IngestJob,
    on_progress: Callable[[IngestJob], None] = lambda job: None,
    *,
    timeout_s: float = JOB_TIMEOUT_S,
    poll_s: float = JOB_POLL_S,
) -> IngestJob:
    """Poll GET /ingest/jobs/{id} until the job is done or failed, or the time is up."""
    deadline = time.monotonic() + timeout_s
    while not job.finished and time.monotonic() < deadline:
        on_progress(job)
        time.sleep(poll_s)
        job = client.job(job.job_id)
    on_progress(job)
    return job


def _dated(filename: str) -> date | None:
    found = date_from_filename(filename)
    try:
        return date.fromisoformat(found) if found else None
    except ValueError:  # "name.v2024-13-45.md": not a date, so no effective date
        return None


def _upload_form(client: MedciteClient, selected: DocumentInfo | None) -> None:
    with st.form("upload_form", clear_on_submit=False):
        st.markdown("**Upload a new version**")
        upload = st.file_uploader("Document file", key="upload_file")
        left, right = st.columns(2)
        with left:
            default_type = DOC_TYPES.index(selected.doc_type) if (
                selected is not None and selected.doc_type in DOC_TYPES) else 0
            doc_type = st.selectbox("Document type", DOC_TYPES, index=default_type)
            payer = st.text_input("Payer", value=(selected.payer or "") if selected else "")
            effective = st.date_input(
                "Effective date", value=None, format="YYYY-MM-DD", key="upload_effective",
                help="Empty: the date in a file name like name.v2024-01-05.md, as the "
                "corpus manifest reads it; else the date the document states, if any.",
            )
        with right:
            doc_key = st.text_input(
                "Document key", value=selected.doc_key if selected else "",
                help="The document this file is a new version of; empty derives it from the "
                "payer and the file name (a new document).",
            )
            groups = st.text_input(
                "Access groups",
                value=", ".join(selected.access_groups) if selected else "public",
                help="Comma-separated; who may retrieve the document.",
            )
        submitted = st.form_submit_button("Upload and ingest", type="primary")
    if not submitted:
        return
    if upload is None:
        st.error("Choose a file first.")
        return
    try:
        job = client.upload(
            upload.name, upload.getvalue(), doc_type=doc_type, payer=payer.strip() or None,
            effective_date=effective if isinstance(effective, date) else _dated(upload.name),
            access_groups=[g.strip() for g in groups.split(",") if g.strip()] or None,
            doc_key=doc_key.strip() or None,
        )
        bar = st.progress(0.0, text=f"Ingesting {upload.name}: queued")

        def show_progress(current: IngestJob) -> None:
            bar.progress(min(max(current.progress, 0.0), 1.0),
                         text=f"Ingesting {current.filename}: {current.status}")

        job = wait_for_job(client, job, show_progress)
    except ApiError as exc:
        st.error(render.escape_text(str(exc)))
        return
    st.session_state[JOB_KEY] = job
    if job.status == "done" and job.doc_key:
        st.session_state[SELECTED_KEY] = job.doc_key
    st.rerun()


def _show_job(job: IngestJob) -> None:
    name = render.escape_text(job.filename)
    if job.status == "done":
        previous = f" (replacing version {job.previous_version})" if job.previous_version else ""
        changes = f" Changes: {render.escape_text(job.changes)}." if job.changes else ""
        st.success(f"Ingested {name}: {render.escape_text(job.doc_key or '?')} version "
                   f"{job.version}{previous}, {job.chunks} chunks.{changes}")
    elif job.status == "failed":
        st.error(f"Ingesting {name} failed: {render.escape_text(job.reason or 'no reason given')}")
    else:
        st.warning(f"Still ingesting {name} ({job.status}); reload the page to check again.")


def _show_diff(diff: DocumentDiff) -> None:
    st.markdown(
        '<div class="medcite-diff-headline">'
        + render.escape_text(render_docs.diff_headline(diff)) + "</div>",
        unsafe_allow_html=True,
    )
    if diff.summary:
        st.caption(render.escape_text(diff.summary))
    if diff.rows:
        st.markdown(render_docs.render_row_table(diff.rows), unsafe_allow_html=True)
    for section in diff.sections:
        title = f"{section.change}: {render_docs.section_title(section)}"
        with st.expander(title):
            before, after = st.columns(2)
            before.caption("before")
            before.text(section.before or "")
            after.caption("after")
            after.text(section.after or "")


def _diff_and_history(client: MedciteClient, document: DocumentInfo) -> None:
    versions = client.versions(document.doc_key)
    # Published versions only, newest first: a pending one has no number and no diff yet.
    numbers = [v.version for v in versions
               if v.version is not None and v.status not in ("pending", "replaced")]
    st.markdown("**Changes between versions**")
    if len(numbers) < 2:
        st.info("Only one version so far: upload a new one to see what changes.")
    else:
        current = document.current.version if document.current else numbers[0]
        left, right = st.columns(2)
        to_version = right.selectbox(
            "To version", numbers, index=numbers.index(current) if current in numbers else 0,
        )
        older = [n for n in numbers if n < to_version] or numbers[-1:]
        from_version = left.selectbox("From version", older, index=0)
        _show_diff(client.diff(document.doc_key, from_version, to_version))

    st.markdown("**Version history**")
    st.dataframe(render_docs.version_rows(versions), hide_index=True, use_container_width=True)


def _retire(client: MedciteClient, document: DocumentInfo) -> None:
    if document.retired:
        st.caption(render.escape_text(render_docs.retired_line(document)))
        return
    with st.expander("Retire this document"):
        st.caption("A retired document is no longer retrieved for answers; its versions and "
                   "audit records are kept, and publishing a new version brings it back.")
        reason = st.text_input("Reason (kept in the audit log)", key="retire_reason",
                               max_chars=2000)
        sure = st.checkbox(f"Yes, retire {document.doc_key}", key="retire_confirm")
        if st.button("Retire", key="retire", disabled=not sure):
            try:
                client.retire(document.doc_key, reason.strip() or None)
            except ApiError as exc:
                st.error(render.escape_text(str(exc)))
                return
            st.session_state[MESSAGE_KEY] = f"Retired {document.doc_key}."
            st.rerun()


def show() -> None:
    connection = session.require("documents")
    client = connection.client()
    message = st.session_state.pop(MESSAGE_KEY, None)
    if message:
        st.success(render.escape_text(message))
    job = st.session_state.get(JOB_KEY)
    if isinstance(job, IngestJob):
        _show_job(job)

    include_retired = st.checkbox("Show retired documents", key="include_retired")
    try:
        documents = client.documents(include_retired=include_retired)
    except ApiError as exc:
        st.error(render.escape_text(str(exc)))
        return
    by_key = {d.doc_key: d for d in documents}
    selected_key = st.session_state.get(SELECTED_KEY)
    if selected_key not in by_key:
        selected_key = documents[0].doc_key if documents else None
    st.subheader("Documents")
    st.dataframe(render_docs.document_rows(documents), hide_index=True,
                 use_container_width=True, height=min(38 + 35 * len(documents), 320))
    if documents:
        keys = list(by_key)
        selected_key = st.selectbox(
            "Document", keys, index=keys.index(selected_key),
            format_func=lambda key: render_docs.document_label(by_key[key]),
        )
        st.session_state[SELECTED_KEY] = selected_key
    selected = by_key.get(selected_key) if selected_key else None

    left, right = st.columns([3, 2], gap="large")
    with right:
        _upload_form(client, selected)
    with left:
        if selected is None:
            st.info("No documents you may see yet: upload one.")
            return
        try:
            _diff_and_history(client, selected)
        except ApiError as exc:
            st.error(render.escape_text(str(exc)))
        _retire(client, selected)
