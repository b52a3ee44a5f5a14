"""Pure helpers of the Review page, the Ask page's feedback form and the alarms table."""

from __future__ import annotations

from app.audit.models import FeedbackReason
from app.operations.models import AlarmState, QueueItem
from ui.render_audit import record_summary

REASON_LABELS: dict[FeedbackReason, str] = {
    FeedbackReason.wrong: "Wrong",
    FeedbackReason.incomplete: "Incomplete",
    FeedbackReason.outdated_source: "Outdated source",
    FeedbackReason.unsafe: "Unsafe",
    FeedbackReason.citation_unsupported: "A citation does not support its sentence",
    FeedbackReason.other: "Other",
}


def parse_key_facts(text: str) -> list[list[str]]:
    """One fact per line; a fact's acceptable forms separated by `|`
    ("10 or 20 mg | 10-20 mg")."""
    facts = []
    for line in text.splitlines():
        forms = [f.strip() for f in line.split("|") if f.strip()]
        if forms:
            facts.append(forms)
    return facts


def format_key_facts(facts: list[list[str]]) -> str:
    return "\n".join(" | ".join(forms) for forms in facts)


def queue_label(item: QueueItem) -> str:
    why = " + ".join(item.why)
    return (f"#{item.answer_id} · {item.record.ts.strftime('%Y-%m-%d %H:%M')} · {why} · "
            f"{record_summary(item.record)}")


def feedback_lines(item: QueueItem) -> list[str]:
    lines = []
    for f in item.feedback:
        reason = REASON_LABELS[f.details.reason] if f.details.reason else ""
        text = f"{f.by.name}: {'👍' if f.details.rating.value == 'up' else '👎'} {reason}"
        if f.details.comment:
            text += f" — {f.details.comment}"
        lines.append(text.strip())
    return lines


def alarm_rows(states: list[AlarmState]) -> list[dict[str, object]]:
    return [
        {
            "signal": s.signal.replace("_", " "),
            "alarm": "RAISED" if s.active else "ok",
            "rate": f"{s.rate:.0%}" if s.rate is not None else "–",
            "threshold": f"{s.threshold:.0%}",
            "events in window": s.events,
            "since (UTC)": s.since.strftime("%Y-%m-%d %H:%M") if s.since else "",
        }
        for s in states
    ]
