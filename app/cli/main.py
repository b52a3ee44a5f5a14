"""`medcite`: the command line. Each command group is its own module with a
`register(sub)` that adds its parsers; this module only assembles them."""

from __future__ import annotations

import argparse
import os
import sys

from app.cli import (
    ask,
    audit,
    backup,
    documents,
    evaluate,
    ingest,
    keys,
    local_llm,
    review,
    serve,
)
from app.core.settings import get_settings

# Set before any library that may try to reach a hub or phone home is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

COMMANDS = (ingest, serve, ask, keys, evaluate, local_llm, audit, documents, backup, review)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medcite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from app.audit.models import AuditUnavailable

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, get_settings()))
    except AuditUnavailable as exc:
        print(f"audit log unavailable, so nothing more was done: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
