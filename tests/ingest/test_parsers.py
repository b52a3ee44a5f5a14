"""Parsers against the real corpora (no mocks), plus the failure modes an operator will meet."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from ingest.manifest import discover
from ingest.models import DocType, ParsedDocument, ParseError, SourceFile
from ingest.parsers import parse_file
from ingest.parsers.builder import DocumentBuilder, normalise_text
from ingest.parsers.markdown import clean_inline
from ingest.parsers.markup import MAX_TABLE_CHARS
from ingest.parsers.ngc import release_date

CORPORA = Path(__file__).resolve().parents[2] / "corpora"
MAX_BYTES = 50_000_000
SOURCES = {s.relpath: s for s in discover(CORPORA)}
INDEXED = sorted(r for r, s in SOURCES.items() if s.doc_type != DocType.patient)
PATIENTS = sorted(r for r, s in SOURCES.items() if s.doc_type == DocType.patient)

LIPITOR = "drug-labels/fda-spl/lipitor-orig.xml"
NGC_HEP_B = "guidelines/ngc/ngc-10302.xml"
CDC_PDF = "guidelines/cdc/cdc-guide-infection-prevention-outpatient-settings-v2.3-2016.pdf"
LIPOTROPICS = "formularies/ohio-medicaid-updl/current-2024/lipotropics.md"
UPDL_CRITERIA = "formularies/ohio-medicaid-updl/current-2024/UPDL_criteria.md"
LIPID_NCD = "coverage/cms-ncd/LipidTesting.md"
QHP_DRUGS = "formularies/cms-qhp/drugs-1.json"


@pytest.fixture(scope="module")
def docs() -> dict[str, ParsedDocument]:
    """Every indexed corpus file, parsed once for the whole module (~3 s)."""
    return {relpath: parse_file(SOURCES[relpath], MAX_BYTES) for relpath in INDEXED}


def _source(path: Path, doc_type: DocType = DocType.guideline, **kw: str) -> SourceFile:
    return SourceFile(path=path, relpath=path.name, doc_type=doc_type, access_groups=(), **kw)


def _write(tmp_path: Path, name: str, data: bytes | str) -> SourceFile:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return _source(path)


def _sections_with(doc: ParsedDocument, path_part: str) -> list[str]:
    return [s.text for s in doc.sections if any(path_part in p for p in s.path)]


# --- the whole corpus -------------------------------------------------------------------


def test_manifest_lists_every_corpus_kind() -> None:
    kinds = {SOURCES[r].doc_type for r in INDEXED}
    assert kinds == {DocType.label, DocType.guideline, DocType.coverage, DocType.formulary}
    assert len(INDEXED) > 80 and PATIENTS


@pytest.mark.parametrize("relpath", INDEXED)
def test_every_manifest_file_parses(docs: dict[str, ParsedDocument], relpath: str) -> None:
    doc = docs[relpath]
    assert doc.sections, "no sections"
    assert doc.title.strip()
    assert doc.doc_type == SOURCES[relpath].doc_type
    assert doc.source_file == relpath
    for section in doc.sections:
        assert doc.text[section.start : section.end] == section.text
        assert section.text == section.text.strip() and section.text
        assert section.path and all(p.strip() for p in section.path)
    # Sections tile the text: nothing in it that no section accounts for.
    assert doc.text == "\n\n".join(s.text for s in doc.sections)


def test_doc_ids_are_unique_and_stable(docs: dict[str, ParsedDocument]) -> None:
    ids = [d.doc_id for d in docs.values()]
    assert len(ids) == len(set(ids))
    again = parse_file(SOURCES[LIPITOR], MAX_BYTES)
    assert again.doc_id == docs[LIPITOR].doc_id == "spl:c6e131fe-e7df-4876-83f7-9156fc4e8228"


@pytest.mark.parametrize("relpath", PATIENTS[:2])
def test_patient_bundles_are_refused(relpath: str) -> None:
    with pytest.raises(ParseError, match="FHIR Bundle.*never indexed"):
        parse_file(SOURCES[relpath], MAX_BYTES)


# --- builder ----------------------------------------------------------------------------


def test_normalise_collapses_spaces_keeps_paragraphs_and_indentation() -> None:
    raw = "  a  \t b\u00a0c \r\n\r\n\r\n\r\n- item\n\t- nested  \n\n\n end  "
    assert normalise_text(raw) == "a b c\n\n- item\n  - nested\n\nend"


def test_builder_offsets_paths_and_blank_sections() -> None:
    builder = DocumentBuilder()
    assert builder.add(("A",), "  \n\t ") is None
    first = builder.add((" A ", ""), "one   two", page=3)
    second = builder.add(("B",), "three", is_table=True)
    doc = builder.build(doc_id="x", title=" T ", source_file="f", doc_type=DocType.guideline)
    assert doc.text == "one two\n\nthree" and doc.title == "T"
    assert first is not None and second is not None
    assert (first.path, first.page, second.is_table) == (("A",), 3, True)
    assert [doc.text[s.start : s.end] for s in doc.sections] == ["one two", "three"]


def test_builder_without_content_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="no text content"):
        DocumentBuilder().build(doc_id="x", title="t", source_file="f", doc_type=DocType.label)


# --- FDA SPL labels ---------------------------------------------------------------------


def test_lipitor_dosage_section(docs: dict[str, ParsedDocument]) -> None:
    texts = _sections_with(docs[LIPITOR], "DOSAGE AND ADMINISTRATION")
    assert any(
        "The recommended starting dose of LIPITOR is 10 or 20 mg once daily" in t for t in texts
    )


def test_lipitor_document_fields(docs: dict[str, ParsedDocument]) -> None:
    doc = docs[LIPITOR]
    assert doc.title == "LIPITOR (atorvastatin calcium) tablets"
    assert (doc.effective_date, doc.version) == ("2014-01-13", "11")
    assert doc.metadata["generic_names"] == "atorvastatin calcium"
    assert doc.metadata["brand_names"] == "Lipitor"
    assert doc.metadata["manufacturer"] == "Parke-Davis Div of Pfizer Inc"


def test_spl_structure(docs: dict[str, ParsedDocument]) -> None:
    doc = docs[LIPITOR]
    paths = [s.path for s in doc.sections]
    assert ("16 HOW SUPPLIED/STORAGE AND HANDLING", "Storage And Handling") in paths
    assert not any("Product Data" in p or "Listing Data" in p for path in paths for p in path)
    tables = [s for s in doc.sections if s.is_table]
    assert tables and all(s.text.count("\n| ") >= 1 for s in tables)
    assert any("| Nasopharyngitis | 8.3 |" in s.text for s in tables)
    # Carton panels come last.
    panels = ["display panel" in p[0].lower() for p in paths]
    assert any(panels) and panels == sorted(panels)


def test_spl_nested_lists_keep_their_depth(docs: dict[str, ParsedDocument]) -> None:
    text = "\n".join(_sections_with(docs[LIPITOR], "1.2 Hyperlipidemia"))
    assert "\n  a. LDL-C remains ≥ 190 mg/dL or" in text
    assert "\n    - there is a positive family history" in text


def test_a_box_drawn_inside_a_section_is_not_the_boxed_warning(
    docs: dict[str, ParsedDocument],
) -> None:
    # The haloperidol label codes its adult dose ranges 34066-1 inside Dosage and
    # Administration; its own three fragments under "Adults" are one unit.
    doc = docs["drug-labels/fda-spl/no-title.xml"]
    (adults,) = [s for s in doc.sections if s.path[-1:] == ("Adults",)]
    assert adults.code == "34068-7"
    assert adults.path == ("DOSAGE AND ADMINISTRATION", "Inital Dosage Range", "Adults")
    assert adults.text.startswith("Moderate Symptomatology - 0.5 mg to 2 mg b.i.d. or t.i.d.")
    assert "Geriatric or Debilitated Patients" in adults.text
    assert doc.text[adults.start:adults.end] == adults.text
    assert all(len(s.path) == 1 for s in doc.sections if s.code == "34066-1")
    cough = docs["drug-labels/fda-spl/cough.xml"]
    assert not any("Boxed Warning" in s.path for s in cough.sections)
    # Humira's boxed warning is a top-level section and stays one.
    assert any(s.code == "34066-1" for s in docs["drug-labels/fda-spl/humira.xml"].sections)


def test_builder_joins_fragments_only_where_asked() -> None:
    joined = DocumentBuilder(join_continuations=True)
    apart = DocumentBuilder()
    topic = "Physicians should warn patients about this at some length. " * 5
    for builder in (joined, apart):
        builder.add(("A",), "Short line.")
        builder.add(("A",), "Another short line.")
        builder.add(("A",), topic)
        builder.add(("A",), topic)  # a whole topic after a whole topic stays apart
        builder.add(("B",), "Other path.")
    assert [len(b.sections) for b in (joined, apart)] == [3, 5]
    first = joined.sections[0]
    built = joined.build(doc_id="d", title="t", source_file="f", doc_type=DocType.label)
    assert first.text.startswith("Short line.\n\nAnother short line.\n\nPhysicians")
    assert built.text[first.start:first.end] == first.text


def test_spl_title_fallbacks(docs: dict[str, ParsedDocument]) -> None:
    assert docs["drug-labels/fda-spl/no-title.xml"].title == "Haloperidol tablet"
    assert docs["drug-labels/fda-spl/cough.xml"].title.startswith("TRIAMINIC")
    assert docs["drug-labels/fda-spl/humira.xml"].title == "HUMIRA (adalimumab) injection"


def test_document_date_beats_manifest_date() -> None:
    source = SOURCES[LIPITOR]
    dated = SourceFile(source.path, source.relpath, source.doc_type, (), None, "1999-01-01")
    doc = parse_file(dated, MAX_BYTES)
    assert doc.effective_date == "2014-01-13"
    assert doc.metadata["effective_date_from"] == "document"


# --- NGC guideline summaries ------------------------------------------------------------


def test_ngc_major_recommendations(docs: dict[str, ParsedDocument]) -> None:
    doc = docs[NGC_HEP_B]
    recommendations = [
        s for s in doc.sections if s.path[:2] == ("Recommendations", "Major Recommendations")
    ]
    assert any("At the time of hire or matriculation" in s.text for s in recommendations)
    # Bold sub-headings inside the field become a third path element.
    assert ("Recommendations", "Major Recommendations", "Vaccine Nonresponders") in {
        s.path for s in recommendations
    }


def test_ngc_document_fields(docs: dict[str, ParsedDocument]) -> None:
    doc = docs[NGC_HEP_B]
    assert doc.title.startswith("CDC guidance for evaluating health-care personnel")
    assert doc.doc_id == "ngc:ngc-10302"
    assert doc.effective_date == "2013-12-20"
    paths = [s.path for s in doc.sections]
    assert not any(p[0] == "Disclaimer" for p in paths)
    assert sum(p[1] == "Bibliographic Source(s)" for p in paths) == 1  # repeated field kept once
    picklist = next(s.text for s in doc.sections if s.path == ("Scope", "Guideline Category"))
    assert picklist.startswith("- Counseling\n- Evaluation")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2013 Dec 20", "2013-12-20"),
        ("2014 Jul", "2014-07-01"),
        ("2014", "2014-01-01"),
        ("1999 May (revised 2014 Oct)", "2014-10-01"),
        ("2011 Jan 28 (revised 2014)", "2014-01-01"),
        ("not stated", None),
        ("2014 Foo 3", None),
    ],
)
def test_ngc_release_dates(value: str, expected: str | None) -> None:
    assert release_date(value) == expected


# --- PDF --------------------------------------------------------------------------------


def test_pdf_sections_carry_pages_and_headings(docs: dict[str, ParsedDocument]) -> None:
    doc = docs[CDC_PDF]
    assert doc.title.startswith("Guide to Infection Prevention For Outpatient Settings")
    assert all(isinstance(s.page, int) for s in doc.sections)
    pages = [s.page or 0 for s in doc.sections]
    assert all(1 <= p <= 44 for p in pages)
    assert pages == sorted(pages) and len(set(pages)) > 30
    assert any(s.path == ("INTRODUCTION",) and s.page == 3 for s in doc.sections)
    hand_hygiene = [s for s in doc.sections if s.path[-1:] == ("Hand Hygiene",)]
    assert any("alcohol-based hand rubs" in s.text for s in hand_hygiene)


def test_pdf_drops_running_footers(docs: dict[str, ParsedDocument]) -> None:
    assert "Version 2.3 - September 2016" not in docs[CDC_PDF].text


def test_corrupt_pdf(tmp_path: Path) -> None:
    garbage = b"%PDF-1.7\n" + bytes(range(256)) * 16
    with pytest.raises(ParseError, match="corrupt or unreadable PDF"):
        parse_file(_write(tmp_path, "broken.pdf", garbage), MAX_BYTES)


def test_pdf_without_pdf_header(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="not a PDF file"):
        parse_file(_write(tmp_path, "fake.pdf", b"<html>hello</html>"), MAX_BYTES)


def _pdf_bytes(writer: PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_password_protected_pdf(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    with pytest.raises(ParseError, match="encrypted"):
        parse_file(_write(tmp_path, "locked.pdf", _pdf_bytes(writer)), MAX_BYTES)


def test_owner_password_only_pdf_is_read(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")  # pypdf needs it for AES
    writer = PdfWriter()
    for page in PdfReader(CORPORA / CDC_PDF).pages[2:4]:
        writer.add_page(page)
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-256")
    doc = parse_file(_write(tmp_path, "no-edit.pdf", _pdf_bytes(writer)), MAX_BYTES)
    assert "The transition of healthcare delivery" in doc.text


def test_pdf_without_text(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    with pytest.raises(ParseError, match="no extractable text"):
        parse_file(_write(tmp_path, "scan.pdf", _pdf_bytes(writer)), MAX_BYTES)


# --- Markdown ---------------------------------------------------------------------------


def test_lipotropics_table(docs: dict[str, ParsedDocument]) -> None:
    doc = docs[LIPOTROPICS]
    tables = [s for s in doc.sections if s.is_table]
    preferred = next(s for s in tables if "Atorvastatin" in s.text)
    assert preferred.path == ("Lipotropics", "Formulary", "Preferred")
    assert "| Atorvastatin (QL) | Atorvastatin Calcium Tab (all strengths) | 102 | 102 |" in (
        preferred.text
    )
    assert doc.effective_date == "2024-01-01"  # from the manifest
    assert doc.metadata["effective_date_from"] == "manifest"


def test_markdown_cleanup(docs: dict[str, ParsedDocument]) -> None:
    for relpath in INDEXED:
        if relpath.endswith(".md"):
            text = docs[relpath].text
            assert "<sup>" not in text and "](http" not in text and "{:" not in text, relpath
            assert "search:" not in text, relpath  # YAML front matter


def test_markdown_pseudo_headings(docs: dict[str, ParsedDocument]) -> None:
    ncd = docs[LIPID_NCD]
    assert ncd.title == "Lipid Testing"
    assert {s.path for s in ncd.sections} >= {("Lipid Testing", "Indications")}
    assert ncd.metadata["source_url"].startswith("https://www.cms.gov/")
    assert "https://www.cms.gov" not in ncd.text
    updl = docs[UPDL_CRITERIA]
    path = ("UPDL Criteria", "Analgesic Agents", "Gout", "Clinical PA Criteria")
    assert any(s.path == path for s in updl.sections)


def test_a_formulary_flags_rule_is_a_unit_of_its_own(docs: dict[str, ParsedDocument]) -> None:
    """"**QL** – All colchicine products: 6 doses per claim ..." follows the criteria of
    its drug class on the page but is not one of them: its own section, headed by the
    flag and the drugs it names, beside the criteria labels (not under them)."""
    updl = docs[UPDL_CRITERIA]
    by_path = {s.path: s for s in updl.sections}
    ql = by_path[("UPDL Criteria", "Analgesic Agents", "Gout", "QL: All colchicine products")]
    assert ql.text.startswith("QL – All colchicine products: 6 doses per claim for acute gout")
    ar = by_path[("UPDL Criteria", "Central Nervous System (CNS) Agents", "Alzheimer's Agents",
                  "AR: All drugs")]
    assert "a PA is required for patients younger than 40 years" in ar.text
    subsequent = by_path[("UPDL Criteria", "Central Nervous System (CNS) Agents",
                          "Alzheimer's Agents", "Subsequent Authorization Criteria")]
    assert "younger than 40" not in subsequent.text
    from ingest.parsers.markdown import note_flag

    assert (note_flag(ql.path[-1]), note_flag(ar.path[-1])) == ("QL", "AR")
    assert note_flag(subsequent.path[-1]) is None


def test_markdown_untitled_file_uses_its_name(docs: dict[str, ParsedDocument]) -> None:
    doc = docs["coverage/cms-ncd/Diagnostic_Pap_Smears.md"]
    assert doc.title == "Diagnostic Pap Smears"
    assert doc.sections[0].path == ("Diagnostic Pap Smears",)


def test_long_markdown_table_is_split_with_header(tmp_path: Path) -> None:
    rows = "\n".join(f"| Drug {i:03d} <sup>PA</sup> | generic {i} | {i * 7} |" for i in range(200))
    text = f"# Big\n\n| Drug | Generic | Qty |\n|---|---|---|\n{rows}\n"
    doc = parse_file(_write(tmp_path, "big.md", text), MAX_BYTES)
    pieces = [s for s in doc.sections if s.is_table]
    assert len(pieces) > 1
    for piece in pieces:
        assert piece.text.startswith("| Drug | Generic | Qty |\n| --- | --- | --- |\n")
        assert len(piece.text) <= MAX_TABLE_CHARS
    body = [ln for p in pieces for ln in p.text.split("\n")[2:]]
    assert len(body) == 200 and body[0] == "| Drug 000 (PA) | generic 0 | 0 |"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Allopurinol 100 MG <sup>QL</sup>", "Allopurinol 100 MG (QL)"),
        ("Vascepa <sup>BvG ==(Process by NDC)==</sup>", "Vascepa (BvG (Process by NDC))"),
        (
            '[Gout - Mitigare](https://x.test/a?b=1){:target="_blank" rel="noopener"}',
            "Gout - Mitigare",
        ),
        ("[Semaglutide](<../Guide/Semaglutide.md>)", "Semaglutide"),
        ("**Length** : 365 days, at least ^^30 days^^", "Length : 365 days, at least 30 days"),
        (r"Hb \<=11 and \>10", "Hb <=11 and >10"),
        ("see <https://cms.gov/x>", "see https://cms.gov/x"),
        ("Prescribers are defined as: </br>", "Prescribers are defined as:"),
    ],
)
def test_clean_inline(raw: str, expected: str) -> None:
    assert clean_inline(raw) == expected


# --- CMS QHP formulary JSON -------------------------------------------------------------


def test_qhp_drug_sections(docs: dict[str, ParsedDocument]) -> None:
    doc = docs[QHP_DRUGS]
    assert [s.path for s in doc.sections] == [
        ("Acetaminophen 500 MG Oral Tablet [Tylenol]",),
        ("Azithromycin 500 MG Oral Tablet [Zithromax]",),
    ]
    azithromycin = doc.sections[1].text
    assert azithromycin.startswith("Azithromycin 500 MG Oral Tablet [Zithromax] (RxNorm 248656):")
    assert (
        "- plan Vandelay Insurance Gold Health Plan (12345XX9876543), tier GENERIC, "
        "prior authorization: no, step therapy: no, quantity limit: yes, years 2020."
    ) in azithromycin
    assert doc.metadata["years"] == "2020"


def test_qhp_without_plans_file_uses_plan_ids(tmp_path: Path) -> None:
    data = (CORPORA / QHP_DRUGS).read_text(encoding="utf-8")
    doc = parse_file(_write(tmp_path, "drugs.json", data), MAX_BYTES)
    assert "- plan 12345XX9876543, tier GENERIC" in doc.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{", "invalid JSON"),
        ("[1, 2, 3]", "not a CMS QHP drugs.json"),
        ('[{"drug_name": "x", "plans": 5}]', "'plans' is not a list"),
    ],
)
def test_qhp_bad_json(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_file(_write(tmp_path, "drugs.json", content), MAX_BYTES)


# --- dispatch and file-level failures ---------------------------------------------------


def test_invalid_xml(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="invalid XML: .*mismatch"):
        parse_file(_write(tmp_path, "bad.xml", "<document><a></document>"), MAX_BYTES)


def test_unrecognised_xml(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"unrecognised XML \(root element <rss>\)"):
        parse_file(_write(tmp_path, "feed.xml", "<rss><channel/></rss>"), MAX_BYTES)


def test_xml_external_entities_are_not_resolved(tmp_path: Path) -> None:
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<Version><Section Name="S"><Field Name="F"><FieldValue Value="&x;"/></Field>'
        "</Section></Version>"
    )
    with pytest.raises(ParseError, match="invalid XML"):
        parse_file(_write(tmp_path, "xxe.xml", xxe), MAX_BYTES)


@pytest.mark.parametrize("content", ["", "  \n\n\t "])
def test_empty_file(tmp_path: Path, content: str) -> None:
    with pytest.raises(ParseError, match="^empty file$"):
        parse_file(_write(tmp_path, "empty.md", content), MAX_BYTES)


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"^unsupported file type \.xyz$"):
        parse_file(_write(tmp_path, "notes.xyz", b"PK\x03\x04"), MAX_BYTES)


def test_corrupt_docx(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"not a valid \.docx"):
        parse_file(_write(tmp_path, "notes.docx", b"PK\x03\x04 truncated"), MAX_BYTES)


def test_oversized_file(tmp_path: Path) -> None:
    source = _write(tmp_path, "big.md", "# Title\n\n" + "x" * 5000)
    with pytest.raises(ParseError, match=r"^file is 5009 bytes, over the limit of 1000$"):
        parse_file(source, 1000)


def test_binary_in_text_file(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="binary content"):
        parse_file(_write(tmp_path, "blob.md", b"\x00\x01\x02 text"), MAX_BYTES)


def test_windows_1252_text_is_read(tmp_path: Path) -> None:
    source = _write(tmp_path, "legacy.txt", "Café – dose\n".encode("cp1252"))
    assert parse_file(source, MAX_BYTES).text == "Café – dose"


def test_html_goes_through_unstructured() -> None:
    # A DailyMed HTML rendering of a label: no dedicated parser, so unstructured's
    # partitioner gives the structure (titles open sections).
    path = Path(__file__).parent / "data" / "label-rendering.html"
    doc = parse_file(_source(path, DocType.label), 10_000_000)
    assert doc.title.startswith("Hawaiian Tropic")
    paths = [" > ".join(s.path) for s in doc.sections]
    assert any("Active Ingredients" in p for p in paths)
    assert all(doc.text[s.start : s.end] == s.text for s in doc.sections)


def test_embedding_text_carries_title_and_section_path() -> None:
    from ingest.chunking import chunk_document, embedding_text

    label = DocumentBuilder()
    label.add(("2 DOSAGE AND ADMINISTRATION", "2.2 Pediatric Patients"), "Start at 10 mg/day.")
    doc = label.build(doc_id="spl:x", title="LIPITOR (atorvastatin calcium) tablets",
                      source_file="l.xml", doc_type="label")
    (chunk,) = chunk_document(doc, 1200, 150)
    # The dose sentence alone names neither the drug nor the population.
    assert embedding_text(doc, chunk) == (
        "LIPITOR (atorvastatin calcium) tablets\n"
        "2 DOSAGE AND ADMINISTRATION > 2.2 Pediatric Patients\n"
        "Start at 10 mg/day.")
    assert chunk.text == "Start at 10 mg/day."
