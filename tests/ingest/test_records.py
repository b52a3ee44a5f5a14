"""Documents read the way their authors structured them: formulary rows as records,
label sections with their LOINC codes, guideline fields by what they are for."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.settings import REPO_ROOT
from ingest.chunking import chunk_document, embedding_text
from ingest.manifest import discover
from ingest.models import ParsedDocument, SourceFile
from ingest.parsers import parse_file

CORPORA = REPO_ROOT / "corpora"


@pytest.fixture(scope="module")
def sources() -> dict[str, SourceFile]:
    return {s.relpath: s for s in discover(CORPORA)}


def _parse(sources: dict[str, SourceFile], rel: str) -> tuple[SourceFile, ParsedDocument]:
    source = sources[rel]
    return source, parse_file(source, 50_000_000)


def test_each_drug_row_of_a_status_table_is_a_record(sources) -> None:  # type: ignore[no-untyped-def]
    source, doc = _parse(sources, "formularies/ohio-medicaid-updl/current-2024/lipotropics.md")
    chunks = chunk_document(doc, 1200, 150, payer=source.payer,
                            effective_date=source.effective_date)
    rows = [c for c in chunks if c.kind == "row"]
    tables = [c for c in chunks if c.kind == "table"]
    assert tables, "the whole table stays a unit for list questions"
    simva = next(c for c in rows if c.record and c.record.drugs == ("simvastatin",))
    line = "| Simvastatin (QL) | Simvastatin Tab (all strengths) | 102 | 102 |"
    # Offsets point at the row line in the document; the text states its context.
    assert doc.text[simva.start:simva.end] == line
    assert simva.text.endswith(line)
    assert "Ohio Medicaid formulary: Lipotropics" in simva.text
    assert "Simvastatin: Preferred" in simva.text
    assert "QL (quantity limit)" in simva.text
    assert "Quantity limit: 102 per 102 days" in simva.text
    assert "Effective 2024-01-01" in simva.text
    assert simva.record.status == "Preferred" and simva.record.flags == ("QL",)
    # The status comes from the table the row sits in, not from a word in the row.
    livalo = next(c for c in rows if c.record and "pitavastatin" in c.record.drugs)
    assert livalo.record.status == "Non-Preferred" and "BVG" in livalo.record.flags
    repatha = next(c for c in rows if "| Repatha (PA) |" in c.text)
    assert "PA (prior authorization required)" in repatha.text
    # Row units come after the section chunks, indexed in order.
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert min(c.index for c in rows) > max(c.index for c in chunks if c.kind != "row")


def test_a_table_with_one_column_per_status_gives_each_drug_its_status(sources) -> None:  # type: ignore[no-untyped-def]
    source, doc = _parse(sources,
                         "formularies/ohio-medicaid-updl/current-2024/preferred_drug_list.md")
    rows = [c for c in chunk_document(doc, 1200, 150, payer=source.payer) if c.kind == "row"]
    gout = next(c for c in rows if "| Colchicine Tab (PA QL) | Mitigare (BvG QL) |" in c.text)
    assert "Colchicine Tab: Preferred, PA (prior authorization required); QL" in gout.text
    assert "Mitigare: Non-Preferred, BVG (brand preferred over generic)" in gout.text
    assert "Analgesic Agents › Gout" in gout.text
    assert "colchicine" in gout.record.drugs
    # A class name in the category path is never taken for a drug.
    assert all("agent" not in d for c in rows for d in c.record.drugs)


def test_a_headerless_layout_table_gives_no_records(sources) -> None:  # type: ignore[no-untyped-def]
    source, doc = _parse(sources, "formularies/ohio-medicaid-updl/current-2024/lipotropics.md")
    rows = [c for c in chunk_document(doc, 1200, 150, payer=source.payer) if c.kind == "row"]
    assert not any("Juxtapid (Initial)" in c.text for c in rows)


def test_a_cms_qhp_drug_is_one_record_with_typed_flags(sources) -> None:  # type: ignore[no-untyped-def]
    source, doc = _parse(sources, "formularies/cms-qhp/drugs-1.json")
    chunks = chunk_document(doc, 1200, 150, payer=source.payer)
    assert all(c.kind == "row" for c in chunks)
    azi = next(c for c in chunks if c.record and c.record.drugs == ("azithromycin",))
    assert azi.record.flags == ("QL",) and azi.record.status == "Covered"
    assert azi.text.startswith("CMS QHP example formulary:")
    assert "tier GENERIC" in azi.text


def test_label_sections_keep_their_loinc_code(sources) -> None:  # type: ignore[no-untyped-def]
    _, doc = _parse(sources, "drug-labels/fda-spl/humira.xml")
    by_top = {}
    for s in doc.sections:
        by_top.setdefault(s.path[0], set()).add(s.code)
    assert by_top["WARNING: SERIOUS INFECTIONS AND MALIGNANCY"] == {"34066-1"}
    assert by_top["4 CONTRAINDICATIONS"] == {"34070-3"}
    assert by_top["2 DOSAGE AND ADMINISTRATION"] == {"34068-7"}
    assert by_top["7 DRUG INTERACTIONS"] == {"34073-7"}
    # A numbered sub-section coded only as "unclassified" keeps its parent's code.
    serious = [s for s in doc.sections if s.path[:2] == ("5 WARNINGS AND PRECAUTIONS",
                                                        "5.1 Serious Infections")]
    assert serious and {s.code for s in serious} == {"43685-7"}


def test_guideline_fields_are_kinds_of_unit(sources) -> None:  # type: ignore[no-untyped-def]
    _, doc = _parse(sources, "guidelines/ngc/ngc-10403.xml")
    kinds = {s.path[-1] if len(s.path) > 1 else s.path[0]: s.kind for s in doc.sections}
    assert kinds["Major Recommendations"] == "recommendation"
    for admin in ("Date Released", "Bibliographic Source(s)", "Guideline Category",
                  "NGC Status", "Availability of Companion Documents"):
        assert kinds[admin] == "admin", admin
    assert kinds["Target Population"] == "section"


def test_payload_carries_the_structure(sources, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ingest.pipeline import payload
    from retrieval.schema import KEYWORD_FIELDS, ChunkPayload

    source, doc = _parse(sources, "formularies/ohio-medicaid-updl/current-2024/lipotropics.md")
    chunks = chunk_document(doc, 1200, 150, payer=source.payer)
    row = next(c for c in chunks if c.kind == "row" and "Simvastatin (QL)" in c.text)
    p = ChunkPayload.read(payload(doc, source, row, "v1", len(chunks), "now"))
    assert (p.unit_kind, p.drugs, p.status, p.flags) == ("row", ["simvastatin"], "Preferred",
                                                         ["QL"])
    for name in ("unit_kind", "section_code", "drugs", "status", "flags"):
        assert name in KEYWORD_FIELDS
    source, doc = _parse(sources, "drug-labels/fda-spl/humira.xml")
    chunks = chunk_document(doc, 1200, 150)
    boxed = next(c for c in chunks if c.section.code == "34066-1")
    p = ChunkPayload.read(payload(doc, source, boxed, "v1", len(chunks), "now"))
    assert p.section_code == "34066-1" and "adalimumab" in p.drugs


def test_criteria_written_per_status_or_flag_carry_the_drugs_they_cover(sources) -> None:  # type: ignore[no-untyped-def]
    """"Criteria > Clinical PA" applies to the page's rows flagged PA, "Criteria >
    Non-Preferred" to its non-preferred rows; neither names a drug, so the rows' drugs go
    with them (the payload's `drugs`, which the drug-filtered search arms match)."""
    from ingest.pipeline import chunk_drugs

    source, doc = _parse(sources, "formularies/ohio-medicaid-updl/current-2024/gout.md")
    chunks = chunk_document(doc, 1200, 150, payer=source.payer,
                            effective_date=source.effective_date)
    by_path = {c.section.path[1:]: c for c in chunks if c.kind != "row"}
    clinical = by_path[("Criteria", "Clinical PA")]
    non_preferred = by_path[("Criteria", "Non-Preferred")]
    assert "colchicine" in clinical.applies_to and "allopurinol" not in clinical.applies_to
    assert "colchicine" in chunk_drugs(doc, clinical)
    # ... and the embedded and sparse text says so (the section's own text names none).
    assert "Applies to: " in embedding_text(doc, clinical) \
        and "colchicine" in embedding_text(doc, clinical).split("Applies to: ")[1]
    rows = [c.record for c in chunks if c.record is not None]
    assert set(non_preferred.applies_to) == {
        d for r in rows if r.status == "Non-Preferred" for d in r.drugs} >= {"febuxostat"}
    assert set(clinical.applies_to) == {d for r in rows if "PA" in r.flags for d in r.drugs}
    # The status tables themselves, and criteria naming their own drug, are unchanged.
    assert by_path[("Formulary", "Non-Preferred")].applies_to == ()
    assert by_path[("Criteria", "Colchicine Capsule (Mitigare)")].applies_to == ()
    assert by_path[("Criteria", "Subsequent Authorization")].applies_to == ()

    source, doc = _parse(sources, "formularies/ohio-medicaid-updl/current-2024/lipotropics.md")
    chunks = chunk_document(doc, 1200, 150, payer=source.payer,
                            effective_date=source.effective_date)
    by_path = {c.section.path[1:]: c for c in chunks if c.kind != "row"}
    assert "evolocumab" in by_path[("Criteria", "Clinical PA")].applies_to  # Repatha (PA)
    # Stored apart from the drugs the text names, so an answer can say why the unit is
    # about a drug it never names (app/answering/citation_checks.py _context).
    from ingest.pipeline import payload
    from retrieval.schema import ChunkPayload
    stored = ChunkPayload.read(payload(doc, source, by_path[("Criteria", "Clinical PA")],
                                       "v1", len(chunks), "now"))
    assert "evolocumab" in stored.applies_to and "evolocumab" in stored.drugs
    assert ChunkPayload.read(payload(doc, source, by_path[("Criteria", "Lovastatin ER "
                             "(Altoprev), Pitavastatin (Livalo), Fluvastatin (Lescol)")],
                             "v1", len(chunks), "now")).applies_to == []
    assert "pravastatin" not in by_path[("Criteria", "Non-Preferred")].applies_to  # preferred
    assert "pitavastatin" in by_path[("Criteria", "Non-Preferred")].applies_to


def test_a_product_the_dictionary_lacks_and_the_criteria_headed_by_it_share_its_key(
    sources,  # type: ignore[no-untyped-def]
) -> None:
    """"Auvelity: Non-Preferred" is a row about a drug although the packaged dictionary
    has never heard of it, and "Criteria > Dextromethorphan/Bupropion (Auvelity) >
    Additional ... Criteria", whose bullets name only the drugs to try first, is about
    it: both carry the product's key, so the drug-filtered search arms reach both."""
    from ingest.pipeline import chunk_drugs

    source, doc = _parse(sources, "formularies/ohio-medicaid-updl/current-2024/antidepressants.md")
    chunks = chunk_document(doc, 1200, 150, payer=source.payer,
                            effective_date=source.effective_date)
    rows = [c for c in chunks if c.record and c.text.split("\n")[1].startswith("Auvelity:")]
    assert rows and all(c.record.drugs == ("auvelity",) for c in rows if c.record)
    criteria = [c for c in chunks if c.kind != "row"
                and "Dextromethorphan/Bupropion (Auvelity)" in c.section.path]
    assert criteria
    for c in criteria:
        drugs = chunk_drugs(doc, c)
        assert {"auvelity", "bupropion", "dextromethorphan"} <= set(drugs), drugs

    source, doc = _parse(sources, "formularies/ohio-medicaid-updl/current-2024/UPDL_criteria.md")
    chunks = chunk_document(doc, 1200, 150, payer=source.payer,
                            effective_date=source.effective_date)
    xywav = [c for c in chunks if c.section.path[-1] == "Additional Oxybate Salts (Xywav) Criteria"]
    assert xywav and all("calcium, magnesium, potassium, and sodium oxybate"
                         in chunk_drugs(doc, c) for c in xywav)


def test_windows_cut_neither_after_an_item_number_nor_before_a_fragment() -> None:
    from ingest.chunking import _windows

    items = "".join(f"{i}. Offer the {i}th recommendation to eligible adult patients. [B]\n"
                    for i in range(1, 30))
    for start, end in _windows(items, 300, 60):
        piece = items[start:end]
        assert not piece.rstrip().endswith((".", "]")) or not piece.rstrip()[-3:-1].isdigit()
        assert piece.lstrip()[0].isdigit(), piece[:20]
    # A rest shorter than MIN_TAIL_CHARS stays with the window before it.
    text = "A sentence that goes on. " * 38 + "Tail."
    assert _windows(text, 900, 100) == [(0, len(text))]


def test_a_window_that_points_back_is_embedded_with_what_it_points_at(sources) -> None:  # type: ignore[no-untyped-def]
    """"above 2 indications are considered reasonable and necessary only when: 1) The
    lesions are small (4 disk areas or less) …" names neither indication: a question about
    occult subfoveal CNV did not find it. The sentences before it go into what is embedded,
    not into the stored text (citations and offsets stay the window's own)."""
    source, doc = _parse(sources, "coverage/cms-ncd/OcularPhotodynamicTherapy_(OPT).md")
    chunks = chunk_document(doc, 1000, 150)
    small = next(c for c in chunks if "4 disk areas or less" in c.text)
    assert small.text.lstrip("- ").startswith("above 2 indications")
    assert "Subfoveal occult" in small.antecedent and "Subfoveal occult" not in small.text
    assert "Subfoveal occult" in embedding_text(doc, small)
    # Only the dense vector reads it: the lexical arm already matches those words in the
    # window before (the sparse text is the one without it).
    assert "Subfoveal occult" not in embedding_text(doc, small, antecedent=False)
    assert doc.text[small.start:small.end] == small.text
    # A section's first window, and a window that does not point back, get none.
    assert chunks[0].antecedent == ""
    from ingest.chunking import ANTECEDENT_CHARS, antecedent
    text = "Start low. " * 40 + "Titrate weekly to effect."
    at = text.index("Titrate")
    assert antecedent(text, at) == ""
    back = text[:at] + "These doses apply to adults."
    assert antecedent(back, at) and len(antecedent(back, at)) <= ANTECEDENT_CHARS
    assert antecedent(back, 0) == ""
