"""Pure functions that turn an AskResponse into the strings the page displays.

The page passes every string here to `st.markdown(..., unsafe_allow_html=True)`. Text that
comes from the API (model output, document text, titles) is therefore escaped twice:
`html.escape` so it cannot inject tags, then markdown escaping so a "$40 copay" is not read
as LaTeX and "[see 2.1](...)" is not read as a link. Each string is kept on a single
markdown line where it matters, because a line that starts with a block tag such as
`<div>` would switch CommonMark into raw-HTML mode and show the backslash escapes verbatim.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from app.answering.models import (
    AnswerSentence,
    AnswerStatus,
    AskResponse,
    Citation,
    CitationStatus,
    PatientContext,
    quoted_label,
)
from retrieval.models import Passage

SECTION_SEPARATOR = " › "

# Background colours of the citation badges; white text is readable on all four.
BADGE_COLOURS: dict[CitationStatus, str] = {
    CitationStatus.supported: "#2e7d32",
    CitationStatus.partial: "#b26a00",
    CitationStatus.unsupported: "#c62828",
    CitationStatus.invalid: "#757575",
}

_NOT_SUPPORTED = (CitationStatus.unsupported, CitationStatus.invalid)

# Markdown punctuation that Streamlit's renderer (CommonMark, GFM tables and strikethrough,
# $math$, and :colour[...] directives, which need the "[") acts on anywhere in a line.
_MD_INLINE = re.compile(r"([\\`*_{}\[\]|~$])")
# Punctuation that only matters at the start of a line (lists, headings, rules, quotes).
_MD_LINE_START = re.compile(r"^(\s*)(\d{1,9})([.)])(?=\s|$)|^(\s*)([-+#>=])")

Level = Literal["success", "warning", "error", "info"]


@dataclass(frozen=True)
class StatusSummary:
    """Answer-level status line; `level` names the st.* call (success/warning/error/info)."""

    level: Level
    text: str


def escape_text(text: str) -> str:
    """Escape untrusted text for a markdown string rendered with unsafe_allow_html."""
    escaped = _MD_INLINE.sub(r"\\\1", html.escape(text, quote=False))
    return _escape_line_start(escaped)


def _escape_line_start(line: str) -> str:
    def repl(match: re.Match[str]) -> str:
        if match.group(2) is not None:
            return f"{match.group(1)}{match.group(2)}\\{match.group(3)}"
        return f"{match.group(4)}\\{match.group(5)}"

    return _MD_LINE_START.sub(repl, line, count=1)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


# -- numbering and status -------------------------------------------------------------------


def citation_numbers(response: AskResponse) -> dict[str, int]:
    """Marker number of each cited passage: 1, 2, ... in order of first citation.

    Removed sentences (strict mode) are numbered after the shown ones so their markers
    still point at the sources panel. Citations of passage ids the response does not
    contain get no number; they are rendered as "[?]".
    """
    known = {passage.id for passage in response.passages}
    numbers: dict[str, int] = {}
    for sentence in [*response.sentences, *response.removed_sentences]:
        for citation in sentence.citations:
            if citation.passage_id in known and citation.passage_id not in numbers:
                numbers[citation.passage_id] = len(numbers) + 1
    return numbers


def is_abstention(response: AskResponse) -> bool:
    return response.abstained or response.status == AnswerStatus.abstained


def status_summary(response: AskResponse) -> StatusSummary:
    if response.status == AnswerStatus.evidence_only:
        why = response.status_reason or "the generated answer could not be verified"
        return StatusSummary(
            "warning", "Evidence only, not a composed answer: the passages below address the "
            f"question and are quoted verbatim ({why})")
    if response.status == AnswerStatus.off_topic:
        why = response.status_reason or "the cited sources do not address the question"
        return StatusSummary("error", f"Not answered: {why}")
    if is_abstention(response):
        reason = response.abstain_reason or "no reason given"
        return StatusSummary("info", f"Abstained: {reason}")

    total = len(response.sentences)
    removed = len(response.removed_sentences)
    removed_note = (
        f"; {removed} unsupported sentence{'s' if removed != 1 else ''} removed" if removed else ""
    )
    if total == 0:
        return StatusSummary("warning", f"No answer sentences returned{removed_note}")

    unsupported = sum(1 for s in response.sentences if s.status in _NOT_SUPPORTED)
    partial = sum(1 for s in response.sentences if s.status == CitationStatus.partial)
    if unsupported == 0 and partial == 0:
        level: Level = "success" if not removed and not response.status_reason else "warning"
        # e.g. a list answer that names only some of its table's items says which.
        note = f". {response.status_reason}" if response.status_reason else ""
        return StatusSummary(level, f"All claims verified{removed_note}{note}")

    parts: list[str] = []
    if unsupported:
        parts.append(f"{unsupported} of {total} sentences unsupported")
    if partial:
        parts.append(f"{partial} of {total} sentences only partially supported")
    level = "error" if unsupported else "warning"
    return StatusSummary(level, ", ".join(parts) + removed_note)


# -- answer column ----------------------------------------------------------------------------


def marker(number: int | None) -> str:
    label = str(number) if number is not None else "?"
    return f'<sup class="medcite-marker">\\[{label}\\]</sup>'


def citation_tooltip(citation: Citation) -> str:
    tip = f"{citation.status.value}: support score {citation.score:.2f}"
    if citation.reasons:
        tip += " - " + "; ".join(citation.reasons)
    return tip


def render_badge(citation: Citation) -> str:
    colour = BADGE_COLOURS[citation.status]
    return (
        f'<span class="medcite-badge medcite-{citation.status.value}" '
        f'title="{_attr(citation_tooltip(citation))}" '
        f'style="background-color:{colour};color:#fff;border-radius:0.6em;'
        f'padding:0.05em 0.5em;font-size:0.75em;white-space:nowrap">'
        f"{citation.status.value}</span>"
    )


def render_sentence(sentence: AnswerSentence, numbers: dict[str, int]) -> str:
    """One answer sentence, then per citation its marker and a status badge."""
    text = escape_text(sentence.text.strip())
    if sentence.status in _NOT_SUPPORTED:
        # A sentence without support must stand out even with no citation badge at all.
        text = (
            '<span class="medcite-flag" style="color:#c62828;font-weight:600">'
            "Unsupported:</span> "
            '<span class="medcite-unsupported-sentence" '
            'style="text-decoration:underline wavy #c62828">'
            f"{text}</span>"
        )
    if sentence.quoted_by_server:
        # The source's words added by the server, not the model's: say so.
        what = quoted_label(sentence.quoted_as)
        text = ('<span class="medcite-quoted" style="color:#6a1b9a;font-weight:600">'
                f"{what}</span> " + text)
    parts = [text]
    for citation in sentence.citations:
        parts.append(f"{marker(numbers.get(citation.passage_id))}&nbsp;{render_badge(citation)}")
    if not sentence.citations:
        parts.append('<span class="medcite-no-citation" style="color:#757575">(no citation)</span>')
    return " ".join(parts)


def render_answer(response: AskResponse) -> list[str]:
    """One markdown string per shown sentence."""
    numbers = citation_numbers(response)
    return [render_sentence(sentence, numbers) for sentence in response.sentences]


def removed_label(response: AskResponse, strict: bool) -> str:
    """What the removed sentences are called: strict mode removes unverified sentences;
    otherwise they were set aside because they failed verification or were off-topic."""
    n = len(response.removed_sentences)
    if strict:
        return f"Removed by strict mode ({n})"
    if response.status == AnswerStatus.off_topic:
        return f"Generated sentences that do not address the question ({n})"
    return f"Generated sentences that failed verification ({n})"


def render_evidence(response: AskResponse) -> list[str]:
    """Evidence-only answers: each unit verbatim, as a quote, with its source."""
    by_id = {p.id: p for p in response.passages}
    out = []
    for quote in response.evidence:
        passage = by_id.get(quote.passage_id)
        where = (f"{escape_text(passage.provenance.title)}{SECTION_SEPARATOR}"
                 f"{escape_text(section_label(passage))}") if passage else ""
        if _is_table(quote.text):
            # The row under its table's header: which column it sits in is its meaning.
            head = ("| " + " | ".join(quote.header) + " |\n|" + "---|" * len(quote.header)
                    + "\n") if quote.header else ""
            body = table_html(head + quote.text, [(len(head), len(head) + len(quote.text))])
        else:
            body = escape_text(quote.text)
        out.append(f"> {body}  \n> <small>{where}</small>")
    return out


def render_removed(response: AskResponse) -> list[str]:
    numbers = citation_numbers(response)
    return [render_sentence(sentence, numbers) for sentence in response.removed_sentences]


# -- sources column ---------------------------------------------------------------------------


def citation_spans(passage: Passage, citations: Iterable[Citation]) -> list[tuple[int, int]]:
    """Merged (start, end) character ranges of `passage.text` that the citations rely on.

    The verifier's offsets are used when they are valid; otherwise the quote is looked up
    in the text, so an off-by-a-few offset still highlights something sensible.
    """
    text = passage.text
    spans: list[tuple[int, int]] = []
    for citation in citations:
        if citation.passage_id != passage.id:
            continue
        start, end = citation.span_start, citation.span_end
        if start is not None and end is not None and 0 <= start < end <= len(text):
            spans.append((start, end))
            continue
        quote = citation.quote.strip()
        if quote:
            found = text.lower().find(quote.lower())
            if found >= 0:
                spans.append((found, found + len(quote)))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _escape_body(text: str) -> str:
    # Newlines become <br> so the whole passage stays one markdown line (see module doc).
    lines = text.split("\n")
    return "<br>".join(_MD_INLINE.sub(r"\\\1", html.escape(line, quote=False)) for line in lines)


def highlight_passage(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """Escaped passage text with each span wrapped in <mark>."""
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        start, end = max(start, cursor), min(end, len(text))
        if start >= end:
            continue
        pieces.append(_escape_body(text[cursor:start]))
        pieces.append(f"<mark>{_escape_body(text[start:end])}</mark>")
        cursor = end
    pieces.append(_escape_body(text[cursor:]))
    body = "".join(pieces).lstrip()
    return _escape_line_start(body)


def source_metadata(passage: Passage) -> list[str]:
    """Plain-text metadata items: type, section path, page, payer, effective date, version."""
    prov = passage.provenance
    items = [prov.doc_type]
    if prov.section_path:
        items.append(SECTION_SEPARATOR.join(prov.section_path))
    if prov.page is not None:
        items.append(f"p. {prov.page}")
    if prov.payer:
        items.append(f"payer {prov.payer}")
    if prov.effective_date:
        items.append(f"effective {prov.effective_date}")
    version = version_label(passage)
    if version:
        items.append(version)
    return items


def version_label(passage: Passage) -> str | None:
    """'version 3' from the document's version number, else its free-text version."""
    # version_number comes with document versioning; older APIs only send `version`.
    number = getattr(passage.provenance, "version_number", None)
    if isinstance(number, int):
        return f"version {number}"
    return f"version {passage.provenance.version}" if passage.provenance.version else None


