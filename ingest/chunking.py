"""Structure-aware chunking: a chunk never crosses a section boundary.

Sections up to `max_chars` (tables up to twice that) stay whole; longer ones are cut
at sentence boundaries with a small overlap (never after an item's number, never before
a bracket that closes the sentence, and never leaving a rest under `MIN_TAIL_CHARS`).
Offsets stay exact so a citation can be traced back into the parsed document text.

Formulary tables are also read as records: every drug row becomes a unit of its own
("row"), after the document's section chunks, whose text states its context (payer,
category path, status from the column or heading it sits under, flags decoded, quantity
and days, effective date) above the table's header and the row itself, so "is X
preferred on Y, with what limit" finds one small passage that answers it. The whole
table stays a unit for list questions. A row's offsets are the row line's in the
document; its text is a rendering, not a span (payload `unit_kind` "row" says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ingest.diff import split_entry, table_rows
from ingest.models import DocType, ParsedDocument, Section
from retrieval.drugs import drug_names, product_key

# A sentence ends at . ! ? or a line break; decimals like "2.5 mg" are not ends. A
# bracket after a sentence belongs to it ("… weight loss. [B]", "… [see Warnings (5.1)]").
_BOUNDARY = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9(•\-])|\n+")


# Flags formularies print after a drug's name, as the pages' legends spell them out.
FLAG_LEGEND = {
    "PA": "prior authorization required",
    "QL": "quantity limit",
    "ST": "step therapy",
    "BVG": "brand preferred over generic",
    "AL": "age limit",
    "AR": "age restriction",
    "SP": "specialty pharmacy",
}
# "Prefered" and "Preffered" too: the pages misspell it, and a status column is a status column.
_STATUS = re.compile(r"\b(non[- ]?pref+er+ed|pref+er+ed|not covered|covered|excluded)\b", re.I)
_QUANTITY = re.compile(r"\bquantity\b|\bqty\b", re.I)
_DAYS = re.compile(r"\bdays?\b", re.I)


@dataclass(frozen=True)
class Record:
    """What a formulary row says, typed: the payload's `drugs`, `status` and `flags`."""

    drugs: tuple[str, ...] = ()  # normalised names (retrieval/drugs.py drug_names)
    status: str | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    section: Section
    start: int  # offsets in ParsedDocument.text
    end: int
    # "row" for a formulary record; otherwise the section's kind.
    unit_kind: str = ""
    record: Record | None = field(default=None)
    # A formulary page's criteria written for a status or a flag ("Criteria >
    # Non-Preferred", "Criteria > Clinical PA"): the drugs of the page's rows it covers.
    applies_to: tuple[str, ...] = ()
    # A window that opens by pointing back ("above 2 indications are … reasonable and
    # necessary only when:") names what it points at only in the text before it: that
    # text, embedded with it and not stored as its text.
    antecedent: str = ""

    @property
    def kind(self) -> str:
        return self.unit_kind or self.section.kind


# "4." opening a numbered item ends no sentence: cut there, the item's number stays with
# the item before it and its text starts the next chunk without it.
_ENUMERATOR = re.compile(r"(?:^|\n)[ \t]*(?:\d{1,3}|[a-zA-Z])[.)]\s*$")
# A window's rest shorter than this stays with it: "[B]\n4. Offer patients who achieve
# their weight loss goal…" alone is a fragment whose section says little.
MIN_TAIL_CHARS = 200


def _split_points(text: str) -> list[int]:
    return [m.end() for m in _BOUNDARY.finditer(text)
            if not _ENUMERATOR.search(text, max(0, m.start() - 8), m.start() + 1)]


