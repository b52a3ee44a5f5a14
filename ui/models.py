"""The document-management API's bodies, as the UI reads them: the API's own models
(ingest's catalog, diff and job models), with the two conveniences the pages use."""

from __future__ import annotations

from ingest.catalog import DocumentInfo as _DocumentInfo
from ingest.catalog import VersionInfo, VersionStatus
from ingest.diff import DocumentDiff, RowChange, SectionChange
from ingest.models import IngestJob as _IngestJob
from ingest.models import JobStatus

__all__ = ["DocumentDiff", "DocumentInfo", "IngestJob", "JobStatus", "RowChange",
           "SectionChange", "VersionInfo", "VersionStatus"]


class DocumentInfo(_DocumentInfo):
    @property
    def retired(self) -> bool:
        return self.retired_on is not None or self.retired_at is not None


class IngestJob(_IngestJob):
    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")
