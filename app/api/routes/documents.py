"""Documents and their versions: list, history, diff, upload a new version, retire."""

from __future__ import annotations

import re
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, UploadFile, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool

from app.api.deps import actor_of, get_services, require_role
from app.audit.models import AuditAction, IngestDetails, IngestedFile, RetireDetails
from app.core.container import Services
from app.security.api_keys import Principal, Role
from ingest.catalog import DocumentInfo, VersionInfo
from ingest.diff import DocumentDiff
from ingest.identity import derive_doc_key
from ingest.jobs import IngestJob
from ingest.models import DocType, SourceFile
from ingest.versions_service import DiffError, diff_versions

router = APIRouter(tags=["documents"])

_readers = require_role(Role.clinician, Role.policy_admin, Role.auditor)
_publishers = require_role(Role.policy_admin)
_DOC_KEY = r"^[a-z0-9._-]+:[a-z0-9._-]+$"
_GROUP = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_UPLOAD_TYPES = {DocType.label, DocType.guideline, DocType.formulary, DocType.coverage}
_READ_CHUNK = 1 << 20

DocKey = Annotated[str, PathParam(pattern=_DOC_KEY, max_length=400,
                                  description="e.g. `ohio-medicaid:lipotropics`")]


def _visible(services: Services, principal: Principal, doc_key: str) -> DocumentInfo:
    """The document, if it exists and shares a group with the caller; else 404 (a
    document outside one's groups is not admitted to exist)."""
    doc = services.catalog.document(services.settings.collection, doc_key)
    if doc is None or not _may_see(principal, doc.access_groups):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document {doc_key!r}")
    return doc


def _may_see(principal: Principal, groups: list[str]) -> bool:
    return principal.role is Role.admin or bool(set(groups) & set(principal.groups))


@router.get("/documents", response_model=list[DocumentInfo])
async def list_documents(
    include_retired: bool = Query(False),
    principal: Principal = Depends(_readers),
    services: Services = Depends(get_services),
) -> list[DocumentInfo]:
    """Documents the caller's groups may see, each with the version in force today."""
    groups = None if principal.role is Role.admin else principal.groups
    return await run_in_threadpool(
        services.catalog.documents, services.settings.collection,
        include_retired=include_retired, groups=groups,
    )


@router.get("/documents/{doc_key}/versions", response_model=list[VersionInfo])
async def list_versions(
    doc_key: DocKey,
    principal: Principal = Depends(_readers),
    services: Services = Depends(get_services),
) -> list[VersionInfo]:
    """Every version, newest effective date first, with its status today."""
    await run_in_threadpool(_visible, services, principal, doc_key)
    return await run_in_threadpool(
        services.catalog.versions, services.settings.collection, doc_key)


@router.get("/documents/{doc_key}/diff", response_model=DocumentDiff)
async def get_diff(
    doc_key: DocKey,
    from_version: int | None = Query(None, alias="from", ge=1),
    to_version: int | None = Query(None, alias="to", ge=1),
    principal: Principal = Depends(_readers),
    services: Services = Depends(get_services),
) -> DocumentDiff:
    """What changed between two versions (default: the one before the current → current):
    table rows added, removed or changed (formulary status, prior authorization, quantity
    limits), and text sections added, removed or changed."""
    await run_in_threadpool(_visible, services, principal, doc_key)
    try:
        return await run_in_threadpool(
            diff_versions, services.catalog, services.settings.collection, doc_key,
            from_version, to_version,
        )
    except DiffError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@router.post("/documents/{doc_key}/retire", response_model=DocumentInfo)
async def retire_document(
    doc_key: DocKey,
    reason: str = Form("", max_length=2000),
    principal: Principal = Depends(_publishers),
    services: Services = Depends(get_services),
) -> DocumentInfo:
    """Stop retrieving a document from today. Its versions stay for as-of queries and
    audit; publishing a new version brings it back."""
    await run_in_threadpool(_visible, services, principal, doc_key)
    collection = services.settings.collection
    await run_in_threadpool(services.audit.append, AuditAction.retire, actor_of(principal),
                            RetireDetails(doc_key=doc_key, reason=reason or None), 200)
    await run_in_threadpool(lambda: services.catalog.retire(
        collection, doc_key, by=principal.name, reason=reason))
    return await run_in_threadpool(_visible, services, principal, doc_key)


