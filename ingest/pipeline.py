"""Ingest, top to bottom: discover → plan (skip unchanged) → parse (worker processes) →
chunk → embed (batched) → upsert (batched) → publish the version → diff against the last.

Every document has a stable `doc_key` and versions (ingest/catalog.py). A version's chunks
are written under its own `version_id`, invisible to queries, and the version is published
in one catalog transaction once all of them are present; the previous version stays in
force until that moment and stays queryable "as of" its dates afterwards. A run killed at
any point leaves the previous versions serving; the next run finishes the job, writing
the same deterministic point ids again, so there are no duplicates. One bad file is
reported with its reason and skipped; the others go on.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np
from qdrant_client import QdrantClient, models
from tqdm import tqdm

from ingest.catalog import Catalog, NewVersion, pack_snapshot
from ingest.chunking import Chunk, chunk_document, embedding_text
from ingest.config import IngestSettings
from ingest.diff import Snapshot, diff_snapshots
from ingest.identity import content_hash, version_id
from ingest.manifest import discover
from ingest.models import DocType, ParsedDocument, ParseError, SourceFile
from ingest.parsers import parse_file
from ingest.parsers.markdown import note_flag
from retrieval.drugs import branded_products, drug_names
from retrieval.embedder import Embedder
from retrieval.schema import ChunkPayload
from retrieval.sparse import encode_document
from retrieval.store import DENSE, SPARSE, ensure_collection, match, open_client, settle

log = logging.getLogger(__name__)

# Bump when parsing, chunking, the embedded texts or the payload change, so unchanged
# files are rebuilt once. 7: the Snowball stemmer of retrieval/sparse.py. 8: `applies_to`
# in the payload; a window that points back embedded with its antecedent.
PIPELINE_VERSION = "8"
UPSERT_BATCH = 128
# Invisible leftovers (abandoned pending versions, replaced builds) older than this are
# removed at the start of a run; younger ones may belong to a run still going elsewhere,
# or be read by a query that started before their replacement was published.
STALE_AFTER = timedelta(hours=1)

Progress = Callable[[str, float], None]
T = TypeVar("T")


@dataclass
class FileResult:
    relpath: str
    status: str  # ingested | unchanged | failed | not_indexed
    doc_id: str | None = None
    doc_key: str | None = None
    version: int | None = None
    previous_version: int | None = None
    chunks: int = 0
    reason: str | None = None
    changes: str | None = None  # diff summary against the version it supersedes


@dataclass
class IngestReport:
    results: list[FileResult] = field(default_factory=list)
    elapsed_s: float = 0.0
    # Documents retired because their file is gone (ingest_path(retire_missing=True)).
    retired: list[str] = field(default_factory=list)

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
        if self.retired:
            parts.append(f"{len(self.retired)} documents retired (file gone)")
        return (
            f"{len(self.results)} files: " + ", ".join(parts)
            + f"; {self.chunks_written} chunks written in {self.elapsed_s:.1f} s"
        )


def build_parts(settings: IngestSettings) -> tuple[str, ...]:
    """Everything besides a file's bytes and manifest entry that shapes its chunks, and
    the collection (version ids key the catalog, which several collections share)."""
    return (PIPELINE_VERSION, settings.collection, str(settings.chunk_chars),
            str(settings.chunk_overlap_chars), settings.embedding_model)


def point_id(version: str, index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"medcite:{version}:{index}"))


def chunks_present(client: QdrantClient, collection: str, version: str) -> int:
    flt = models.Filter(must=[match("version_id", version)])
    return client.count(collection, count_filter=flt, exact=True).count


def delete_versions(client: QdrantClient, collection: str, versions: list[str]) -> None:
    if versions:
        flt = models.Filter(must=[models.FieldCondition(
            key="version_id", match=models.MatchAny(any=versions))])
        client.delete(collection, points_selector=models.FilterSelector(filter=flt), wait=True)


def payload(
    doc: ParsedDocument, source: SourceFile, chunk: Chunk, version: str, total: int, now: str
) -> dict[str, object]:
    return ChunkPayload(
        text=chunk.text,
        doc_id=doc.doc_id,
        doc_key=source.doc_key,
        version_id=version,
        title=doc.title,
        source_file=source.relpath,
        doc_type=doc.doc_type.value,
        section_path=list(chunk.section.path),
        page=chunk.section.page,
        char_start=chunk.start,
        char_end=chunk.end,
        effective_date=source.effective_date or doc.effective_date,
        version=doc.version,
        payer=source.payer,
        access_groups=list(source.access_groups),
        doc_chunks=total,
        chunk_index=chunk.index,
        is_table=chunk.section.is_table,
        unit_kind=chunk.kind,
        section_code=chunk.section.code,
        drugs=list(chunk.record.drugs) if chunk.record else chunk_drugs(doc, chunk),
        applies_to=list(chunk.applies_to),
        status=chunk.record.status if chunk.record else None,
        flags=list(chunk.record.flags) if chunk.record else note_flags(chunk),
        ingested_at=now,
        metadata=doc.metadata,
    ).write()


def chunk_drugs(doc: ParsedDocument, chunk: Chunk) -> list[str]:
    """The drugs a chunk is about: those it names; those its own headings name (a payer's
    "Criteria > Dextromethorphan/Bupropion (Auvelity) > Additional Criteria" is about
    those drugs, though its bullets name only the ones that must be tried first),
    brands in parentheses after their ingredients included; for a drug label the
    label's own (its title names them; a dosing paragraph often says only "the
    tablets"); for a formulary's criteria written per status or flag, the drugs of the
    rows they cover."""
    own = doc.title if doc.doc_type == DocType.label else ""
    # The two innermost headings below the document's title: the outer ones name the
    # chapter ("Central Nervous System Agents"), which is about every drug in it.
    headings = "\n".join(chunk.section.path[1:][-2:])
    named = drug_names(f"{own}\n{headings}\n{chunk.text}")
    extra = branded_products(f"{headings}\n{chunk.text}") + list(chunk.applies_to)
    return named + [d for d in dict.fromkeys(extra) if d not in named]


def note_flags(chunk: Chunk) -> list[str]:
    """A payer's note on a flag ("QL: All colchicine products", ingest/parsers/markdown.py)
    carries that flag, typed like a row's."""
    flag = note_flag(chunk.section.path[-1]) if chunk.section.path else None
    return [flag] if flag else []