def _windows(text: str, max_chars: int, overlap: int) -> list[tuple[int, int]]:
    """Cut `text` into windows ending at sentence boundaries where possible."""
    points = _split_points(text) + [len(text)]
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        limit = start + max_chars
        candidates = [p for p in points if start < p <= limit]
        end = candidates[-1] if candidates and limit < len(text) else min(limit, len(text))
        if limit >= len(text) or len(text) - end < MIN_TAIL_CHARS:
            end = len(text)
        if end <= start:
            end = min(limit, len(text))
        spans.append((start, end))
        if end >= len(text):
            break
        # Restart a little before the end, on a boundary, so facts that straddle
        # the cut appear whole in at least one chunk.
        back = [p for p in points if end - overlap <= p < end and p > start]
        start = back[0] if back else end
    return spans


def chunk_document(
    doc: ParsedDocument, max_chars: int, overlap: int, *, payer: str | None = None,
    effective_date: str | None = None,
) -> list[Chunk]:
    chunks = _section_chunks(doc, max_chars, overlap)
    if doc.doc_type == DocType.formulary:
        when = effective_date or doc.effective_date
        for section in doc.sections:
            for text, start, end, record in row_records(doc, section, payer, when):
                chunks.append(Chunk(len(chunks), text, section, start, end, "row", record))
        chunks = scope_criteria(chunks)
    return chunks


_CRITERIA = re.compile(r"\bcriteria\b", re.I)


def under_criteria(path: tuple[str, ...] | list[str]) -> bool:
    """A section below a "Criteria" heading of a payer's page ("Criteria > Clinical PA",
    "Criteria > Pitavastatin (Livalo)"): its last heading says whom the criteria are for."""
    return len(path) >= 2 and any(_CRITERIA.search(p) for p in path[:-1])


_CLINICAL_PA = re.compile(r"(clinical\s+)?(pa|prior\s+authori[sz]ation)(\s+criteria)?", re.I)


def scope_criteria(chunks: list[Chunk]) -> list[Chunk]:
    """A formulary page writes its criteria once per status or flag ("Criteria >
    Non-Preferred": what a non-preferred drug needs; "Criteria > Clinical PA": what a drug
    flagged PA needs) and names no drug there, so a question about one drug never found
    them by that drug (seen: "what must he have tried before Ohio Medicaid approves
    colchicine?" retrieved the gout page's rows, not its Clinical PA criteria). Such a
    section covers the page's rows with that status or flag: their drugs go with it."""
    by_status: dict[str, set[str]] = {}
    flagged_pa: set[str] = set()
    for c in chunks:
        if c.record is not None:
            if c.record.status:
                by_status.setdefault(c.record.status, set()).update(c.record.drugs)
            if "PA" in c.record.flags:
                flagged_pa.update(c.record.drugs)
    out = []
    for c in chunks:
        path = c.section.path
        if c.record is None and under_criteria(path):
            last = path[-1].strip()
            drugs: set[str] = set()
            if _is_status_heading(last):
                drugs = by_status.get(status_of(last) or "", set())
            elif _CLINICAL_PA.fullmatch(last):
                drugs = flagged_pa
            if drugs:
                c = replace(c, applies_to=tuple(sorted(drugs)))
        out.append(c)
    return out


# A window's first words that point back at what came before it.
_POINTS_BACK = re.compile(r"\b(?:above|aforementioned|foregoing|preceding|previous|these|"
                          r"those|such|said)\b", re.I)
POINTS_BACK_WITHIN = 80
ANTECEDENT_CHARS = 300


def antecedent(text: str, start: int) -> str:
    """The sentences right before `start` (up to ANTECEDENT_CHARS, from a boundary) when
    the text from `start` opens by pointing back at them; else ""."""
    if start <= 0 or not _POINTS_BACK.search(text, start, start + POINTS_BACK_WITHIN):
        return ""
    lo = max(0, start - ANTECEDENT_CHARS)
    points = [p for p in _split_points(text) if lo <= p < start]
    return text[points[0] if points and lo > 0 else lo:start].strip()


