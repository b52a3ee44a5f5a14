"""`medcite documents | versions | diff | retire`: the catalog from the command line.

These read and write the document catalog only (never the embedded Qdrant folder), so
they work while `medcite serve` is running; a retirement takes effect on the API's next
query.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

from app.core.settings import Settings
from ingest.catalog import Catalog
from ingest.diff import DocumentDiff
from ingest.versions_service import DiffError, diff_versions


def _catalog(settings: Settings) -> Catalog:
    return Catalog(settings.catalog_url)


def cmd_documents(args: argparse.Namespace, settings: Settings) -> int:
    catalog = _catalog(settings)
    try:
        docs = catalog.documents(settings.collection, include_retired=args.all)
    finally:
        catalog.close()
    if args.json:
        print(json.dumps([d.model_dump() for d in docs], indent=2))
        return 0
    for d in docs:
        cur = d.current
        now = (f"v{cur.version} effective {cur.effective_date or 'undated'}" if cur
               else "no version in force")
        retired = f"  RETIRED {d.retired_on}" if d.retired_on else ""
        print(f"{d.doc_key:55} {d.doc_type:10} {d.versions:>2} versions, {now}{retired}")
    print(f"{len(docs)} documents")
    return 0


def cmd_versions(args: argparse.Namespace, settings: Settings) -> int:
    catalog = _catalog(settings)
    try:
        versions = catalog.versions(settings.collection, args.doc_key)
    finally:
        catalog.close()
    if not versions:
        print(f"no document {args.doc_key!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([v.model_dump() for v in versions], indent=2))
        return 0
    for v in versions:
        number = f"v{v.version}" if v.version else "-"
        print(f"{number:>4} {v.status:10} effective {v.effective_date or 'undated':10} "
              f"ingested {v.ingested_at}  {v.chunks:>4} chunks  {v.source_file}")
    return 0


def format_diff(diff: DocumentDiff) -> str:
    head = (f"{diff.doc_key}: v{diff.from_version or '-'} "
            f"({diff.from_effective_date or 'undated'}) → v{diff.to_version} "
            f"({diff.to_effective_date or 'undated'})")
    lines = [head, diff.summary]
    marks = {"added": "+", "removed": "-", "changed": "~", "status_changed": "!"}
    for row in diff.rows:
        lines.append(f"  {marks[row.change]} [{row.table}] {row.key}: {'; '.join(row.details)}")
    for sec in diff.sections:
        lines.append(f"  {marks[sec.change]} section {' › '.join(sec.path)} ({sec.change})")
    return "\n".join(lines)


def cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    catalog = _catalog(settings)
    try:
        diff = diff_versions(catalog, settings.collection, args.doc_key,
                             args.from_version, args.to_version)
    except DiffError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        catalog.close()
    print(diff.model_dump_json(indent=2) if args.json else format_diff(diff))
    return 0


def cmd_retire(args: argparse.Namespace, settings: Settings) -> int:
    from app.audit import records as audit_records
    from app.audit.models import AuditAction, RetireDetails

    audit_records.ensure_available(settings)
    catalog = _catalog(settings)
    try:
        if catalog.document(settings.collection, args.doc_key) is None:
            print(f"no document {args.doc_key!r}", file=sys.stderr)
            return 1
        audit_records.record(settings, AuditAction.retire,
                         RetireDetails(doc_key=args.doc_key, reason=args.reason or None))
        catalog.retire(settings.collection, args.doc_key, by=audit_records.operator().name,
                       reason=args.reason, on=args.on)
    finally:
        catalog.close()
    print(f"retired {args.doc_key}; its versions stay queryable with as_of before "
          f"{(args.on or date.today()).isoformat()}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("documents", help="list documents and the version in force today")
    p.add_argument("--all", action="store_true", help="include retired documents")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_documents)

    p = sub.add_parser("versions", help="version history of one document")
    p.add_argument("doc_key", help="e.g. ohio-medicaid:lipotropics (see `medcite documents`)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_versions)

    p = sub.add_parser("diff", help="what changed between two versions of a document")
    p.add_argument("doc_key")
    p.add_argument("--from", dest="from_version", type=int, help="default: the previous one")
    p.add_argument("--to", dest="to_version", type=int, help="default: the current one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("retire", help="stop retrieving a document (history is kept)")
    p.add_argument("doc_key")
    p.add_argument("--reason", default="")
    p.add_argument("--on", type=date.fromisoformat, help="from this date (default: today)")
    p.set_defaults(func=cmd_retire)
