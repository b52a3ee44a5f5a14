"""The document-management API's bodies as the UI reads them (the API's contract).

Kept on the UI side, tolerant of fields it does not know, so a newer API does not break
an older page; `app.answering.models` and `app.audit.models` cover /ask, /me and /audit.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# "scheduled": effective later than today; "replaced": an earlier build of the same bytes.
VersionStatus = Literal["current", "superseded", "retired", "pending", "scheduled", "replaced"]
JobStatus = Literal["queued", "running", "done", "failed"]


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore")


class VersionInfo(_Tolerant):
    doc_key: str
    version: int | None = None  # None while the version is still pending (being ingested)
    version_id: str
    title: str
    doc_type: str | None = None
    payer: str | None = None
    source_file: str
    effective_date: str | None = None
    ingested_at: str
    chunks: int
    content_hash: str
    status: VersionStatus


class DocumentInfo(_Tolerant):
    doc_key: str
    title: str
    doc_type: str
    payer: str | None = None
    access_groups: list[str] = Field(default_factory=list)
    retired_on: str | None = None  # the day it stops being retrieved (YYYY-MM-DD)
    retired_at: str | None = None  # when the retirement was recorded
    retired_by: str | None = None
    retired_reason: str | None = None
    versions: int
    current: VersionInfo | None = None

    @property
    def retired(self) -> bool:
        return self.retired_on is not None or self.retired_at is not None


class RowChange(_Tolerant):
    change: Literal["added", "removed", "changed", "status_changed"]
    table: str
    key: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    details: list[str] = Field(default_factory=list)


class SectionChange(_Tolerant):
    change: Literal["added", "removed", "changed"]
    path: list[str] = Field(default_factory=list)
    before: str | None = None
    after: str | None = None


class DocumentDiff(_Tolerant):
    doc_key: str
    from_version: int | None = None
    to_version: int
    from_effective_date: str | None = None
    to_effective_date: str | None = None
    summary: str
    rows: list[RowChange] = Field(default_factory=list)
    sections: list[SectionChange] = Field(default_factory=list)


class IngestJob(_Tolerant):
    job_id: str
    status: JobStatus
    filename: str
    doc_key: str | None = None
    version: int | None = None
    previous_version: int | None = None
    chunks: int = 0
    reason: str | None = None
    changes: str | None = None  # one line, e.g. "rows: 1 added, 2 changed"
    progress: float = 0.0
    submitted_by: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")
