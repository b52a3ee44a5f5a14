"""How the new answer statuses and formulary tables are shown (ui/render.py)."""

from __future__ import annotations

from app.answering.models import (
    AnswerSentence,
    AnswerStatus,
    AskResponse,
    Citation,
    CitationStatus,
    EvidenceQuote,
)
from retrieval.models import Passage, Provenance
from ui import render

TABLE = ("### Preferred\n\n| Preferred | Quantity |\n|:--|:--:|\n"
         "| Atorvastatin <sup>QL</sup> | 102 |\n| Ezetimibe | |\n")


def _passage(text: str) -> Passage:
    return Passage(id="p1", text=text, score=0.9, provenance=Provenance(
        doc_id="d", title="Lipotropics", source_file="f.md", doc_type="formulary",
        section_path=["Formulary", "Preferred"], char_start=0, char_end=len(text)))


def _response(status: AnswerStatus, **extra: object) -> AskResponse:
    return AskResponse(question="q", status=status, abstained=status != AnswerStatus.verified
                       and status != AnswerStatus.evidence_only, sentences=[],
                       passages=[_passage(TABLE)], **{"model": "m", **extra})


def test_evidence_only_is_a_warning_with_quotes_never_an_answer() -> None:
    row = TABLE.index("| Atorvastatin")
    quote = EvidenceQuote(passage_id="p1", unit_id="P1.1", text=TABLE[row:TABLE.index("\n", row)],
                          span_start=row, span_end=TABLE.index("\n", row))
    r = _response(AnswerStatus.evidence_only, evidence=[quote], status_reason="no sentence")
    summary = render.status_summary(r)
    assert summary.level == "warning" and summary.text.startswith("Evidence only")
    shown = render.render_evidence(r)
    assert len(shown) == 1 and "<table" in shown[0] and "Atorvastatin" in shown[0]
    assert "Lipotropics" in shown[0]
    # With its header the quoted row is drawn under its column names.
    headed = quote.model_copy(update={"header": ["Preferred", "Quantity"]})
    (drawn,) = render.render_evidence(r.model_copy(update={"evidence": [headed]}))
    assert drawn.index("Preferred") < drawn.index("Atorvastatin")
    assert "Quantity" in drawn and "<mark" in drawn


def test_off_topic_is_an_error_naming_why() -> None:
    r = _response(AnswerStatus.off_topic, status_reason="the cited evidence does not name X")
    summary = render.status_summary(r)
    assert summary.level == "error" and "does not name X" in summary.text


def test_removed_is_called_strict_only_in_strict_mode() -> None:
    bad = AnswerSentence(text="s", status=CitationStatus.unsupported, citations=[Citation(
        passage_id="p1", quote="q", status=CitationStatus.unsupported, score=0.0)])
    r = _response(AnswerStatus.evidence_only, removed_sentences=[bad])
    assert render.removed_label(r, strict=True) == "Removed by strict mode (1)"
    assert "strict" not in render.removed_label(r, strict=False)
    off = _response(AnswerStatus.off_topic, removed_sentences=[bad])
    assert "do not address the question" in render.removed_label(off, strict=False)


def test_markdown_tables_in_passages_render_as_tables_with_the_cited_row_marked() -> None:
    row = TABLE.index("| Atorvastatin")
    cited = Citation(passage_id="p1", quote="x", status=CitationStatus.supported, score=1.0,
                     span_start=row, span_end=TABLE.index("\n", row))
    html = render.render_full_passage(_passage(TABLE), [cited])
    assert "<table" in html and "<th>Preferred</th>" in html
    assert "<mark>Atorvastatin" in html
    assert "<mark>Ezetimibe" not in html
    assert "|" not in html.split("<table", 1)[1]


def test_an_answer_from_the_formulary_records_says_no_model_wrote_it() -> None:
    looked_up = _response(AnswerStatus.verified, answered_from="records",
                          model="the formulary's records (lookup, no generation)",
                          timings_ms={"retrieval": 900.0, "lookup": 40.0})
    assert render.render_footer(looked_up) == (
        "answered from the formulary's records (a lookup; no model wrote it) · "
        "retrieval 0.9 s · lookup 0.0 s")
    released = looked_up.model_copy(update={
        "model": "the document's release field (lookup, no generation)"})
    assert render.render_footer(released).startswith(
        "answered from the document's release field (a lookup; no model wrote it)")
    assert render.render_footer(_response(AnswerStatus.verified)).startswith("model m")


def test_a_sentence_the_server_quoted_is_labelled_as_the_sources_words() -> None:
    cite = Citation(passage_id="p1", unit_id="P1.1", quote="Women who are pregnant.",
                    status=CitationStatus.supported, score=1.0)
    quoted = AnswerSentence(text="Women who are pregnant.", citations=[cite],
                            status=CitationStatus.supported, quoted_by_server=True)
    written = AnswerSentence(text="Discuss pregnancy plans.", citations=[cite],
                             status=CitationStatus.supported)
    response = _response(AnswerStatus.verified).model_copy(
        update={"sentences": [quoted, written]})
    shown = render.render_answer(response)
    assert "Contraindication, quoted from the source:" in shown[0]
    assert "quoted from the source" not in shown[1]
    warned = quoted.model_copy(update={"quoted_as": "warning",
                                       "text": "Particular caution ... hypokalemia."})
    shown = render.render_answer(response.model_copy(update={"sentences": [warned, written]}))
    assert "Warning, quoted from the source:" in shown[0]
    assert "Contraindication" not in shown[0]
    goes_on = quoted.model_copy(update={"quoted_as": "continuation",
                                        "text": "If reactivation occurs, stop HUMIRA."})
    shown = render.render_answer(response.model_copy(update={"sentences": [written, goes_on]}))
    assert "The source goes on:" in shown[1] and "quoted from the source" not in shown[1]
    assert "The source goes on" not in shown[0]
    rest = quoted.model_copy(update={"quoted_as": "list_rest",
                                     "text": "- Prescribed by a cardiologist"})
    shown = render.render_answer(response.model_copy(update={"sentences": [written, rest]}))
    assert "The rest of the cited list, quoted from the source:" in shown[1]