@router.post("/documents/upload", response_model=IngestJob,
             status_code=status.HTTP_202_ACCEPTED)
async def upload_document(
    file: UploadFile = File(..., description="The document: .md, .xml, .pdf, .json, .html..."),
    doc_type: DocType = Form(...),
    payer: str | None = Form(None, max_length=200),
    effective_date: date | None = Form(None),
    access_groups: str = Form("public", max_length=2000),
    doc_key: str | None = Form(None, pattern=_DOC_KEY, max_length=400),
    principal: Principal = Depends(_publishers),
    services: Services = Depends(get_services),
) -> IngestJob:
    """Queue a new version of a document for ingest; poll `GET /ingest/jobs/{job_id}`.
    The previous version keeps answering until this one is completely written."""
    settings = services.settings
    if doc_type not in _UPLOAD_TYPES:
        allowed = ", ".join(sorted(t.value for t in _UPLOAD_TYPES))
        raise HTTPException(422, f"doc_type must be one of {allowed}")
    groups = tuple(g.strip() for g in access_groups.split(",") if g.strip())
    if not groups or not all(_GROUP.match(g) for g in groups):
        raise HTTPException(422, "access_groups: one or more names of letters, digits, . _ -")
    if principal.role is not Role.admin and not set(groups) <= set(principal.groups):
        # Publishing into a group one is not in would hand its readers a document
        # nobody entitled to that group vetted.
        raise HTTPException(403, "you may only publish to your own access groups")
    name = Path(file.filename or "").name
    if not name or name.startswith("."):
        raise HTTPException(422, "the upload needs a file name with an extension")
    key = doc_key or derive_doc_key(name, doc_type.value, payer)
    existing = services.catalog.document(settings.collection, key)
    if existing is not None and not _may_see(principal, existing.access_groups):
        raise HTTPException(403, f"{key!r} belongs to groups you are not in")
    folder = re.sub(r"[^a-z0-9._-]+", "_", key)
    # Each upload keeps its own copy: a queued job must ingest the bytes it was given.
    dest = settings.data_dir / "uploads" / folder / uuid.uuid4().hex / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    await _save(file, dest, settings.max_file_bytes)
    source = SourceFile(
        path=dest, relpath=f"uploads/{folder}/{name}", doc_type=doc_type,
        access_groups=groups, payer=payer, doc_key=key,
        effective_date=effective_date.isoformat() if effective_date else None,
    )
    actor = actor_of(principal)

    def audit(job: IngestJob) -> None:
        services.audit.append(AuditAction.ingest, actor, IngestDetails(
            path=f"upload:{name}", groups=list(groups), files=1,
            counts={job.status: 1}, chunks_written=job.chunks, elapsed_s=0.0,
            changed=[IngestedFile(relpath=source.relpath, status=job.status,
                                  reason=job.reason, doc_key=key, version=job.version,
                                  changes=job.changes)],
        ), 202)

    return services.jobs.submit(source, submitted_by=principal.name, on_done=audit)


async def _save(file: UploadFile, dest: Path, limit: int) -> None:
    size = 0
    tmp = dest.with_name(dest.name + ".part")
    with tmp.open("wb") as out:
        while chunk := await file.read(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                out.close()
                tmp.unlink(missing_ok=True)
                raise HTTPException(413,
                                    f"file is over the limit of {limit} bytes")
            out.write(chunk)
    if size == 0:
        tmp.unlink(missing_ok=True)
        raise HTTPException(422, "the uploaded file is empty")
    tmp.replace(dest)


@router.get("/ingest/jobs/{job_id}", response_model=IngestJob)
async def get_job(
    job_id: str = PathParam(pattern=r"^[0-9a-f]{32}$"),
    principal: Principal = Depends(_publishers),
    services: Services = Depends(get_services),
) -> IngestJob:
    job = services.jobs.get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such job (jobs are kept in memory)")
    return job
