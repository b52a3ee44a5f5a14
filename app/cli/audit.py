"""`medcite audit verify | list | purge`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import TYPE_CHECKING, Any

from app.audit.models import AuditAction, AuditRecord, AuditUnavailable
from app.audit.records import open_log, operator
from app.core.settings import Settings

if TYPE_CHECKING:  # SQLAlchemy is imported only by the commands that write or read
    from app.audit.log import AuditLog


def _summary(rec: AuditRecord) -> str:
    d = rec.details
    if d.kind == "ask":
        outcome = "abstained" if d.abstained else (d.answer_status or d.error or "")
        return f"{len(d.passages)} passages, {outcome}"
    if d.kind in ("key_create", "key_revoke"):
        return f"key {d.key_id}"
    if d.kind == "purge":
        return f"{d.purged} purged, chain starts at {d.first_kept_seq}"
    if d.kind == "ingest":
        return f"{d.path}: " + ", ".join(f"{n} {s}" for s, n in sorted(d.counts.items()))
    if d.kind == "access_denied":
        return f"{d.method} {d.path}"
    if d.kind == "audit_query":
        return f"{d.returned} records read"
    if d.kind == "retire":
        return f"retired {d.doc_key}"
    return d.kind


def _parse_anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError("expected SEQ:SHA256, as printed by `audit verify`")
    return int(seq), digest.lower()


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    try:
        log = open_log(settings)
    except AuditUnavailable as exc:
        print(f"audit log at {settings.database_url.split('@')[-1]}: {exc}", file=sys.stderr)
        return 2
    try:
        return {"verify": _verify, "list": _list, "purge": _purge}[args.audit_action](args, log)
    except AuditUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        log.close()


def _verify(args: argparse.Namespace, log: AuditLog) -> int:
    report = log.verify(anchors=dict(args.anchor or []))
    for problem in report.problems:
        print(problem)
    if not report.ok:
        print(f"TAMPERED: {len(report.problems)} problem(s) in {report.records} records",
              file=sys.stderr)
        return 1
    if report.records == 0:
        print("OK: the audit log is empty")
    else:
        print(f"OK: {report.records} records, seq {report.first_seq}..{report.last_seq}; "
              f"head {report.last_seq}:{report.head_hash}")
    return 0


def _list(args: argparse.Namespace, log: AuditLog) -> int:
    from app.audit.log import AuditQuery

    action = AuditAction(args.action) if args.action else None
    page = log.search(AuditQuery(user=args.user, since=args.since, until=args.until,
                                 doc_id=args.doc_id, action=action, limit=args.limit))
    for rec in page.records:
        if args.json:
            print(json.dumps(rec.model_dump(mode="json")))
            continue
        who = rec.actor.name + (f" ({rec.actor.key_id})" if rec.actor.key_id else "")
        status = rec.http_status if rec.http_status is not None else "-"
        print(f"{rec.seq:>7}  {rec.ts:%Y-%m-%d %H:%M:%S}  {rec.action.value:<13} "
              f"{status!s:>3}  {who}  {_summary(rec)}")
    if page.next_cursor and not args.json:
        print("(more: raise --limit, or narrow with --since/--until/--user)")
    return 0


def _purge(args: argparse.Namespace, log: AuditLog) -> int:
    from app.audit.log import AuditTampered

    try:
        rec = log.purge(args.older_than_days, operator())
    except AuditTampered as exc:
        for problem in exc.report.problems:
            print(problem, file=sys.stderr)
        print("refusing to purge a log that does not verify", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    d = rec.details
    assert d.kind == "purge"
    print(f"purged {d.purged} records older than {d.cutoff}; the chain now starts at seq "
          f"{d.first_kept_seq} (purge record {rec.seq})")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="verify, list or purge the audit log")
    actions = p.add_subparsers(dest="audit_action", required=True)
    v = actions.add_parser("verify", help="check the hash chain; exit 1 on tampering")
    v.add_argument("--anchor", action="append", type=_parse_anchor, metavar="SEQ:HASH",
                   help="a head printed by an earlier verify, kept elsewhere (repeatable)")
    ls = actions.add_parser("list", help="print records, newest first")
    ls.add_argument("--user", help="key id or key name")
    ls.add_argument("--since", type=date.fromisoformat, help="first day, YYYY-MM-DD (UTC)")
    ls.add_argument("--until", type=date.fromisoformat, help="last day, inclusive")
    ls.add_argument("--doc-id", help="asks that retrieved this document")
    ls.add_argument("--action", choices=[a.value for a in AuditAction])
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="one JSON record per line")
    pg = actions.add_parser("purge", help="delete records older than N days")
    pg.add_argument("--older-than-days", type=int, required=True)
    p.set_defaults(func=cmd_audit)
