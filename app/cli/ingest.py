"""`medcite ingest`: one typed entry point (`run_ingest`) that `medcite up` calls too."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.settings import Settings


@dataclass(frozen=True)
class IngestOptions:
    """What one ingest run does; `medcite ingest` and `medcite up` both build one, so
    every option the command gains has a default here rather than in hand-made
    Namespaces."""

    path: Path | None = None
    groups: tuple[str, ...] | None = None
    quiet: bool = False
    rebuild: bool = False
    workers: int | None = None
    shard: tuple[int, int] | None = None
    retire_missing: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> IngestOptions:
        groups = tuple(g for g in args.groups.split(",") if g) if args.groups else None
        return cls(path=Path(args.path) if args.path else None, groups=groups,
                   quiet=args.quiet, rebuild=args.rebuild, workers=args.workers,
                   shard=parse_shard(args.shard) if args.shard else None,
                   retire_missing=args.retire_missing)


def parse_shard(text: str) -> tuple[int, int]:
    index, _, total = text.partition("/")
    try:
        shard = (int(index), int(total))
    except ValueError:
        raise ValueError("--shard must be I/N with 0 <= I < N") from None
    if not 0 <= shard[0] < shard[1]:
        raise ValueError("--shard must be I/N with 0 <= I < N")
    return shard


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    try:
        options = IngestOptions.from_args(args)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return run_ingest(options, settings)


def run_ingest(options: IngestOptions, settings: Settings) -> int:
    from retrieval.store import StoreUnavailable

    try:
        return _run_ingest(options, settings)
    except StoreUnavailable as exc:
        # Most often a running `medcite serve` holding the embedded store: say so and
        # what to do (upload through the API, or a Qdrant server), not a traceback.
        print(f"medcite ingest: {exc}. While the API runs, publish new versions through "
              "it (POST /documents/upload, the UI's Documents page).", file=sys.stderr)
        return 2


def _run_ingest(options: IngestOptions, settings: Settings) -> int:
    from app.audit import records as audit_records
    from app.audit.models import AuditAction, RetireDetails
    from ingest.pipeline import ingest_path

    audit_records.ensure_available(settings)

    root = options.path or settings.corpora_dir
    groups = options.groups
    if options.rebuild:
        from ingest.catalog import Catalog
        from retrieval.store import open_client

        client = open_client(settings)
        if client.collection_exists(settings.collection):
            client.delete_collection(settings.collection)
        client.close()
        catalog = Catalog(settings.catalog_url)
        catalog.drop_collection(settings.collection)
        catalog.close()
        print(f"dropped collection {settings.collection!r} and its version history; "
              "re-ingesting everything")
    report = ingest_path(root, settings, access_groups=groups, progress=not options.quiet,
                         workers=options.workers, shard=options.shard,
                         retire_missing=options.retire_missing,
                         retired_by=audit_records.operator().name)
    audit_records.record(settings, AuditAction.ingest,
                     audit_records.ingest_details(str(root), groups, report))
    for doc_key in report.retired:
        audit_records.record(settings, AuditAction.retire, RetireDetails(
            doc_key=doc_key, reason=f"its file is no longer under {root}"))
        print(f"retired {doc_key}: its file is no longer under {root}")
    for r in report.failed:
        print(f"FAILED  {r.relpath}: {r.reason}", file=sys.stderr)
    print(report.summary())
    return 1 if report.failed else 0


def register(sub: Any) -> None:
    p = sub.add_parser("ingest", help="parse, chunk, embed and store documents")
    p.add_argument("path", nargs="?", help="folder or file (default: the bundled corpora)")
    p.add_argument("--groups", help="comma-separated access groups (overrides the manifest)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--rebuild", action="store_true",
                   help="drop the collection first (after a schema or model change)")
    p.add_argument("--workers", type=int,
                   help="parser processes (default MEDCITE_INGEST_WORKERS; 0 = per core)")
    p.add_argument("--retire-missing", action="store_true",
                   help="retire published documents whose file is no longer in the folder "
                        "(their history stays queryable as of earlier dates)")
    p.add_argument("--shard", help="I/N: only the documents of shard I of N, so N workers "
                   "on several machines can share one corpus (Qdrant server + PostgreSQL "
                   "catalog)")
    p.set_defaults(func=cmd_ingest)