def _section_chunks(doc: ParsedDocument, max_chars: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in doc.sections:
        if section.kind == "row":
            continue  # a record as parsed (a CMS QHP drug): see row_records
        limit = max_chars * 2 if section.is_table else max_chars
        if len(section.text) <= limit:
            spans = [(0, len(section.text))]
        else:
            spans = _windows(section.text, max_chars, overlap)
        for s, e in spans:
            piece = section.text[s:e]
            stripped = piece.strip()
            if not stripped:
                continue
            lead = len(piece) - len(piece.lstrip())
            start = section.start + s + lead
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=stripped,
                    section=section,
                    start=start,
                    end=start + len(stripped),
                    antecedent=antecedent(section.text, s + lead),
                )
            )
    return chunks


def embedding_text(doc: ParsedDocument, chunk: Chunk, *, antecedent: bool = True) -> str:
    """What the embedder sees: the passage with its title and section path, since a
    dose sentence alone rarely names the drug or the indication.

    The title and path stay even where they repeat the passage's own first line: a
    variant that named each heading once (2026-11-24) lost recall@5 on all three eval
    sets (MedQuAD 0.887 -> 0.843) and ranked the pediatric Lipitor dose above the adult
    one, so it was reverted (bench/RESULTS-retrieval.md)."""
    path = " > ".join(chunk.section.path)
    if chunk.applies_to:
        # Criteria written once per status or flag ("Clinical PA") name none of the
        # drugs they govern; the page's rows say which (`scope_criteria`).
        path += f"\nApplies to: {', '.join(chunk.applies_to)}"
    if antecedent and chunk.antecedent:
        return f"{doc.title}\n{path}\n{chunk.antecedent}\n{chunk.text}"
    return f"{doc.title}\n{path}\n{chunk.text}"


def status_of(text: str) -> str | None:
    match = _STATUS.search(text)
    if not match:
        return None
    words = " ".join(match.group(1).replace("-", " ").split()).title()
    words = re.sub(r"Pref+er+ed", "Preferred", words)
    return words.replace("Non Preferred", "Non-Preferred")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")] if line.strip() else []


def _is_status_heading(part: str) -> bool:
    return bool(_STATUS.fullmatch(part.strip()))


def _flags_text(flags: frozenset[str]) -> str:
    return "; ".join(f"{f} ({FLAG_LEGEND[f]})" for f in sorted(flags) if f in FLAG_LEGEND)


def row_drugs(name: str, generic: str = "") -> list[str]:
    """A formulary row's drug keys: what the dictionary finds in its name (and generic
    column), else the product's own name (`product_key`): every row of a drug list
    names a drug, so "Auvelity: Non-Preferred" is about one even where the packaged
    dictionary has never heard of it."""
    found = drug_names(f"{name} {generic}".strip())
    if found:
        return found
    key = product_key(name)
    return [key] if key else []