def excerpt(
    text: str, spans: Sequence[tuple[int, int]], context: int = 240
) -> tuple[str, list[tuple[int, int]], bool, bool]:
    """The part of `text` around the highlighted spans, the spans moved into it, and
    whether text was cut before and after. Without spans the text is kept whole."""
    if not spans or len(text) <= 2 * context + (spans[-1][1] - spans[0][0]):
        return text, list(spans), False, False
    start = max(0, spans[0][0] - context)
    end = min(len(text), spans[-1][1] + context)
    # Cut at whitespace so no word is shown half.
    if start > 0:
        space = text.find(" ", start, spans[0][0])
        start = space + 1 if space >= 0 else start
    if end < len(text):
        space = text.rfind(" ", spans[-1][1], end)
        end = space if space >= 0 else end
    moved = [(a - start, b - start) for a, b in spans]
    return text[start:end], moved, start > 0, end < len(text)


def render_source(
    passage: Passage,
    number: int | None,
    citations: Iterable[Citation] = (),
    *,
    show_score: bool = False,
    shorten: bool = False,
) -> str:
    """A sources-panel entry: marker and title, metadata line, passage with highlights.

    With `shorten`, only the text around the highlighted spans is shown (the page offers
    the whole passage in an expander)."""
    title = escape_text(passage.provenance.title or passage.provenance.doc_id)
    head = f"{marker(number)} " if number is not None else ""
    meta = " · ".join(escape_text(item) for item in source_metadata(passage))
    if show_score:
        meta += f" · retrieval score {passage.score:.2f}"
    spans = citation_spans(passage, citations)
    text, before, after = passage.text, False, False
    if shorten:
        text, spans, before, after = excerpt(passage.text, spans)
    body = highlight_passage(text, spans)
    if before:
        body = "… " + body
    if after:
        body += " …"
    return (
        f'<strong class="medcite-source">{head}{title}</strong>  \n<small>{meta}</small>\n\n{body}'
    )


