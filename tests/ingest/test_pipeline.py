"""Ingest of real corpus files into the real embedded Qdrant."""

from __future__ import annotations

from pathlib import Path

from qdrant_client import models

from app.core.settings import Settings
from ingest.pipeline import IngestReport, ingest_path
from retrieval.store import count, match


def _status(report: IngestReport) -> dict[str, str]:
    return {r.relpath: r.status for r in report.results}


def test_every_format_is_ingested(first_ingest: IngestReport, qdrant, settings: Settings) -> None:
    status = _status(first_ingest)
    assert not first_ingest.failed, [(r.relpath, r.reason) for r in first_ingest.failed]
    for rel, st in status.items():
        expected = "not_indexed" if rel.startswith("fhir/") else "ingested"
        assert st == expected, (rel, st)
    for doc_type in ("label", "guideline", "formulary", "coverage"):
        n = count(qdrant, settings.collection, models.Filter(must=[match("doc_type", doc_type)]))
        assert n > 0, doc_type
    patients = models.Filter(must=[match("doc_type", "patient")])
    assert count(qdrant, settings.collection, patients) == 0


def test_chunks_carry_provenance(first_ingest: IngestReport, qdrant, settings: Settings) -> None:
    points, _ = qdrant.scroll(
        settings.collection,
        scroll_filter=models.Filter(
            must=[match("source_file", "drug-labels/fda-spl/lipitor-orig.xml")]
        ),
        limit=500,
        with_payload=True,
    )
    assert points
    for p in points:
        pl = p.payload or {}
        for key in ("doc_id", "title", "source_file", "doc_type", "section_path", "char_start",
                    "char_end", "access_groups", "effective_date"):
            assert pl.get(key) not in (None, ""), (key, pl)
        assert pl["char_end"] - pl["char_start"] == len(pl["text"])
    dose = [p for p in points if "recommended starting dose of LIPITOR is 10 or 20 mg"
            in (p.payload or {})["text"]]
    assert dose and any("DOSAGE AND ADMINISTRATION" in " ".join(p.payload["section_path"]).upper()
                        for p in dose)
    pdf, _ = qdrant.scroll(
        settings.collection,
        scroll_filter=models.Filter(must=[match("doc_type", "guideline")]),
        limit=2000, with_payload=["page", "source_file"],
    )
    assert any(p.payload.get("page") for p in pdf if p.payload["source_file"].endswith(".pdf"))


def test_rerun_adds_nothing(first_ingest: IngestReport, qdrant, embedder, settings: Settings,
                            small_corpus: Path) -> None:
    before = count(qdrant, settings.collection)
    again = ingest_path(small_corpus, settings, client=qdrant, embedder=embedder, progress=False)
    assert {r.status for r in again.results} <= {"unchanged", "not_indexed"}
    assert again.chunks_written == 0
    assert count(qdrant, settings.collection) == before


def test_bad_files_are_reported_and_skipped(qdrant, embedder, settings: Settings,
                                            tmp_path: Path) -> None:
    corpus = tmp_path / "guidelines"
    corpus.mkdir()
    (corpus / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 200)
    (corpus / "invalid.xml").write_text("<document><section>unclosed</document>")
    (corpus / "empty.md").write_text("")
    (corpus / "notes.docx").write_bytes(b"PK\x03\x04 not really a docx")
    good = corpus / "good.md"
    good.write_text("# Hand hygiene\n\nPerform hand hygiene before and after patient contact.\n")
    isolated = settings.model_copy(update={"collection": "bad_files"})
    report = ingest_path(corpus, isolated, client=qdrant, embedder=embedder, progress=False)
    reasons = {Path(r.relpath).name: (r.status, r.reason) for r in report.results}
    assert reasons["good.md"][0] == "ingested"
    for name in ("corrupt.pdf", "invalid.xml", "empty.md", "notes.docx"):
        status, reason = reasons[name]
        assert status == "failed" and reason, name
    assert "empty" in reasons["empty.md"][1].lower()
    assert "docx" in reasons["notes.docx"][1].lower()
    assert count(qdrant, "bad_files") == report.chunks_written > 0