def sparse_vector(text: str) -> models.SparseVector:
    vec = encode_document(text)
    return models.SparseVector(indices=vec.indices, values=vec.values)


def write_chunks(
    client: QdrantClient,
    collection: str,
    embedder: Embedder,
    doc: ParsedDocument,
    source: SourceFile,
    chunks: list[Chunk],
    version: str,
    progress: Callable[[float], None] | None,
    batch_size: int,
    vectors: np.ndarray | None = None,
) -> None:
    """Embed (unless `vectors` were computed with other documents' chunks) and upsert a
    version's chunks, `batch_size` at a time."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        texts = [embedding_text(doc, c) for c in batch]
        dense = (vectors[start : start + len(batch)] if vectors is not None
                 else embedder.embed(texts))
        # The words a window points back at are its predecessor's, which the lexical
        # arm already matches: only the dense vector reads them (chunking.antecedent).
        lexical = [embedding_text(doc, c, antecedent=False) if c.antecedent else texts[i]
                   for i, c in enumerate(batch)]
        points = [
            models.PointStruct(
                id=point_id(version, c.index),
                vector={DENSE: dense[i].tolist(), SPARSE: sparse_vector(lexical[i])},
                payload=payload(doc, source, c, version, len(chunks), now),
            )
            for i, c in enumerate(batch)
        ]
        for i in range(0, len(points), UPSERT_BATCH):
            client.upsert(collection, points=points[i : i + UPSERT_BATCH], wait=True)
        if progress:
            progress(min(1.0, (start + len(batch)) / len(chunks)))


@dataclass
class Planned:
    """A file that needs (re)building, with what was learnt while planning it."""

    source: SourceFile
    version: str
    content: str  # sha256 of the bytes


@dataclass
class Prepared:
    """A parsed version cut into chunks, ready to embed and store."""

    planned: Planned
    doc: ParsedDocument
    chunks: list[Chunk]

    def texts(self) -> list[str]:
        return [embedding_text(self.doc, c) for c in self.chunks]


@dataclass
class Ingestor:
    """Writes versions into one collection and publishes them in the catalog."""

    client: QdrantClient
    catalog: Catalog
    embedder: Embedder
    settings: IngestSettings
    _stored: dict[str, int] | None = field(default=None, repr=False)

    @property
    def collection(self) -> str:
        return self.settings.collection

    def stored_chunks(self, version: str) -> int:
        """Chunks stored for `version`. A Qdrant server counts with its payload index;
        the embedded engine scans every point per count, so there one scan per run
        counts them all."""
        if self.settings.qdrant_url:
            return chunks_present(self.client, self.collection, version)
        if self._stored is None:
            counts: dict[str, int] = {}
            offset = None
            while True:
                points, offset = self.client.scroll(
                    self.collection, limit=2048, offset=offset, with_payload=["version_id"])
                for point in points:
                    vid = str((point.payload or {}).get("version_id"))
                    counts[vid] = counts.get(vid, 0) + 1
                if offset is None:
                    break
            self._stored = counts
        return self._stored.get(version, 0)

    def plan(
        self, source: SourceFile, seen: dict[tuple[str, str | None], str]
    ) -> Planned | FileResult:
        result = FileResult(relpath=source.relpath, status="failed", doc_key=source.doc_key)
        if source.doc_type is DocType.patient:
            result.status, result.reason = "not_indexed", "patient bundle: context for /ask only"
            return result
        try:
            size = source.path.stat().st_size
            if size > self.settings.max_file_bytes:
                result.reason = (f"file is {size} bytes, over the limit of "
                                 f"{self.settings.max_file_bytes} (MEDCITE_MAX_FILE_BYTES)")
                return result
            data = source.path.read_bytes()
        except OSError as exc:
            result.reason = f"cannot read file: {exc.strerror or exc}"
            return result
        digest = content_hash(data)
        # Two different files claiming to be the same version of one document: refuse
        # the second rather than let the run's order decide which one is in force.
        claim = (source.doc_key, source.effective_date)
        if claim in seen and seen[claim] != digest:
            result.reason = (f"another file in this run is also {source.doc_key} effective "
                             f"{source.effective_date or '(undated)'}; give one of them its "
                             "own doc_key or effective_date in the manifest")
            return result
        seen[claim] = digest
        vid = version_id(source, data, build_parts(self.settings))
        existing = self.catalog.version(vid)
        if existing is not None and existing["state"] == "committed" and \
                self.stored_chunks(vid) == existing["chunks"]:
            result.status, result.version = "unchanged", existing["number"]
            return result
        same = self.catalog.committed_with_content(self.collection, source.doc_key, digest)
        if same is not None and same["effective_date"] != source.effective_date:
            result.status, result.version = "unchanged", same["number"]
            result.reason = (f"same content as version {same['number']} "
                             f"(effective {same['effective_date'] or 'undated'})")
            return result
        return Planned(source, vid, digest)

    def prepare(self, planned: Planned, doc: ParsedDocument) -> Prepared | FileResult:
        """Chunk a parsed version; nothing is written yet."""
        source = planned.source
        chunks = chunk_document(doc, self.settings.chunk_chars, self.settings.chunk_overlap_chars,
                                payer=source.payer, effective_date=source.effective_date)
        if not chunks:
            return FileResult(relpath=source.relpath, status="failed", doc_id=doc.doc_id,
                              doc_key=source.doc_key, reason="no text could be extracted")
        return Prepared(planned, doc, chunks)

    def write(
        self, planned: Planned, doc: ParsedDocument, progress: Progress | None = None
    ) -> FileResult:
        prepared = self.prepare(planned, doc)
        if isinstance(prepared, FileResult):
            return prepared
        return self.store(prepared, None, progress)

    def store(
        self, prepared: Prepared, vectors: np.ndarray | None, progress: Progress | None = None
    ) -> FileResult:
        """Write a prepared version's chunks invisibly, check they are all there, then
        publish it in one catalog transaction."""
        planned, doc, chunks = prepared.planned, prepared.doc, prepared.chunks
        source = planned.source
        result = FileResult(relpath=source.relpath, status="failed", doc_id=doc.doc_id,
                            doc_key=source.doc_key)
        snapshot = Snapshot(doc.title, [(s.path, s.text, s.is_table) for s in doc.sections])
        new = NewVersion(
            version_id=planned.version, doc_key=source.doc_key, title=doc.title,
            doc_type=doc.doc_type.value, payer=source.payer,
            access_groups=source.access_groups, source_file=source.relpath,
            effective_date=source.effective_date or doc.effective_date,
            content_hash=planned.content,
        )
        abandoned = self.catalog.begin(self.collection, new, pack_snapshot(snapshot))
        delete_versions(self.client, self.collection, abandoned)
        write_chunks(
            self.client, self.collection, self.embedder, doc, source, chunks, planned.version,
            (lambda f: progress(source.relpath, f)) if progress else None,
            self.settings.ingest_write_batch, vectors,
        )
        # By id, not by a filtered count: the embedded engine answers ids from a map
        # but scans every point for a count.
        ids = [point_id(planned.version, c.index) for c in chunks]
        present = sum(len(self.client.retrieve(self.collection, ids=ids[i : i + 1000],
                                               with_payload=False, with_vectors=False))
                      for i in range(0, len(ids), 1000))
        if present != len(chunks):
            result.reason = f"only {present} of {len(chunks)} chunks were stored"
            return result
        committed = self.catalog.commit(self.collection, new, len(chunks))
        # The replaced build's chunks stay until the next run's clean-up, for queries
        # that started before this commit.
        result.status, result.chunks = "ingested", len(chunks)
        result.version, result.previous_version = committed.number, committed.previous
        if committed.previous is not None and committed.previous != committed.number:
            result.changes = self.changes(source.doc_key, committed.previous, committed.number)
        return result

    def changes(self, doc_key: str, before: int, after: int) -> str | None:
        old = self.catalog.by_number(self.collection, doc_key, before)
        new = self.catalog.by_number(self.collection, doc_key, after)
        if old is None or new is None:
            return None
        return diff_snapshots(
            doc_key, self.catalog.snapshot(old["version_id"]),
            self.catalog.snapshot(new["version_id"]), from_version=before, to_version=after,
        ).summary

    def collect_garbage(self) -> int:
        before = (datetime.now(UTC) - STALE_AFTER).isoformat(timespec="seconds")
        stale = self.catalog.stale_versions(self.collection, before)
        delete_versions(self.client, self.collection, stale)
        self.catalog.forget(stale)
        # Chunks written before documents had versions are never retrieved again.
        legacy = models.Filter(must=[models.IsEmptyCondition(
            is_empty=models.PayloadField(key="version_id"))])
        self.client.delete(self.collection, wait=True,
                           points_selector=models.FilterSelector(filter=legacy))
        return len(stale)


# Parsing is fast next to embedding for small text files; a parser process costs a
# second or two to spawn, worth it only when there is real parsing to overlap.
PARALLEL_PARSE_BYTES = 4_000_000


def _workers(requested: int, plans: list[Planned]) -> int:
    if requested:
        return requested
    size = sum(p.source.path.stat().st_size for p in plans if p.source.path.exists())
    if size < PARALLEL_PARSE_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, len(plans) // 4))


def _parsed(
    plans: list[Planned], max_bytes: int, workers: int
) -> Iterator[tuple[Planned, ParsedDocument | Exception]]:
    """Parse in `workers` processes, yielding in plan order (versions of one document
    must be published oldest first), at most a few documents ahead of the writer."""
    if workers <= 1:
        for plan in plans:
            try:
                yield plan, parse_file(plan.source, max_bytes)
            except Exception as exc:  # noqa: BLE001 - reported per file
                yield plan, exc
        return
    # spawn: the parent has torch's thread pools, which do not survive fork.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        window: deque[tuple[Planned, Future[ParsedDocument]]] = deque()
        pending = iter(plans)
        for plan in pending:
            window.append((plan, pool.submit(parse_file, plan.source, max_bytes)))
            if len(window) >= workers * 3:
                break
        while window:
            plan, future = window.popleft()
            try:
                outcome: ParsedDocument | Exception = future.result()
            except Exception as exc:  # noqa: BLE001 - reported per file
                outcome = exc
            nxt = next(pending, None)
            if nxt is not None:
                window.append((nxt, pool.submit(parse_file, nxt.source, max_bytes)))
            yield plan, outcome


def _reason(exc: Exception) -> str:
    if isinstance(exc, ParseError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def _guarded(plan: Planned, step: Callable[[], T]) -> T | FileResult:
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the rest
        log.exception("ingest of %s failed", plan.source.relpath)
        return FileResult(plan.source.relpath, "failed", doc_key=plan.source.doc_key,
                          reason=_reason(exc))


def _store_window(
    ingestor: Ingestor, window: list[Prepared], progress: Progress | None
) -> list[FileResult]:
    """Embed a window of documents in one call, then store and publish each in order.
    A lone document (possibly larger than a window) is embedded batch by batch as it is
    written, which bounds memory."""
    if not window:
        return []
    vectors: list[np.ndarray | None] = [None] * len(window)
    if len(window) > 1:
        try:
            dense = ingestor.embedder.embed([t for p in window for t in p.texts()])
        except Exception:  # noqa: BLE001 - retried document by document below
            log.exception("embedding a window of %d documents failed", len(window))
        else:
            offsets = np.cumsum([0] + [len(p.chunks) for p in window])
            vectors = [dense[offsets[i] : offsets[i + 1]] for i in range(len(window))]
    return [
        _guarded(p.planned, lambda: ingestor.store(p, v, progress))  # noqa: B023
        for p, v in zip(window, vectors, strict=True)
    ]


def ingest_sources(
    sources: list[SourceFile],
    ingestor: Ingestor,
    *,
    progress: bool = True,
    on_progress: Progress | None = None,
    workers: int | None = None,
) -> IngestReport:
    started = time.perf_counter()
    settings = ingestor.settings
    ensure_collection(ingestor.client, settings.collection, ingestor.embedder.dim,
                      quantize=settings.vector_quantization)
    ingestor.collect_garbage()
    ingestor._stored = None  # counted afresh for this run
    report = IngestReport()
    # Oldest version first, so a run holding several versions of one document
    # publishes them in order and the newest ends up in force.
    ordered = sorted(sources, key=lambda s: (s.doc_key, s.effective_date or "", s.relpath))
    seen: dict[tuple[str, str | None], str] = {}
    plans: list[Planned] = []
    for source in ordered:
        try:
            planned = ingestor.plan(source, seen)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the rest
            log.exception("planning %s failed", source.relpath)
            planned = FileResult(source.relpath, "failed", doc_key=source.doc_key,
                                 reason=_reason(exc))
        if isinstance(planned, Planned):
            plans.append(planned)
        else:
            report.results.append(planned)
    n_workers = _workers(workers if workers is not None else settings.ingest_workers, plans)
    bar = tqdm(total=len(plans), desc="ingest", unit="file", disable=not progress)

    def done(result: FileResult) -> None:
        if result.status == "failed":
            bar.write(f"FAILED {result.relpath}: {result.reason}")
        elif result.changes:
            bar.write(f"{result.doc_key} v{result.previous_version} → v{result.version}: "
                      f"{result.changes}")
        report.results.append(result)
        bar.update(1)

    # Small documents are embedded together: one encode call over many documents' chunks
    # runs about twice as fast on CPU as one call per document. Each document is still
    # stored and published on its own.
    window: list[Prepared] = []
    pooled = 0

    def flush() -> None:
        nonlocal window, pooled
        for result in _store_window(ingestor, window, on_progress):
            done(result)
        window, pooled = [], 0

    for plan, outcome in _parsed(plans, settings.max_file_bytes, n_workers):
        bar.set_postfix_str(plan.source.path.name[:40])
        if isinstance(outcome, Exception):
            done(FileResult(plan.source.relpath, "failed", doc_key=plan.source.doc_key,
                            reason=_reason(outcome)))
            continue
        prepared = _guarded(plan, lambda: ingestor.prepare(plan, outcome))  # noqa: B023
        if isinstance(prepared, FileResult):
            done(prepared)
            continue
        if len(prepared.chunks) >= settings.ingest_write_batch:
            flush()  # a large document goes alone, embedded batch by batch as written
        window.append(prepared)
        pooled += len(prepared.chunks)
        if pooled >= settings.ingest_write_batch:
            flush()
    flush()
    bar.close()
    report.results.sort(key=lambda r: r.relpath)
    report.elapsed_s = time.perf_counter() - started
    return report


def shard_of(doc_key: str, shards: int) -> int:
    """Stable shard of a document, so each of several workers owns whole documents."""
    return int(hashlib.sha256(doc_key.encode()).hexdigest(), 16) % shards


def ingest_path(
    root: Path,
    settings: IngestSettings,
    *,
    client: QdrantClient | None = None,
    embedder: Embedder | None = None,
    catalog: Catalog | None = None,
    access_groups: tuple[str, ...] | None = None,
    progress: bool = True,
    workers: int | None = None,
    shard: tuple[int, int] | None = None,
    retire_missing: bool = False,
    retired_by: str = "ingest",
) -> IngestReport:
    """Ingest every file under `root`. With `retire_missing`, the folder is the whole
    truth: published documents (of this shard) whose file is no longer there are
    retired, their history kept for as-of queries."""
    embedder = embedder or Embedder(
        settings.embedding_model, settings.embedding_device, settings.embedding_batch_size
    )
    own_client, own_catalog = client is None, catalog is None
    client = client or open_client(settings)
    catalog = catalog or Catalog(settings.catalog_url)
    try:
        sources = discover(root, access_groups=access_groups)
        if shard is not None:
            index, count = shard
            sources = [s for s in sources if shard_of(s.doc_key, count) == index]
        ingestor = Ingestor(client, catalog, embedder, settings)
        report = ingest_sources(sources, ingestor, progress=progress, workers=workers)
        if retire_missing:
            present = {s.doc_key for s in sources}
            for doc in catalog.documents(settings.collection):
                if doc.doc_key in present or (
                        shard is not None and shard_of(doc.doc_key, shard[1]) != shard[0]):
                    continue
                catalog.retire(settings.collection, doc.doc_key, by=retired_by,
                               reason=f"its file is no longer under {root}")
                report.retired.append(doc.doc_key)
        # The edge engine indexes (HNSW) and persists what the run wrote.
        settle(client)
        return report
    finally:
        if own_client:
            client.close()
        if own_catalog:
            catalog.close()
