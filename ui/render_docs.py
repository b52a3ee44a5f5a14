"""Pure functions that turn document versions and diffs into what the Documents page shows.

The diff table is one raw-HTML block (a markdown line that starts with <table>), so its
cells are HTML-escaped only: CommonMark does not read markdown inside an HTML block, and
a markdown escape would be shown verbatim.
"""

from __future__ import annotations

import html
from typing import Any

from ui.models import DocumentDiff, DocumentInfo, RowChange, SectionChange, VersionInfo

# Colours of the change pills: added green, removed red, changed amber, status blue.
CHANGE_COLOURS: dict[str, str] = {
    "added": "#2e7d32",
    "removed": "#c62828",
    "changed": "#b26a00",
    "status_changed": "#1565c0",
}
CHANGE_LABELS: dict[str, str] = {
    "added": "added",
    "removed": "removed",
    "changed": "changed",
    "status_changed": "status changed",
}


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def change_pill(change: str) -> str:
    colour = CHANGE_COLOURS.get(change, "#757575")
    return (
        f'<span class="medcite-change medcite-change-{_e(change)}" '
        f'style="background-color:{colour};color:#fff;border-radius:0.6em;'
        f'padding:0.05em 0.5em;font-size:0.8em;white-space:nowrap">'
        f"{_e(CHANGE_LABELS.get(change, change))}</span>"
    )


def _columns(values: dict[str, Any] | None) -> str:
    if not values:
        return ""
    return "; ".join(f"{key}: {value}" for key, value in values.items() if value not in ("", None))


def row_details(row: RowChange) -> list[str]:
    """What changed in a row: the API's details, else the row's columns."""
    if row.details:
        return row.details
    if row.change == "added":
        return [_columns(row.after)] if row.after else []
    if row.change == "removed":
        return [_columns(row.before)] if row.before else []
    return [f"{_columns(row.before)} → {_columns(row.after)}"] if row.before or row.after else []


def count_changes(diff: DocumentDiff) -> dict[str, int]:
    counts = {change: 0 for change in CHANGE_COLOURS}
    for row in diff.rows:
        counts[row.change] = counts.get(row.change, 0) + 1
    return counts


def diff_headline(diff: DocumentDiff) -> str:
    """'version 1 (2023-04-04) → version 2 (2024-01-05): 3 added, 1 removed, ...'."""

    def side(version: int | None, effective: str | None) -> str:
        if version is None:
            return "(nothing)"
        return f"version {version}" + (f" (effective {effective})" if effective else "")

    counts = count_changes(diff)
    parts = [f"{n} {CHANGE_LABELS[c]}" for c, n in counts.items() if n]
    if diff.sections:
        parts.append(f"{len(diff.sections)} sections changed")
    body = ", ".join(parts) if parts else "no row or section changes"
    return (
        f"{side(diff.from_version, diff.from_effective_date)} → "
        f"{side(diff.to_version, diff.to_effective_date)}: {body}"
    )


def render_row_table(rows: list[RowChange]) -> str:
    """The row changes as one HTML table, removed and status changes first."""
    order = {"status_changed": 0, "removed": 1, "changed": 2, "added": 3}
    body = "".join(
        '<tr class="medcite-diff-row">'
        f"<td>{change_pill(row.change)}</td><td>{_e(row.key)}</td>"
        f"<td>{'<br>'.join(_e(d) for d in row_details(row))}</td><td>{_e(row.table)}</td></tr>"
        for row in sorted(rows, key=lambda r: (order.get(r.change, 9), r.table, r.key))
    )
    return (
        '<table class="medcite-diff" style="width:100%;font-size:0.9em">'
        "<thead><tr><th>change</th><th>drug / row</th><th>what changed</th><th>table</th>"
        f"</tr></thead><tbody>{body}</tbody></table>"
    )


def section_title(section: SectionChange) -> str:
    return " › ".join(section.path) or "(document)"


def version_rows(versions: list[VersionInfo]) -> list[dict[str, object]]:
    """The version history as table rows, newest first as the API sends them."""
    return [
        {
            "version": v.version,
            "status": v.status,
            "effective": v.effective_date or "",
            "ingested": v.ingested_at.replace("T", " ")[:19],
            "chunks": v.chunks,
            "file": v.source_file.rsplit("/", 1)[-1],
            "content hash": v.content_hash[:12],
        }
        for v in versions
    ]


def document_rows(documents: list[DocumentInfo]) -> list[dict[str, object]]:
    return [
        {
            "document": d.doc_key,
            "title": d.title,
            "type": d.doc_type,
            "payer": d.payer or "",
            "versions": d.versions,
            "current": d.current.version if d.current else None,
            "effective": (d.current.effective_date or "") if d.current else "",
            "groups": ", ".join(d.access_groups),
            "retired": d.retired_on or "",
        }
        for d in documents
    ]


def document_label(document: DocumentInfo) -> str:
    retired = " (retired)" if document.retired else ""
    return f"{document.title} — {document.doc_key}{retired}"


def retired_line(document: DocumentInfo) -> str:
    """'Retired on 2025-01-02 by policy-team: superseded by the 2025 list.'"""
    when = document.retired_on or (document.retired_at or "")[:10] or "an unknown day"
    by = f" by {document.retired_by}" if document.retired_by else ""
    reason = f": {document.retired_reason}" if document.retired_reason else ""
    return f"Retired on {when}{by}{reason}."