def test_changed_file_becomes_a_new_version(qdrant, embedder, settings: Settings,
                                            tmp_path: Path) -> None:
    from ingest.catalog import Catalog
    from retrieval.search import Retriever

    isolated = settings.model_copy(update={"collection": "changed_files"})
    catalog = Catalog(isolated.catalog_url)
    doc = tmp_path / "coverage" / "policy.md"
    doc.parent.mkdir()
    doc.write_text("# Policy\n\nHome glucose monitors are covered for insulin-treated diabetes.\n")
    first = ingest_path(tmp_path, isolated, client=qdrant, embedder=embedder, catalog=catalog,
                        progress=False)
    doc.write_text("# Policy\n\nHome glucose monitors are covered for all diabetes.\n\n"
                   "## Limits\n\nOne monitor every 5 years.\n")
    second = ingest_path(tmp_path, isolated, client=qdrant, embedder=embedder, catalog=catalog,
                         progress=False)
    assert first.results[0].status == second.results[0].status == "ingested"
    assert (second.results[0].version, second.results[0].previous_version) == (2, 1)
    hits = Retriever(qdrant, "changed_files", embedder, catalog=catalog).search(
        "Are home glucose monitors covered?", access_groups=["public"], limit=10)
    texts = " ".join(p.text for p in hits)
    assert "insulin-treated" not in texts and "every 5 years" in texts
    # The earlier version is kept (as-of queries, audit), just not retrieved.
    assert count(qdrant, "changed_files") == first.chunks_written + second.chunks_written
    catalog.close()


def test_small_documents_share_one_embedding_call_and_publish_separately(
    qdrant, embedder, settings: Settings, tmp_path: Path, monkeypatch
) -> None:
    import numpy as np

    from ingest.catalog import Catalog
    from ingest.pipeline import Ingestor

    isolated = settings.model_copy(update={"collection": "windows"})
    catalog = Catalog(isolated.catalog_url)
    corpus = tmp_path / "coverage"
    corpus.mkdir()
    topics = {"oxygen": "Home oxygen is covered when resting saturation is 88% or below.",
              "walker": "A walker is covered once every 5 years for impaired mobility.",
              "cgm": "Continuous glucose monitors are covered for insulin-treated diabetes.",
              "broken": "This policy's store step fails in the test."}
    for name, text in topics.items():
        (corpus / f"{name}.md").write_text(f"# {name.title()} policy\n\n{text}\n")
    calls: list[int] = []
    real_embed = embedder.embed

    def counting_embed(texts, show_progress=False):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return real_embed(texts, show_progress)

    real_store = Ingestor.store

    def store(self, prepared, vectors, progress=None):  # type: ignore[no-untyped-def]
        if prepared.planned.source.relpath.endswith("broken.md"):
            raise OSError("disk full")
        return real_store(self, prepared, vectors, progress)

    monkeypatch.setattr(embedder, "embed", counting_embed)
    monkeypatch.setattr(Ingestor, "store", store)
    report = ingest_path(tmp_path, isolated, client=qdrant, embedder=embedder,
                         catalog=catalog, progress=False)
    monkeypatch.undo()
    status = {Path(r.relpath).stem: (r.status, r.reason) for r in report.results}
    assert status["broken"] == ("failed", "internal error: OSError: disk full")
    assert all(status[n][0] == "ingested" for n in ("oxygen", "walker", "cgm"))
    # One encode call for the four documents' chunks, not one per document.
    assert calls == [4]
    # Each published as its own version.
    docs = {d.doc_key.split(":")[1] for d in catalog.documents("windows")}
    assert docs == {"oxygen", "walker", "cgm"}
    # The vectors are what embedding each document on its own gives (a write batch of
    # one chunk puts every document in a window of its own).
    (corpus / "broken.md").unlink()
    alone = isolated.model_copy(update={"collection": "windows_alone", "ingest_write_batch": 1})
    ingest_path(tmp_path, alone, client=qdrant, embedder=embedder, catalog=catalog,
                progress=False)

    def vectors(collection: str) -> dict[tuple[str, int], np.ndarray]:
        points, _ = qdrant.scroll(collection, limit=50, with_payload=["doc_id", "chunk_index"],
                                  with_vectors=["dense"])
        return {(p.payload["doc_id"], p.payload["chunk_index"]): np.asarray(p.vector["dense"])
                for p in points}

    shared, single = vectors("windows"), vectors("windows_alone")
    assert shared.keys() == single.keys() and len(shared) == 3
    for key, vec in shared.items():
        assert float(vec @ single[key]) > 0.999, key
    catalog.close()
