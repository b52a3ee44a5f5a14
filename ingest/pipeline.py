"""Ingest, top to bottom: discover → skip unchanged → parse → chunk → embed → upsert.

One bad file is reported with its reason and skipped; the others go on. A changed file's
new chunks are written before its old ones are removed, and a file counts as already
ingested only when all of its chunks are present, so an interrupted run is completed
by the next one without duplicates.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from qdrant_client import QdrantClient, models
from tqdm import tqdm

from app.settings import Settings
from ingest.chunking import Chunk, chunk_document, embedding_text
from ingest.manifest import discover
from ingest.models import DocType, ParsedDocument, ParseError, SourceFile
from ingest.parsers import parse_file
from retrieval.embedder import Embedder
from retrieval.sparse import encode_document
from retrieval.store import DENSE, SPARSE, ensure_collection, match, open_client

log = logging.getLogger(__name__)

# Bump when parsing or chunking changes, so unchanged files are re-ingested once.
PIPELINE_VERSION = "2"
UPSERT_BATCH = 128


@dataclass
class FileResult:
    relpath: str
    status: str  # ingested | unchanged | failed | not_indexed
    doc_id: str | None = None
    chunks: int = 0
    reason: str | None = None


@dataclass
class IngestReport:
    results: list[FileResult] = field(default_factory=list)
    elapsed_s: float = 0.0

    def by_status(self, status: str) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def failed(self) -> list[FileResult]:
        return self.by_status("failed")

    @property
    def chunks_written(self) -> int:
        return sum(r.chunks for r in self.by_status("ingested"))

    def summary(self) -> str:
        parts = [
            f"{len(self.by_status(s))} {s.replace('_', ' ')}"
            for s in ("ingested", "unchanged", "not_indexed", "failed")
        ]
        return (
            f"{len(self.results)} files: " + ", ".join(parts)
            + f"; {self.chunks_written} chunks written in {self.elapsed_s:.1f} s"
        )


def file_hash(source: SourceFile, content: bytes, settings: Settings) -> str:
    """Identity of what a file's chunks would be: its bytes and everything that shapes
    their chunks, vectors and payload."""
    digest = hashlib.sha256()
    for part in (PIPELINE_VERSION, source.doc_type.value, ",".join(source.access_groups),
                 source.payer or "", source.effective_date or "", str(settings.chunk_chars),
                 str(settings.chunk_overlap_chars), settings.embedding_model):
        digest.update(part.encode() + b"\0")
    digest.update(content)
    return digest.hexdigest()


def point_id(source_file: str, doc_hash: str, index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"medcite:{source_file}:{doc_hash}:{index}"))


def is_complete(client: QdrantClient, collection: str, relpath: str, doc_hash: str) -> bool:
    flt = models.Filter(must=[match("source_file", relpath), match("doc_hash", doc_hash)])
    points, _ = client.scroll(collection, scroll_filter=flt, limit=1, with_payload=["doc_chunks"])
    if not points:
        return False
    expected = int((points[0].payload or {}).get("doc_chunks", -1))
    return client.count(collection, count_filter=flt, exact=True).count == expected


def payload(
    doc: ParsedDocument, source: SourceFile, chunk: Chunk, doc_hash: str, total: int, now: str
) -> dict[str, object]:
    return {
        "text": chunk.text,
        "doc_id": doc.doc_id,
        "title": doc.title,
        "source_file": source.relpath,
        "doc_type": doc.doc_type.value,
        "section_path": list(chunk.section.path),
        "page": chunk.section.page,
        "char_start": chunk.start,
        "char_end": chunk.end,
        "effective_date": doc.effective_date or source.effective_date,
        "version": doc.version,
        "payer": source.payer,
        "access_groups": list(source.access_groups),
        "doc_hash": doc_hash,
        "doc_chunks": total,
        "chunk_index": chunk.index,
        "is_table": chunk.section.is_table,
        "ingested_at": now,
        "metadata": doc.metadata,
    }


def sparse_vector(text: str) -> models.SparseVector:
    vec = encode_document(text)
    return models.SparseVector(indices=vec.indices, values=vec.values)


def write_document(
    client: QdrantClient,
    collection: str,
    embedder: Embedder,
    doc: ParsedDocument,
    source: SourceFile,
    chunks: list[Chunk],
    doc_hash: str,
) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    texts = [embedding_text(doc, c) for c in chunks]
    vectors = embedder.embed(texts)
    points = [
        models.PointStruct(
            id=point_id(source.relpath, doc_hash, c.index),
            vector={DENSE: vectors[i].tolist(), SPARSE: sparse_vector(texts[i])},
            payload=payload(doc, source, c, doc_hash, len(chunks), now),
        )
        for i, c in enumerate(chunks)
    ]
    for i in range(0, len(points), UPSERT_BATCH):
        client.upsert(collection, points=points[i : i + UPSERT_BATCH], wait=True)
    # Only now drop what an earlier version of this file wrote.
    stale = models.Filter(
        must=[match("source_file", source.relpath)],
        must_not=[match("doc_hash", doc_hash)],
    )
    client.delete(collection, points_selector=models.FilterSelector(filter=stale), wait=True)


def ingest_source(
    client: QdrantClient, settings: Settings, embedder: Embedder, source: SourceFile
) -> FileResult:
    result = FileResult(relpath=source.relpath, status="failed")
    if source.doc_type is DocType.patient:
        result.status, result.reason = "not_indexed", "patient bundle: context for /ask only"
        return result
    try:
        content = source.path.read_bytes()
    except OSError as exc:
        result.reason = f"cannot read file: {exc.strerror or exc}"
        return result
    doc_hash = file_hash(source, content, settings)
    if is_complete(client, settings.collection, source.relpath, doc_hash):
        result.status = "unchanged"
        return result
    try:
        doc = parse_file(source, settings.max_file_bytes)
    except ParseError as exc:
        result.reason = str(exc)
        return result
    chunks = chunk_document(doc, settings.chunk_chars, settings.chunk_overlap_chars)
    if not chunks:
        result.reason = "no text could be extracted"
        return result
    write_document(client, settings.collection, embedder, doc, source, chunks, doc_hash)
    result.status, result.doc_id, result.chunks = "ingested", doc.doc_id, len(chunks)
    return result


def ingest_path(
    root: Path,
    settings: Settings,
    *,
    client: QdrantClient | None = None,
    embedder: Embedder | None = None,
    access_groups: tuple[str, ...] | None = None,
    progress: bool = True,
) -> IngestReport:
    started = time.perf_counter()
    embedder = embedder or Embedder(
        settings.embedding_model, settings.embedding_device, settings.embedding_batch_size
    )
    own_client = client is None
    client = client or open_client(settings)
    try:
        ensure_collection(client, settings.collection, embedder.dim)
        report = IngestReport()
        sources = discover(root, access_groups=access_groups)
        bar = tqdm(sources, desc="ingest", unit="file", disable=not progress)
        for source in bar:
            bar.set_postfix_str(source.path.name[:40])
            try:
                result = ingest_source(client, settings, embedder, source)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the rest
                log.exception("ingest of %s failed", source.relpath)
                result = FileResult(source.relpath, "failed", reason=f"internal error: {exc}")
            if result.status == "failed":
                bar.write(f"FAILED {source.relpath}: {result.reason}")
            report.results.append(result)
        report.elapsed_s = time.perf_counter() - started
        return report
    finally:
        if own_client:
            client.close()