def render_full_passage(passage: Passage, citations: Iterable[Citation] = ()) -> str:
    """The whole passage with its highlights, for the "full section" expander; Markdown
    tables inside it (formulary pages) are drawn as tables, cited rows highlighted."""
    spans = citation_spans(passage, citations)
    if not _is_table(passage.text):
        return highlight_passage(passage.text, spans)
    pieces, offset = [], 0
    for block in re.split(r"(\n\s*\n)", passage.text):
        start, end = offset, offset + len(block)
        offset = end
        if not block.strip():
            continue
        inside = [(max(s, start) - start, min(e, end) - start) for s, e in spans
                  if s < end and e > start]
        pieces.append(table_html(block, inside) if _is_table(block)
                      else highlight_passage(block, inside))
    return "".join(pieces)


_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")


def _is_table(text: str) -> bool:
    return sum(bool(_TABLE_ROW.match(line)) for line in text.splitlines()) >= 1


def table_html(block: str, spans: Sequence[tuple[int, int]]) -> str:
    """A Markdown table block as one line of HTML (so CommonMark does not re-read it):
    cells escaped, the header row as <th>, rows that overlap a span marked; lines that
    are not rows are kept as escaped text."""
    out: list[str] = []
    rows: list[str] = []
    header_done = False
    pos = 0

    def flush() -> None:
        if rows:
            out.append('<table class="medcite-table">' + "".join(rows) + "</table>")
            rows.clear()

    lines = block.split("\n")
    for n, line in enumerate(lines):
        start, end = pos, pos + len(line)
        pos = end + 1
        if not _TABLE_ROW.match(line):
            flush()
            header_done = False
            if line.strip():
                out.append(_escape_body(line) + "<br>")
            continue
        if _TABLE_RULE.match(line):
            continue
        is_header = not header_done and n + 1 < len(lines) and \
            bool(_TABLE_RULE.match(lines[n + 1]))
        header_done = True
        tag = "th" if is_header else "td"
        marked = any(s < end and e > start for s, e in spans)
        texts = [_escape_body(re.sub(r"<[^>]+>", " ", c).strip())
                 for c in line.strip().strip("|").split("|")]
        cells = "".join(f"<{tag}>{f'<mark>{t}</mark>' if marked and t else t}</{tag}>"
                        for t in texts)
        rows.append(f"<tr>{cells}</tr>")
    flush()
    return "".join(out)


