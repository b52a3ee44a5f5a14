"""Document versions: identity, publication, as-of retrieval, diffs, retirement, and a
re-ingest racing queries. Real Ohio Medicaid formulary versions, real embedding model,
real embedded Qdrant."""

from __future__ import annotations

import shutil
import threading
from datetime import date
from pathlib import Path

import pytest

from app.core.settings import REPO_ROOT, Settings
from ingest.catalog import Catalog, NewVersion, in_force
from ingest.diff import Snapshot, diff_snapshots, split_entry
from ingest.identity import date_from_filename, derive_doc_key
from ingest.manifest import discover
from ingest.models import DocType, SourceFile
from ingest.parsers import parse_file
from ingest.pipeline import Ingestor, ingest_path, ingest_sources
from retrieval.models import SearchFilters
from retrieval.search import Retriever

OHIO = REPO_ROOT / "corpora" / "formularies" / "ohio-medicaid-updl"
LIPO_2023 = OHIO / "versions" / "lipotropics.v2023-04-04.b8c269cd.md"
LIPO_2024 = OHIO / "versions" / "lipotropics.v2024-01-05.7f5fdb53.md"
PDL_2022 = OHIO / "versions" / "preferred_drug_list.v2022-12-08.3f94cc45.md"
PDL_2024 = OHIO / "current-2024" / "preferred_drug_list.md"
MANIFEST = """[[sources]]
glob = "ohio/*.md"
doc_type = "formulary"
payer = "Ohio Medicaid"
access_groups = ["public"]
"""


def corpus_with(root: Path, *files: Path, names: tuple[str, ...] = ()) -> Path:
    (root / "ohio").mkdir(parents=True, exist_ok=True)
    (root / "manifest.toml").write_text(MANIFEST)
    for i, f in enumerate(files):
        shutil.copy(f, root / "ohio" / (names[i] if i < len(names) else f.name))
    return root


