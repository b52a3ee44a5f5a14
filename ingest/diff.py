"""What changed between two versions of a document.

Works on the parsed sections each version was built from (kept in the catalog):
sections added, removed or changed by their heading path, and, for tables, rows keyed by
their entry (a drug on a formulary). Formularies publish status two ways — one table per
status ("### Preferred" / "### Non-Preferred") or one column per status — and mark prior
authorisation, quantity limits and the like in a trailing note ("Atorvastatin (QL)",
"Colchicine Tab PA QL"); both are read, so a drug moving from preferred to non-preferred
is one `status_changed` row, not a removal plus an addition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel


@dataclass(frozen=True)
class Snapshot:
    """What a version was built from: its title and (section path, text, is_table)."""

    title: str
    sections: list[tuple[tuple[str, ...], str, bool]]

    def relative(self, path: tuple[str, ...]) -> tuple[str, ...]:
        """The path below the document's own title, so a page that gained a title
        heading between versions still lines up with the one before."""
        if path and " ".join(path[0].split()).casefold() == " ".join(self.title.split()).casefold():
            return path[1:]
        return path

FLAG_NAMES = {
    "PA": "prior authorization",
    "QL": "quantity limit",
    "ST": "step therapy",
    "BVG": "brand preferred over generic",
    "AL": "age limit",
    "SP": "specialty pharmacy",
}
_STATUS = re.compile(r"\b(non[- ]?preferred|preferred|not covered|covered|excluded|tier\s*\d+)\b",
                     re.I)
_TRAILING_NOTE = re.compile(r"\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)\s*$")
_TRAILING_FLAGS = re.compile(r"(?:\s+(?:PA|QL|ST|BvG|BVG|AL|SP))+\s*$")
_SEPARATOR_CELL = re.compile(r"^:?-{2,}:?$")
_MAX_SECTION_TEXT = 1500


class RowChange(BaseModel):
    change: Literal["added", "removed", "changed", "status_changed"]
    table: str
    key: str
    before: dict[str, str] | None = None
    after: dict[str, str] | None = None
    details: list[str] = []


class SectionChange(BaseModel):
    change: Literal["added", "removed", "changed"]
    path: list[str]
    before: str | None = None
    after: str | None = None


class DocumentDiff(BaseModel):
    doc_key: str
    from_version: int | None
    to_version: int
    from_effective_date: str | None = None
    to_effective_date: str | None = None
    summary: str
    rows: list[RowChange]
    sections: list[SectionChange]


@dataclass
class Entry:
    """One row of a table: a drug (or other item) with its status and attributes."""

    key: str
    name: str
    table: str
    status: str | None
    flags: frozenset[str]
    cells: dict[str, str] = field(default_factory=dict)


def split_entry(cell: str) -> tuple[str, frozenset[str], str]:
    """'Colchicine Tab (PA QL)' -> ('Colchicine Tab', {'PA','QL'}, 'PA QL')."""
    name, notes = cell.strip(), []
    while True:
        match = _TRAILING_NOTE.search(name)
        if match and match.start() > 0:
            notes.append(match.group(1))
            name = name[: match.start()].rstrip()
            continue
        match = _TRAILING_FLAGS.search(name)
        if match and match.start() > 0:
            notes.append(match.group(0))
            name = name[: match.start()].rstrip()
            continue
        break
    note = " ".join(reversed(notes))
    tokens = {t.upper() for t in re.findall(r"[A-Za-z]+", note)}
    return name, frozenset(tokens & set(FLAG_NAMES)), note


def entry_key(name: str) -> str:
    return " ".join(re.sub(r"\s*/\s*", "/", name).casefold().split())


def table_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and body rows of a Markdown-style table section."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    rows = [r for r in rows if not all(_SEPARATOR_CELL.match(c) or not c for c in r)]
    if not rows:
        return [], []
    return rows[0], rows[1:]


def _status_of(text: str) -> str | None:
    match = _STATUS.search(text)
    return " ".join(match.group(1).split()).title().replace("Non Preferred", "Non-Preferred") \
        if match else None


def entries(snapshot: Snapshot) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for full_path, text, is_table in snapshot.sections:
        if not is_table:
            continue
        header, body = table_rows(text)
        if not header:
            continue
        path = snapshot.relative(full_path) or full_path
        context = _context(path)
        status_columns = [i for i, h in enumerate(header) if _status_of(h) and len(h) < 40]
        by_column = len(status_columns) >= 2 and len(status_columns) == len(header)
        for row in body:
            if by_column:
                for i in status_columns:
                    if i < len(row) and row[i]:
                        _add(out, context, row[i], _status_of(header[i]), {})
            elif row and row[0]:
                status = _status_of(header[0]) or (_status_of(path[-1]) if path else None)
                cells = {header[i] or f"column {i + 1}": row[i]
                         for i in range(1, min(len(header), len(row)))}
                _add(out, context, row[0], status, cells)
    return out


def _context(path: tuple[str, ...]) -> str:
    """Where a table sits, without the document title or a status heading, with
    "Class: Subclass" and nested headings spelled the same way."""
    parts = [p for p in path if not _is_status_heading(p)] or list(path[:1])
    return re.sub(r"\s*(?::|›)\s*", " › ", " › ".join(parts))


def _is_status_heading(part: str) -> bool:
    return bool(_STATUS.fullmatch(part.strip()))


def _add(
    out: dict[str, list[Entry]], context: str, cell: str, status: str | None,
    cells: dict[str, str],
) -> None:
    name, flags, _ = split_entry(cell)
    if not name:
        return
    key = f"{context}\0{entry_key(name)}"
    out.setdefault(key, []).append(Entry(key, name, context, status, flags, cells))


def _row_dict(entry: Entry) -> dict[str, str]:
    row = {"name": entry.name}
    if entry.status:
        row["status"] = entry.status
    if entry.flags:
        row["flags"] = " ".join(sorted(entry.flags))
    row.update({k: v for k, v in entry.cells.items() if v})
    return row


def diff_rows(old: Snapshot, new: Snapshot) -> list[RowChange]:
    before, after = entries(old), entries(new)
    changes: list[RowChange] = []
    for key in sorted(set(before) | set(after), key=lambda k: k.casefold()):
        olds, news = before.get(key, []), after.get(key, [])
        if not olds:
            e = news[0]
            changes.append(RowChange(change="added", table=e.table, key=e.name, after=_row_dict(e),
                                     details=[f"added as {e.status}" if e.status else "added"]))
            continue
        if not news:
            e = olds[0]
            changes.append(RowChange(change="removed", table=e.table, key=e.name,
                                     before=_row_dict(e), details=["removed"]))
            continue
        o, n = olds[0], news[0]
        details = _entry_changes(o, n)
        if details:
            kind: Literal["changed", "status_changed"] = (
                "status_changed" if o.status != n.status else "changed")
            changes.append(RowChange(change=kind, table=n.table, key=n.name, before=_row_dict(o),
                                     after=_row_dict(n), details=details))
    return changes


def _entry_changes(o: Entry, n: Entry) -> list[str]:
    details = []
    if o.status != n.status:
        details.append(f"status: {o.status or '—'} → {n.status or '—'}")
    for flag in sorted(n.flags - o.flags):
        details.append(f"{FLAG_NAMES[flag]} added")
    for flag in sorted(o.flags - n.flags):
        details.append(f"{FLAG_NAMES[flag]} removed")
    for col in sorted(set(o.cells) | set(n.cells)):
        a, b = o.cells.get(col, ""), n.cells.get(col, "")
        if " ".join(a.split()) != " ".join(b.split()):
            details.append(f"{col}: {a or '—'} → {b or '—'}")
    return details


def diff_sections(old: Snapshot, new: Snapshot) -> list[SectionChange]:
    """Prose sections by heading path (tables are compared row by row instead)."""
    def prose(snapshot: Snapshot) -> dict[tuple[str, ...], str]:
        merged: dict[tuple[str, ...], list[str]] = {}
        for path, text, is_table in snapshot.sections:
            if not is_table:
                merged.setdefault(snapshot.relative(path), []).append(text)
        return {p: "\n\n".join(t) for p, t in merged.items()}

    a, b = prose(old), prose(new)
    out: list[SectionChange] = []
    for path in list(dict.fromkeys([*a, *b])):
        if path not in a:
            out.append(SectionChange(change="added", path=list(path), after=_clip(b[path])))
            continue
        elif path not in b:
            out.append(SectionChange(change="removed", path=list(path), before=_clip(a[path])))
        elif _norm(a[path]) != _norm(b[path]):
            out.append(SectionChange(change="changed", path=list(path), before=_clip(a[path]),
                                     after=_clip(b[path])))
    return out


def _norm(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SECTION_TEXT else text[:_MAX_SECTION_TEXT] + " …"


def summarise(rows: Iterable[RowChange], sections: Iterable[SectionChange]) -> str:
    rows, sections = list(rows), list(sections)
    counts = {k: sum(1 for r in rows if r.change == k)
              for k in ("added", "removed", "status_changed", "changed")}
    parts = [f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n]
    row_part = ("rows: " + ", ".join(parts)) if parts else "no table rows changed"
    sec = {k: sum(1 for s in sections if s.change == k) for k in ("added", "removed", "changed")}
    sec_parts = [f"{n} {k}" for k, n in sec.items() if n]
    sec_part = ("sections: " + ", ".join(sec_parts)) if sec_parts else "no text sections changed"
    return f"{row_part}; {sec_part}"


def diff_snapshots(
    doc_key: str, old: Snapshot, new: Snapshot, *, from_version: int | None, to_version: int,
    from_effective_date: str | None = None, to_effective_date: str | None = None,
) -> DocumentDiff:
    rows = diff_rows(old, new)
    sections = diff_sections(old, new)
    return DocumentDiff(
        doc_key=doc_key, from_version=from_version, to_version=to_version,
        from_effective_date=from_effective_date, to_effective_date=to_effective_date,
        summary=summarise(rows, sections), rows=rows, sections=sections,
    )
