"""A small job queue for uploads: one worker thread inside the API process.

The embedded Qdrant admits one process, so an upload is ingested by the process that
serves queries, through the same client; the version swap makes that safe. Jobs run one
at a time (embedding saturates the CPU anyway); their state lives in memory and their
outcome in the catalog and the audit log.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ingest.models import IngestJob, SourceFile
from ingest.pipeline import FileResult, Ingestor, ingest_sources

log = logging.getLogger(__name__)

@dataclass
class _Work:
    job: IngestJob
    source: SourceFile
    on_done: Callable[[IngestJob], None] | None


class IngestJobs:
    def __init__(self, ingestor: Ingestor, max_jobs: int = 500) -> None:
        self.ingestor = ingestor
        self._jobs: dict[str, IngestJob] = {}
        self._order: list[str] = []
        self._max = max_jobs
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Work | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ingest-jobs", daemon=True)
        self._thread.start()

    def submit(
        self, source: SourceFile, *, submitted_by: str,
        on_done: Callable[[IngestJob], None] | None = None,
    ) -> IngestJob:
        job = IngestJob(job_id=uuid.uuid4().hex, status="queued", filename=source.path.name,
                        doc_key=source.doc_key, submitted_by=submitted_by)
        with self._lock:
            self._jobs[job.job_id] = job
            self._order.append(job.job_id)
            while len(self._order) > self._max:
                self._jobs.pop(self._order.pop(0), None)
        self._queue.put(_Work(job, source, on_done))
        return job.model_copy()

    def get(self, job_id: str) -> IngestJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.model_copy() if job else None

    def wait(self, job_id: str, timeout_s: float) -> IngestJob | None:
        """For tests and the CLI: poll until the job ends or the time is up."""
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job is None or job.status in ("done", "failed"):
                return job
            time.sleep(0.1)
        return self.get(job_id)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _update(self, job_id: str, **changes: object) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                for key, value in changes.items():
                    setattr(job, key, value)

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            job_id = work.job.job_id
            self._update(job_id, status="running", progress=0.05)
            try:
                report = ingest_sources(
                    [work.source], self.ingestor, progress=False, workers=1,
                    on_progress=lambda _rel, f, j=job_id: self._update(j, progress=0.1 + 0.85 * f),
                )
                result = report.results[0] if report.results else FileResult(
                    work.source.relpath, "failed", reason="nothing was ingested")
            except Exception as exc:  # noqa: BLE001 - a job failure is the job's outcome
                log.exception("ingest job %s failed", job_id)
                result = FileResult(work.source.relpath, "failed",
                                    reason=f"internal error: {type(exc).__name__}")
            self._update(
                job_id,
                status="failed" if result.status == "failed" else "done",
                version=result.version, previous_version=result.previous_version,
                chunks=result.chunks, changes=result.changes, progress=1.0,
                reason=result.reason if result.status != "ingested" else None,
            )
            if work.on_done is not None:
                final = self.get(job_id)
                if final is not None:
                    try:
                        work.on_done(final)
                    except Exception:  # noqa: BLE001 - never kill the worker thread
                        log.exception("ingest job %s: completion hook failed", job_id)