def first_categories(source: Path, target: Path) -> Path:
    """A formulary list up to its cardiovascular categories (about a sixth of it): enough
    rows for a version to be written in many batches, without embedding the whole list
    again and again (the re-ingest tests took minutes on two cores with the whole list)."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines)
               if line.lstrip("# ").startswith("Cardiovascular Agents"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(lines[:cut]), encoding="utf-8")
    return target


def snapshot_of(path: Path) -> Snapshot:
    source = SourceFile(path, path.name, DocType.formulary, ("public",), "Ohio Medicaid")
    doc = parse_file(source, 10**8)
    return Snapshot(doc.title, [(s.path, s.text, s.is_table) for s in doc.sections])


# Identity --------------------------------------------------------------------------------

def test_dated_files_are_versions_of_one_document() -> None:
    assert date_from_filename("versions/lipotropics.v2024-01-05.7f5fdb53.md") == "2024-01-05"
    assert date_from_filename("current-2024/lipotropics.md") is None
    keys = {derive_doc_key(p, "formulary", "Ohio Medicaid") for p in (
        "versions/lipotropics.v2023-04-04.b8c269cd.md", "current-2024/lipotropics.md")}
    assert keys == {"ohio-medicaid:lipotropics"}
    assert derive_doc_key("fda-spl/lipitor-orig.xml", "label", None) == "label:lipitor-orig"
    shipped = {s.relpath: s for s in discover(REPO_ROOT / "corpora")}
    dated = shipped["formularies/ohio-medicaid-updl/versions/lipotropics.v2023-04-04.b8c269cd.md"]
    assert (dated.doc_key, dated.effective_date) == ("ohio-medicaid:lipotropics", "2023-04-04")


def test_version_in_force_follows_effective_dates_and_retirement() -> None:
    rows = [
        {"version_id": "a", "number": 1, "effective_date": "2023-04-04", "committed_at": "x"},
        {"version_id": "b", "number": 2, "effective_date": "2024-01-05", "committed_at": "x"},
        # Published later but effective earlier (a backfill): never displaces v2.
        {"version_id": "c", "number": 3, "effective_date": "2022-01-01", "committed_at": "x"},
    ]
    pick = lambda day, retired=None: (in_force(rows, retired, day) or {}).get("version_id")  # noqa: E731
    assert pick("2021-06-01") is None
    assert pick("2022-06-01") == "c"
    assert pick("2023-06-01") == "a"
    assert pick("2025-01-01") == "b"
    assert pick("2025-01-01", retired="2024-12-31") is None
    assert pick("2024-06-01", retired="2024-12-31") == "b"


# Diffs of real formulary versions ---------------------------------------------------------

def test_diff_finds_the_drug_added_to_the_newer_lipotropics_page() -> None:
    diff = diff_snapshots("ohio-medicaid:lipotropics", snapshot_of(LIPO_2023),
                          snapshot_of(LIPO_2024), from_version=1, to_version=2)
    added = {r.key: r for r in diff.rows if r.change == "added"}
    assert "Atorvaliq" in added
    assert added["Atorvaliq"].after and added["Atorvaliq"].after["status"] == "Non-Preferred"
    changed = {r.key: r.details for r in diff.rows if r.change == "changed"}
    assert "brand preferred over generic added" in changed["Livalo"]
    assert not [r for r in diff.rows if r.change == "removed"]
    assert diff.summary.startswith("rows: 1 added")


def test_diff_reads_status_columns_and_flags() -> None:
    # The 2024 list moved Probenecid/Colchicine from the preferred to the non-preferred
    # column, with a quantity limit instead of prior authorization.
    diff = diff_snapshots("ohio-medicaid:preferred_drug_list", snapshot_of(PDL_2022),
                          snapshot_of(PDL_2024), from_version=1, to_version=2)
    moved = [r for r in diff.rows if r.key == "Probenecid/Colchicine"]
    assert len(moved) == 1 and moved[0].change == "status_changed"
    assert moved[0].table == "Analgesic Agents › Gout"
    assert set(moved[0].details) == {"status: Preferred → Non-Preferred",
                                     "quantity limit added", "prior authorization removed"}
    # A page whose only change is formatting has no changes at all.
    same = diff_snapshots("k", snapshot_of(OHIO / "versions" /
                                           "preferred_drug_list.v2022-10-26.d9042dc7.md"),
                          snapshot_of(PDL_2022), from_version=1, to_version=2)
    assert same.rows == [] and same.sections == []


def test_flags_are_split_from_drug_names() -> None:
    assert split_entry("Colchicine Tab (PA QL)") == ("Colchicine Tab", frozenset({"PA", "QL"}),
                                                      "PA QL")
    assert split_entry("Colchicine Tab PA QL")[:2] == ("Colchicine Tab", frozenset({"PA", "QL"}))
    assert split_entry("Livalo (BVG (Process by NDC) Weekly Updates)")[:2] == (
        "Livalo", frozenset({"BVG"}))
    assert split_entry("Diclofenac Gel 1%")[:2] == ("Diclofenac Gel 1%", frozenset())


# Publication, as-of retrieval, retirement ------------------------------------------------

@pytest.fixture()
def versioned(settings: Settings, qdrant, embedder, tmp_path: Path):  # type: ignore[no-untyped-def]
    isolated = settings.model_copy(update={"collection": f"versions_{tmp_path.name[-12:]}"})
    catalog = Catalog(isolated.catalog_url)
    yield isolated, catalog, Retriever(qdrant, isolated.collection, embedder, catalog=catalog)
    catalog.close()


def test_new_version_supersedes_and_old_stays_queryable_as_of(
    versioned, qdrant, embedder, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    settings, catalog, retriever = versioned
    root = corpus_with(tmp_path / "corpus", LIPO_2024, LIPO_2023)
    report = ingest_path(root, settings, client=qdrant, embedder=embedder, catalog=catalog,
                         progress=False)
    assert [r.status for r in report.results] == ["ingested", "ingested"]
    newest = next(r for r in report.results if "2024" in r.relpath)
    assert (newest.version, newest.previous_version) == (2, 1)  # oldest published first
    assert newest.changes and "1 added" in newest.changes

    versions = catalog.versions(settings.collection, "ohio-medicaid:lipotropics")
    assert [(v.version, v.status, v.effective_date) for v in versions] == [
        (2, "current", "2024-01-05"), (1, "superseded", "2023-04-04")]

    question = "Is Atorvaliq preferred or non-preferred on the Ohio Medicaid lipotropics list?"
    now = retriever.search(question, access_groups=["public"], limit=8)
    assert now and {p.provenance.version_number for p in now} == {2}
    assert {p.provenance.effective_date for p in now} == {"2024-01-05"}
    assert any("Atorvaliq" in p.text for p in now)

    then = retriever.search(question, access_groups=["public"], limit=8,
                            filters=SearchFilters(as_of=date(2023, 6, 1)))
    assert then and {p.provenance.version_number for p in then} == {1}
    assert not any("Atorvaliq" in p.text for p in then)
    before_any = retriever.search(question, access_groups=["public"],
                                  filters=SearchFilters(as_of=date(2020, 1, 1)))
    assert before_any == []

    # Same bytes again under another date: not a new version.
    shutil.copy(LIPO_2024, root / "ohio" / "lipotropics.v2024-02-01.md")
    again = ingest_path(root, settings, client=qdrant, embedder=embedder, catalog=catalog,
                        progress=False)
    status = {Path(r.relpath).name: (r.status, r.reason) for r in again.results}
    assert status["lipotropics.v2024-02-01.md"][0] == "unchanged"
    assert "same content as version 2" in (status["lipotropics.v2024-02-01.md"][1] or "")
    assert again.chunks_written == 0

    catalog.retire(settings.collection, "ohio-medicaid:lipotropics", by="test", reason="replaced")
    assert retriever.search(question, access_groups=["public"]) == []
    assert catalog.documents(settings.collection) == []
    history = retriever.search(question, access_groups=["public"],
                               filters=SearchFilters(as_of=date(2024, 6, 1)))
    assert history and {p.provenance.version_number for p in history} == {2}


def test_a_version_is_known_to_searches_from_its_begin_not_only_its_commit(
    versioned,  # type: ignore[no-untyped-def]
) -> None:
    """Searches filter versions as "none of the known ones not in force" when that list is
    shorter (retrieval/search.py): a version being written must be known before its first
    chunk is stored, so `begin` moves the catalog's generation and the cached set."""
    settings, catalog, _ = versioned
    c = settings.collection

    def version(vid: str, content: str) -> NewVersion:
        return NewVersion(vid, "payer:list", "List", "formulary", "payer", ("public",),
                          "list.md", "2024-01-01", content)

    assert catalog.known_versions(c) == frozenset()
    catalog.begin(c, version("a1", "x"), b"")
    assert catalog.known_versions(c) == {"a1"}
    assert catalog.in_force_versions(c) == {}
    catalog.commit(c, version("a1", "x"), 3)
    catalog.begin(c, version("a2", "y"), b"")
    assert catalog.known_versions(c) == {"a1", "a2"}
    assert set(catalog.in_force_versions(c)) == {"a1"}


