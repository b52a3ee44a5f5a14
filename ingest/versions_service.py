"""Diffs between published versions, by version number (shared by the CLI and the API)."""

from __future__ import annotations

from ingest.catalog import Catalog
from ingest.diff import DocumentDiff, diff_snapshots


class DiffError(LookupError):
    pass


def diff_versions(
    catalog: Catalog, collection: str, doc_key: str,
    from_version: int | None = None, to_version: int | None = None,
) -> DocumentDiff:
    """`to` defaults to the version in force today (else the newest); `from` to the
    version before `to` in effective-date order. A first version diffs against nothing."""
    published = [v for v in catalog.versions(collection, doc_key)
                 if v.status not in ("pending", "replaced") and v.version is not None]
    if not published:
        raise DiffError(f"{doc_key!r} has no published versions")
    by_number = {v.version: v for v in published}
    if to_version is None:
        current = next((v for v in published if v.status == "current"), published[0])
        to_version = current.version
    if to_version not in by_number:
        raise DiffError(f"{doc_key!r} has no version {to_version}")
    if from_version is None:
        # `published` is newest first: the one after `to` is the one it followed.
        index = [v.version for v in published].index(to_version)
        from_version = published[index + 1].version if index + 1 < len(published) else None
    if from_version is not None and from_version not in by_number:
        raise DiffError(f"{doc_key!r} has no version {from_version}")
    new = by_number[to_version]
    old = by_number[from_version] if from_version is not None else None
    return diff_snapshots(
        doc_key,
        catalog.snapshot(old.version_id) if old else catalog.snapshot(""),
        catalog.snapshot(new.version_id),
        from_version=from_version, to_version=int(to_version),
        from_effective_date=old.effective_date if old else None,
        to_effective_date=new.effective_date,
    )