def row_records(
    doc: ParsedDocument, section: Section, payer: str | None, effective_date: str | None,
) -> list[tuple[str, int, int, Record]]:
    """(text, start, end, record) per drug row of a formulary section.

    A table publishes status one of two ways: one table per status under a "Preferred"
    / "Non-Preferred" heading or first column, or one column per status (a preferred
    and a non-preferred drug side by side, unrelated but for their class). A CMS QHP
    drug entry (one section per drug) is a record as it stands."""
    if section.kind == "row":
        return _qhp_record(doc, section, payer, effective_date)
    if not section.is_table:
        return []
    header_line = next((ln for ln in section.text.splitlines()
                        if ln.strip().startswith("|")), "")
    header = _cells(header_line)
    if not any(header):
        return []  # a headerless layout table ("Length of Authorizations"): no columns
    body = table_rows(section.text)[1]
    category = [p for p in section.path if not _is_status_heading(p)]
    status_cols = [i for i, h in enumerate(header) if status_of(h) and len(h) < 40]
    by_column = len(status_cols) >= 2 and len(status_cols) == len(header)
    heading_status = next((status_of(p) for p in reversed(section.path)
                           if _is_status_heading(p)), None)
    qty_col = next((i for i, h in enumerate(header) if _QUANTITY.search(h)), None)
    days_col = next((i for i, h in enumerate(header) if _DAYS.search(h) and i != qty_col),
                    None)
    where = f"{payer} formulary" if payer else "Formulary"
    head = f"{where}: {' › '.join(category)}"
    tail = f"Effective {effective_date}." if effective_date else ""
    out = []
    lines = section.text.splitlines(keepends=True)
    offset = section.start
    rows = iter(body)
    for line in lines:
        start = offset + (len(line) - len(line.lstrip()))
        offset += len(line)
        stripped = line.strip()
        if not stripped.startswith("|") or stripped == header_line.strip() \
                or re.fullmatch(r"[|\s:-]+", stripped):
            continue
        row = next(rows, None)
        if row is None or not any(c.strip() for c in row):
            continue
        facts: list[str] = []
        drugs: set[str] = set()
        flags: set[str] = set()
        status: str | None = None
        if by_column:
            for i in status_cols:
                if i < len(row) and row[i]:
                    name, fl, _ = split_entry(row[i])
                    col_status = status_of(header[i])
                    facts.append(f"{name}: {col_status}" + (
                        f", {_flags_text(fl)}" if fl else "") + ".")
                    drugs.update(row_drugs(name))
                    flags.update(fl)
        else:
            name, fl, _ = split_entry(row[0]) if row[0] else ("", frozenset(), "")
            status = status_of(header[0]) or heading_status
            if not name:
                continue
            drugs.update(row_drugs(name, row[1] if len(row) > 1 else ""))
            flags.update(fl)
            facts.append(f"{name}: {status}." if status else f"{name}.")
            if fl:
                facts.append(f"Flags: {_flags_text(fl)}.")
            qty = row[qty_col] if qty_col is not None and qty_col < len(row) else ""
            days = row[days_col] if days_col is not None and days_col < len(row) else ""
            if qty or days:
                facts.append(f"Quantity limit: {qty or 'not stated'} per "
                             f"{days or 'not stated'} days.")
        text = "\n".join(x for x in (head, " ".join(facts), tail, header_line.strip(),
                                     stripped) if x)
        record = Record(tuple(sorted(drugs)), status,
                        tuple(sorted(f for f in flags if f in FLAG_LEGEND)))
        out.append((text, start, start + len(stripped), record))
    return out


_QHP_FLAGS = (("prior authorization: yes", "PA"), ("step therapy: yes", "ST"),
              ("quantity limit: yes", "QL"))


def _qhp_record(
    doc: ParsedDocument, section: Section, payer: str | None, effective_date: str | None,
) -> list[tuple[str, int, int, Record]]:
    """A CMS QHP drug: its section already says plan, tier and flags line by line; the
    record adds the payer and the typed fields."""
    lowered = section.text.lower()
    flags = tuple(sorted({code for phrase, code in _QHP_FLAGS if phrase in lowered}))
    tiers = sorted(set(re.findall(r"tier ([A-Za-z0-9-]+(?: [A-Za-z0-9-]+)?),", section.text)))
    status = "Covered" if "plan " in lowered else "Not Covered"
    head = f"{payer} formulary" if payer else "Formulary"
    facts = f"{head}: {doc.title}. {status}" + (f", tier {', '.join(tiers)}" if tiers else "")
    flag_text = ", ".join(f"{f} ({FLAG_LEGEND[f]})" for f in flags)
    text = "\n".join(x for x in (
        facts + ".", f"Flags: {flag_text}." if flag_text else "",
        f"Effective {effective_date}." if effective_date else "", section.text) if x)
    record = Record(tuple(drug_names(" ".join(section.path))), status, flags)
    return [(text, section.start, section.end, record)]
