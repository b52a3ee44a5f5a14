"""Pure functions that turn audit records into what the Audit page shows.

Questions and answers in the log are user and model text: every such string goes through
`render.escape_text` before it reaches markdown.
"""

from __future__ import annotations

from app.answering.models import CitationStatus
from app.audit.models import AskDetails, AuditedSentence, AuditRecord
from ui.render import BADGE_COLOURS, escape_text

SNIPPET_CHARS = 80


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def record_summary(record: AuditRecord) -> str:
    """One line that says what the record is about, for the results table."""
    details = record.details
    if isinstance(details, AskDetails):
        if details.question is None:
            return f"(question not kept, {details.question_chars} characters)"
        outcome = "abstained" if details.abstained else (
            details.answer_status.value if details.answer_status else details.error or ""
        )
        return f"{_snippet(details.question)} → {outcome}"
    if details.kind == "access_denied":
        return f"refused {details.method} {details.path}"
    if details.kind == "audit_query":
        return f"read the audit log ({details.returned} records)"
    if details.kind == "ingest":
        return f"ingest {details.path}: {details.chunks_written} chunks"
    if details.kind in ("key_create", "key_revoke"):
        return f"{details.kind.replace('_', ' ')} {details.name or details.key_id}"
    if details.kind == "purge":
        return f"purged {details.purged} records"
    return details.kind


def record_rows(records: list[AuditRecord]) -> list[dict[str, object]]:
    return [
        {
            "seq": r.seq,
            "time (UTC)": r.ts.strftime("%Y-%m-%d %H:%M:%S"),
            "user": r.actor.name,
            "role": r.actor.role,
            "action": r.action.value,
            "HTTP": r.http_status,
            "summary": record_summary(r),
        }
        for r in records
    ]


def record_label(record: AuditRecord) -> str:
    return (
        f"#{record.seq} · {record.ts.strftime('%Y-%m-%d %H:%M')} · {record.actor.name} · "
        f"{record.action.value}"
    )


def status_badge(status: CitationStatus, score: float | None = None) -> str:
    tip = status.value + (f": support score {score:.2f}" if score is not None else "")
    return (
        f'<span class="medcite-badge medcite-{status.value}" title="{tip}" '
        f'style="background-color:{BADGE_COLOURS[status]};color:#fff;border-radius:0.6em;'
        f'padding:0.05em 0.5em;font-size:0.75em;white-space:nowrap">{status.value}</span>'
    )


def render_audited_sentence(sentence: AuditedSentence, numbers: dict[str, int]) -> str:
    """A logged answer sentence with a marker and badge per citation, as the user saw it."""
    text = escape_text(sentence.text.strip())
    if sentence.removed:
        text = f"<s>{text}</s> <em>(removed by strict mode)</em>"
    parts = [text]
    for citation in sentence.citations:
        number = numbers.get(citation.passage_id)
        label = str(number) if number is not None else "?"
        badge = status_badge(citation.status, citation.score)
        parts.append(f"<sup>\\[{label}\\]</sup>&nbsp;{badge}")
    if not sentence.citations:
        parts.append('<span style="color:#757575">(no citation)</span>')
    return " ".join(parts)


def passage_numbers(details: AskDetails) -> dict[str, int]:
    """Marker numbers in the order the retrieved passages were logged."""
    return {p.passage_id: i for i, p in enumerate(details.passages, start=1)}


def source_rows(details: AskDetails) -> list[dict[str, object]]:
    cited = {c.passage_id for s in details.sentences for c in s.citations}
    return [
        {
            "#": number,
            "document": p.doc_id,
            "version": p.version or "",
            "retrieval score": round(p.score, 3),
            "cited": p.passage_id in cited,
            "passage id": p.passage_id,
        }
        for number, p in enumerate(details.passages, start=1)
    ]


def verification_lines(record: AuditRecord, details: AskDetails) -> list[str]:
    """Plain-text facts about how the answer was produced and checked."""
    counts: dict[str, int] = {}
    for sentence in details.sentences:
        counts[sentence.status.value] = counts.get(sentence.status.value, 0) + 1
    lines = [
        f"answer status: {details.answer_status.value if details.answer_status else 'none'}",
        "sentences: " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "none"),
        f"model: {details.model} at {details.model_endpoint}",
        f"latency: {details.latency_ms / 1000:.1f} s · HTTP {record.http_status}",
    ]
    if details.abstained:
        lines.insert(1, f"abstained: {details.abstain_reason or 'no reason given'}")
    if details.filters is not None:
        lines.append("filters: " + details.filters.model_dump_json(exclude_none=True))
    if details.fhir_resource_ids:
        lines.append(f"FHIR resources used: {len(details.fhir_resource_ids)}")
    if details.error:
        lines.append(f"error: {details.error}")
    lines.append(f"record hash {record.hash[:16]}… (previous {record.prev_hash[:16]}…)")
    return lines