def section_label(passage: Passage) -> str:
    path = passage.provenance.section_path
    return SECTION_SEPARATOR.join(path) if path else (passage.provenance.title or "passage")


def all_citations(response: AskResponse) -> list[Citation]:
    return [
        citation
        for sentence in [*response.sentences, *response.removed_sentences]
        for citation in sentence.citations
    ]


def cited_passages(response: AskResponse) -> list[tuple[int, Passage]]:
    """(marker number, passage) of each cited passage, in marker order."""
    numbers = citation_numbers(response)
    by_id = {passage.id: passage for passage in response.passages}
    return [
        (number, by_id[passage_id])
        for passage_id, number in sorted(numbers.items(), key=lambda item: item[1])
    ]


def cited_sources(response: AskResponse, shorten: bool = False) -> list[tuple[int, str]]:
    """(marker number, markdown) of each cited passage, in marker order."""
    citations = all_citations(response)
    return [
        (number, render_source(passage, number, citations, shorten=shorten))
        for number, passage in cited_passages(response)
    ]


def closest_passages(response: AskResponse, limit: int = 3) -> list[Passage]:
    return sorted(response.passages, key=lambda passage: passage.score, reverse=True)[:limit]


def abstention_sources(response: AskResponse, limit: int = 3) -> list[str]:
    """Sources for an abstention: the closest passages, by retrieval score.

    Passages cited by the rejected draft are added even when not among the closest, and
    keep their marker numbers, so the draft's markers still point at something.
    """
    numbers = citation_numbers(response)
    shown = closest_passages(response, limit)
    shown_ids = {passage.id for passage in shown}
    shown += [p for p in response.passages if p.id in numbers and p.id not in shown_ids]
    citations = [
        citation
        for sentence in [*response.sentences, *response.removed_sentences]
        for citation in sentence.citations
    ]
    return [
        render_source(passage, numbers.get(passage.id), citations, show_score=True)
        for passage in shown
    ]


