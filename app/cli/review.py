"""`medcite review export OUT.jsonl`: reviewers' labelled answers as evaluation questions
(the format of eval/corpora_questions.jsonl, read by app/evaluation/datasets.py's
load_corpora_questions), so the answer evaluation can run on what real users asked. The
export is recorded in the audit chain: it copies users' questions out of the service."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.audit.models import AuditAction, AuditUnavailable, ReviewExportDetails
from app.audit.records import open_log, operator
from app.core.settings import Settings


def cmd_review(args: argparse.Namespace, settings: Settings) -> int:
    from app.operations.answers import export_labelled

    out = Path(args.out)
    try:
        log = open_log(settings)
    except AuditUnavailable as exc:
        print(f"audit log: {exc}", file=sys.stderr)
        return 2
    try:
        result = export_labelled(log, out)
        log.append(AuditAction.review_export, operator(), ReviewExportDetails(
            path=str(out), exported=result.exported, skipped=sum(result.skipped.values())))
    finally:
        log.close()
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items()))
    print(f"wrote {result.exported} question(s) to {out}"
          + (f"; skipped {skipped}" if skipped else ""))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("review", help="the review queue's labelled answers")
    actions = p.add_subparsers(dest="review_action", required=True)
    ex = actions.add_parser("export", help="write labelled answers as evaluation questions "
                            "(JSON lines, eval/corpora_questions.jsonl's format)")
    ex.add_argument("out", help="the .jsonl file to write")
    p.set_defaults(func=cmd_review)