def test_failed_files_are_reported_and_lose_nothing(
    versioned, qdrant, embedder, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    from pypdf import PdfWriter

    settings, catalog, retriever = versioned
    settings = settings.model_copy(update={"max_file_bytes": 20_000})
    root = corpus_with(tmp_path / "corpus", LIPO_2024)
    folder = root / "ohio"
    (folder / "big.md").write_text("# Big\n\n" + "Quantity limit 30 per 30 days. " * 2000)
    (folder / "empty.md").write_text("")
    (folder / "table.xlsx.md").write_bytes(b"\xff\xfe\x00garbage")  # undecodable text
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("secret")
    with (folder / "locked.pdf").open("wb") as handle:
        writer.write(handle)
    (root / "manifest.toml").write_text(MANIFEST.replace("ohio/*.md", "ohio/*"))
    (folder / "notes.xyz").write_text("unknown type")
    report = ingest_path(root, settings, client=qdrant, embedder=embedder, catalog=catalog,
                         progress=False)
    reasons = {Path(r.relpath).name: (r.status, r.reason or "") for r in report.results}
    assert reasons["lipotropics.v2024-01-05.7f5fdb53.md"][0] == "ingested"
    assert reasons["big.md"][0] == "failed" and "over the limit" in reasons["big.md"][1]
    assert reasons["empty.md"][0] == "failed" and "empty" in reasons["empty.md"][1].lower()
    assert reasons["locked.pdf"][0] == "failed" and "password" in reasons["locked.pdf"][1]
    assert reasons["notes.xyz"][0] == "failed" and "unsupported" in reasons["notes.xyz"][1]
    assert reasons["table.xlsx.md"][0] == "failed"
    assert len(report.failed) == 5
    assert [d.doc_key for d in catalog.documents(settings.collection)] == [
        "ohio-medicaid:lipotropics"]


def test_queries_during_a_reingest_never_mix_versions(
    versioned, qdrant, embedder, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    settings, catalog, retriever = versioned
    root = corpus_with(tmp_path / "corpus")
    first_categories(PDL_2022, root / "ohio" / PDL_2022.name)
    first = ingest_path(root, settings, client=qdrant, embedder=embedder, catalog=catalog,
                        progress=False)
    assert first.results[0].status == "ingested"
    first_categories(PDL_2024, root / "ohio" / "preferred_drug_list.v2024-01-01.md")
    seen: list[set[int | None]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def query() -> None:
        try:
            while not stop.is_set():
                hits = retriever.search("Which gout drugs are preferred?",
                                        access_groups=["public"], limit=10)
                seen.append({p.provenance.version_number for p in hits})
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=query) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        source = discover(root)
        report = ingest_sources(source, Ingestor(qdrant, catalog, embedder, settings),
                                progress=False)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert {r.status for r in report.results} == {"ingested", "unchanged"}
    assert len(seen) >= 4, "the queries did not overlap the re-ingest"
    assert all(len(versions) == 1 for versions in seen), seen
    assert {1, 2} >= set().union(*seen)
    final = retriever.search("Which gout drugs are preferred?", access_groups=["public"])
    assert {p.provenance.version_number for p in final} == {2}


def test_cli_versions_diff_and_retire(
    versioned, qdrant, embedder, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
) -> None:
    from app.cli import build_parser

    settings, catalog, retriever = versioned
    root = corpus_with(tmp_path / "corpus", LIPO_2023, LIPO_2024)
    ingest_path(root, settings, client=qdrant, embedder=embedder, catalog=catalog,
                progress=False)

    def run(*argv: str) -> tuple[int, str]:
        args = build_parser().parse_args(list(argv))
        code = int(args.func(args, settings))
        return code, capsys.readouterr().out

    code, out = run("versions", "ohio-medicaid:lipotropics")
    assert code == 0 and "v2 current" in out and "v1 superseded" in out
    code, out = run("diff", "ohio-medicaid:lipotropics")
    assert code == 0 and "+ [Formulary] Atorvaliq: added as Non-Preferred" in out
    code, out = run("diff", "ohio-medicaid:lipotropics", "--from", "2", "--to", "1", "--json")
    assert code == 0 and '"removed"' in out  # going back, Atorvaliq is removed
    assert run("diff", "ohio-medicaid:nothing")[0] == 1
    code, out = run("retire", "ohio-medicaid:lipotropics", "--reason", "test")
    assert code == 0 and "retired" in out
    code, out = run("documents", "--all")
    assert "RETIRED" in out
    assert retriever.search("Atorvaliq", access_groups=["public"]) == []


def test_retire_missing_retires_documents_whose_file_is_gone(
    versioned, qdrant, embedder, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    from datetime import date, timedelta

    from retrieval.models import SearchFilters

    settings, catalog, retriever = versioned
    root = corpus_with(tmp_path / "corpus", LIPO_2024)
    policy = root / "ohio" / "walker_policy.md"
    policy.write_text("# Walker coverage\n\nA walker is covered once every 5 years.\n")
    ingest_path(root, settings, client=qdrant, embedder=embedder, catalog=catalog,
                progress=False)
    policy.unlink()
    # Without the flag a missing file is not a decision to withdraw the document.
    kept = ingest_path(root, settings, client=qdrant, embedder=embedder, catalog=catalog,
                       progress=False)
    assert kept.retired == []
    assert any("walker" in p.text for p in retriever.search(
        "Is a walker covered?", access_groups=["public"], limit=10))
    report = ingest_path(root, settings, client=qdrant, embedder=embedder, catalog=catalog,
                         progress=False, retire_missing=True, retired_by="test")
    assert report.retired == ["ohio-medicaid:walker_policy"]
    assert "1 documents retired" in report.summary()
    assert not any("walker" in p.text for p in retriever.search(
        "Is a walker covered?", access_groups=["public"], limit=10))
    # History stays: as of yesterday the policy still answered.
    yesterday = SearchFilters(as_of=date.today() - timedelta(days=1))
    assert any("walker" in p.text for p in retriever.search(
        "Is a walker covered?", access_groups=["public"], filters=yesterday, limit=10))
    assert {d.doc_key for d in catalog.documents(settings.collection)} == {
        "ohio-medicaid:lipotropics"}