def uncited_passages(response: AskResponse) -> list[Passage]:
    numbers = citation_numbers(response)
    return [passage for passage in response.passages if passage.id not in numbers]


# -- other parts ------------------------------------------------------------------------------


def render_patient(patient: PatientContext | None) -> str | None:
    """What the API took from the FHIR bundle, or None when no bundle was used."""
    if patient is None:
        return None
    items: list[str] = []
    if patient.age is not None:
        items.append(f"age {patient.age}")
    if patient.sex:
        items.append(patient.sex)
    if patient.conditions:
        items.append("conditions: " + ", ".join(patient.conditions))
    if patient.medications:
        items.append("medications: " + ", ".join(patient.medications))
    if patient.allergies:
        items.append("allergies: " + ", ".join(patient.allergies))
    if patient.retrieval_terms:
        items.append("searched with: " + ", ".join(patient.retrieval_terms))
    if not items:
        items.append("no usable details")
    return "Patient context used: " + escape_text("; ".join(items))


def render_footer(response: AskResponse) -> str:
    # A lookup's answer says so: a clinician should know no model wrote it.
    parts = ([f"answered from {response.model.split(' (', 1)[0]} (a lookup; no model "
              "wrote it)"] if response.answered_from == "records"
             else [f"model {response.model}"])
    parts += [f"{name} {ms / 1000:.1f} s" for name, ms in response.timings_ms.items()]
    return escape_text(" · ".join(parts))


# -- streaming --------------------------------------------------------------------------------

# A "text" member of the model's JSON output, complete or still being generated.
_DRAFT_TEXT = re.compile(r'"text"\s*:\s*"((?:[^"\\]|\\.)*)("?)')


def draft_sentences(raw: str) -> list[str]:
    """The sentence texts in the model's partial JSON output, for the live draft.

    The model writes {"sentences": [{"text": "...", "citations": [...]}, ...]}; this reads
    the "text" values without waiting for valid JSON, the last one possibly unfinished.
    """
    sentences: list[str] = []
    for match in _DRAFT_TEXT.finditer(raw):
        body = match.group(1)
        if not match.group(2):
            body = body.removesuffix("\\")  # an escape cut in half
        try:
            text = json.loads(f'"{body}"')
        except ValueError:
            text = body
        if text.strip():
            sentences.append(text.strip())
    return sentences


def render_draft(raw: str) -> str:
    """The live draft as one markdown line, labelled as not yet verified."""
    sentences = draft_sentences(raw)
    text = " ".join(escape_text(sentence) for sentence in sentences) or "…"
    return (
        '<span class="medcite-draft" style="color:#616161">'
        "<em>Draft, being generated; citations are checked when it is complete:</em> "
        f"{text}</span>"
    )
