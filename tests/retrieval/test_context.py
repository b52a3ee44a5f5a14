"""Context assembly: a fragment hit widened with its section's neighbouring chunks, as an
exact span of the document, within the budget, and verified against the widened text."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.settings import Settings
from retrieval.context import ContextAssembler, _Chunk, stitch

# One long section (split into several overlapping chunks at ingest) and a short one.
STEPS = " ".join(
    f"Step {n}: check the INR on day {n * 3} and adjust the weekly warfarin dose by "
    f"{n * 5} percent if the INR is outside 2 to 3; record the reading in the flowsheet."
    for n in range(1, 25)
)
DOC = f"# Warfarin titration protocol\n\n## Titration\n\n{STEPS}\n\n## Storage\n\n" \
      "Keep tablets at room temperature.\n"
OTHER = "# Apixaban note\n\nApixaban needs no INR monitoring.\n"


def test_stitch_keeps_overlaps_once_and_offsets_exact() -> None:
    doc = "alpha beta gamma delta epsilon zeta"
    a = _Chunk("a", 0, 0, 16, doc[0:16])  # "alpha beta gamma"
    b = _Chunk("b", 1, 11, 28, doc[11:28])  # overlaps "gamma"
    c = _Chunk("c", 2, 30, 35, doc[30:35])  # after a stripped gap
    text, start, end = stitch([c, a, b])
    assert (start, end) == (0, 35)
    assert len(text) == end - start
    assert text[:28] == doc[:28]
    assert text[30:] == doc[30:35] and text[28:30] == "\n\n"


def test_a_table_stitched_across_a_stripped_line_break_keeps_its_rows() -> None:
    from app.answering.units import split_passage
    from retrieval.models import Passage, Provenance

    # Two chunks of one table; the line break between them was stripped at ingest. Joined
    # by a space, "| Victoza (QL) |" would run into the row before it and stop being a row.
    doc = "| Preferred | Non-Preferred |\n| --- | --- |\n| Trulicity (QL) | Xultophy |\n" \
          "| Victoza (QL) | |"
    cut = doc.index("| Victoza")
    a = _Chunk("a", 0, 0, cut - 1, doc[:cut - 1])
    b = _Chunk("b", 1, cut, len(doc), doc[cut:])
    text, start, end = stitch([a, b])
    assert text == doc and (start, end) == (0, len(doc))
    passage = Passage(id="t", text=text, score=1.0, provenance=Provenance(
        doc_id="d", title="t", source_file="f.md", doc_type="formulary", char_start=0,
        char_end=len(text), unit_kind="table"))
    rows = [u.reading(passage) for u in split_passage(passage, 0) if u.kind == "row"]
    assert rows == ["Preferred: Trulicity (QL) | Non-Preferred: Xultophy",
                    "Preferred: Victoza (QL)"]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder):  # type: ignore[no-untyped-def]
    from ingest.manifest import discover
    from ingest.parsers import parse_file
    from ingest.pipeline import ingest_path
    from retrieval.search import Retriever
    from retrieval.store import open_client

    root = tmp_path_factory.mktemp("context-corpus")
    (root / "warfarin.md").write_text(DOC)
    (root / "apixaban.md").write_text(OTHER)
    (root / "manifest.toml").write_text(
        '[[sources]]\nglob = "*.md"\ndoc_type = "guideline"\naccess_groups = ["public"]\n'
    )
    settings = Settings(MEDCITE_DATA_DIR=tmp_path_factory.mktemp("context-data"),
                        MEDCITE_COLLECTION="context")
    client = open_client(settings)
    ingest_path(root, settings, client=client, embedder=embedder, progress=False)
    source = next(s for s in discover(root) if s.relpath == "warfarin.md")
    doc_text = parse_file(source, settings.max_file_bytes).text
    yield Retriever(client, settings.collection, embedder), doc_text
    client.close()


def _same_span(widened: str, doc_text: str, start: int, end: int) -> bool:
    """The widened text is the document's [start:end], except whitespace stripped at
    chunk edges, which comes back as spaces."""
    span = doc_text[start:end]
    return len(span) == len(widened) and all(
        a == b or (a.isspace() and b.isspace()) for a, b in zip(widened, span, strict=True)
    )


def _hit(retriever, question: str):  # type: ignore[no-untyped-def]
    (p,) = retriever.search(question, access_groups=["public"], limit=1, mode="sparse")
    return p


def test_a_fragment_is_widened_to_an_exact_span_of_its_section(index) -> None:  # type: ignore[no-untyped-def]
    retriever, doc_text = index
    hit = _hit(retriever, "Step 12 day 36 adjust by 60 percent")
    assert "Step 12:" in hit.text and len(hit.text) < len(STEPS)
    (wide,) = ContextAssembler(retriever, budget_chars=4000, window=2).assemble(
        [hit], ["public"])
    assert wide.id == hit.id and wide.score == hit.score
    assert hit.text in wide.text and len(wide.text) > len(hit.text) + 500
    assert len(wide.text) <= 4000
    pv = wide.provenance
    assert pv.char_start <= hit.provenance.char_start and pv.char_end >= hit.provenance.char_end
    assert _same_span(wide.text, doc_text, pv.char_start, pv.char_end)
    # Only its own section: the storage section is a different parent.
    assert "room temperature" not in wide.text


def test_budget_is_never_exceeded_and_a_full_budget_adds_nothing(index) -> None:  # type: ignore[no-untyped-def]
    retriever, _ = index
    hit = _hit(retriever, "Step 12 day 36 adjust by 60 percent")
    full = ContextAssembler(retriever, budget_chars=len(hit.text)).assemble([hit], ["public"])
    assert full[0].text == hit.text
    tight = len(hit.text) + 400
    (wide,) = ContextAssembler(retriever, budget_chars=tight).assemble([hit], ["public"])
    assert len(hit.text) <= len(wide.text) <= tight


def test_retrieved_neighbours_are_not_repeated(index) -> None:  # type: ignore[no-untyped-def]
    retriever, _ = index
    hits = retriever.search("Step 12 day 36 adjust by 60 percent Step 15 day 45",
                            access_groups=["public"], limit=6, mode="sparse")
    # Two chunks of the long section retrieved together; the others are neighbours.
    warfarin = [p for p in hits if p.provenance.source_file == "warfarin.md"][:2]
    assert len(warfarin) == 2
    out = ContextAssembler(retriever, budget_chars=20_000).assemble(warfarin, ["public"])
    assert any(len(o.text) > len(w.text) for o, w in zip(out, warfarin, strict=True))
    # No assembled passage swallows another retrieved chunk: that one is already in the
    # context (chunks share only their ingest overlap).
    for i, o in enumerate(out):
        for j, w in enumerate(warfarin):
            assert i == j or w.text not in o.text, (i, j)


def test_a_whole_section_is_every_chunk_of_it_or_nothing(index) -> None:  # type: ignore[no-untyped-def]
    retriever, doc_text = index
    hit = _hit(retriever, "Step 12 day 36 adjust by 60 percent")
    assembler = ContextAssembler(retriever, budget_chars=4000)
    whole = assembler.whole_section(hit, ["public"])
    assert whole is not None and whole.id == hit.id
    pv = whole.provenance
    # Every step of the section, and nothing of the next one.
    assert _same_span(whole.text, doc_text, pv.char_start, pv.char_end)
    assert whole.text.startswith("Step 1:") and whole.text.rstrip().endswith("flowsheet.")
    assert all(f"Step {n}:" in whole.text for n in range(1, 25))
    assert "room temperature" not in whole.text
    # A section longer than the chunks read, or unreadable to the caller: not whole.
    assert assembler.whole_section(hit, ["public"], max_chunks=1) is None
    assert assembler.whole_section(hit, ["other-org"]) is None


def test_a_named_field_of_the_hits_document_is_fetched_even_when_not_retrieved(index) -> None:  # type: ignore[no-untyped-def]
    # As a guideline's "Date Released" field is for "when was it released?".
    retriever, doc_text = index
    hit = _hit(retriever, "Step 12 day 36 adjust by 60 percent")
    assembler = ContextAssembler(retriever, budget_chars=4000)
    field = assembler.field_of(hit, "Storage", ["public"])
    assert field is not None and field.text.strip() == "Keep tablets at room temperature."
    pv = field.provenance
    assert pv.doc_id == hit.provenance.doc_id and pv.section_path[-1] == "Storage"
    assert doc_text[pv.char_start:pv.char_end].strip() == field.text.strip()
    # Only the hit's own document, and only for a caller who may read it.
    assert assembler.field_of(hit, "Apixaban note", ["public"]) is None
    assert assembler.field_of(hit, "Storage", ["other-org"]) is None


def test_neighbours_respect_access_groups_and_the_keep_check(index) -> None:  # type: ignore[no-untyped-def]
    retriever, _ = index
    hit = _hit(retriever, "Step 12 day 36 adjust by 60 percent")
    assembler = ContextAssembler(retriever, budget_chars=4000)
    # A caller outside the document's groups gets no neighbour text.
    assert assembler.assemble([hit], ["other-org"])[0].text == hit.text
    # A neighbour the keep check rejects ends the widening in that direction.
    (kept,) = assembler.assemble([hit], ["public"], keep=lambda text: "Step 14:" not in text)
    assert "Step 14:" not in kept.text.replace(hit.text, "")


def test_the_verifier_checks_quotes_against_the_widened_text(index) -> None:  # type: ignore[no-untyped-def]
    from app.answering.citation_checks import verify_sentence
    from app.answering.models import CitationStatus

    retriever, _ = index
    hit = _hit(retriever, "Step 12 day 36 adjust by 60 percent")
    (wide,) = ContextAssembler(retriever, budget_chars=4000).assemble([hit], ["public"])
    # A quote that is only in the neighbour text, not in the retrieved chunk.
    n = next(n for n in range(1, 25) if f"Step {n}:" in wide.text and f"Step {n}:" not in hit.text)
    quote = (f"check the INR on day {n * 3} and adjust the weekly warfarin dose by "
             f"{n * 5} percent")
    claim = f"Check the INR on day {n * 3} and adjust the weekly warfarin dose by {n * 5} percent."
    sentence = verify_sentence(claim, [("P1", quote)], {"P1": wide})
    (citation,) = sentence.citations
    assert citation.status in (CitationStatus.supported, CitationStatus.partial), citation
    assert citation.span_start is not None and citation.span_end is not None
    assert wide.text[citation.span_start:citation.span_end].lower() == quote.lower()
    # Against the bare chunk the same citation does not verify: its numbers are not there.
    bare = verify_sentence(claim, [("P1", quote)], {"P1": hit})
    assert bare.citations[0].status not in (CitationStatus.supported, CitationStatus.partial)


def test_services_wire_context_and_reranker_from_settings(
    make_services, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    from retrieval.rerank import LLMReranker

    default = make_services()
    assert isinstance(default.answers.context, ContextAssembler)
    assert default.answers.context.budget_chars == default.settings.context_chars
    # The default expands abbreviations in the lexical arm (bench/RESULTS-retrieval.md).
    assert default.retriever.reranker is None and default.retriever.expansion == "abbreviations"
    off = make_services(context_neighbours=0, reranker="llm", query_expansion="lexical")
    assert off.answers.context is None
    assert isinstance(off.retriever.reranker, LLMReranker)
    assert off.retriever.expansion == "lexical"
