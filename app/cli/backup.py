"""`medcite backup OUT` and `medcite restore ARCHIVE` (app/operations/backup.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.audit.models import AuditAction, AuditUnavailable, BackupDetails, RestoreDetails
from app.audit.records import open_log, operator
from app.core.settings import Settings


def _record(settings: Settings, action: AuditAction,
            details: BackupDetails | RestoreDetails) -> bool:
    """The operator's backup or restore, appended to the data folder's audit log; False
    (said on stderr) when it could not be."""
    try:
        log = open_log(settings)
        try:
            log.append(action, operator(), details)
        finally:
            log.close()
    except AuditUnavailable as exc:
        print(f"the audit log could not record this {action.value}: {exc}", file=sys.stderr)
        return False
    return True


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from app.operations.backup import BackupError, create_backup
    from retrieval.store import StoreUnavailable

    try:
        report = create_backup(settings, Path(args.out))
    except (BackupError, StoreUnavailable) as exc:
        print(f"backup failed, no archive written: {exc}", file=sys.stderr)
        if isinstance(exc, StoreUnavailable):
            print("While the API holds the store, have it take the backup: POST /backup "
                  "with an admin key (curl -X POST -H \"Authorization: Bearer $ADMIN_KEY\" "
                  f"{settings.api_url}/backup); the archive is written under "
                  f"{settings.data_dir / 'backups'}", file=sys.stderr)
        return 1
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    audit = f", audit log of {report.audit_records} records" \
        if report.audit_records is not None else ""
    print(f"wrote {report.path}: {len(report.parts)} parts{audit}, "
          f"{report.archive_bytes / 1e6:.1f} MB in {report.seconds:.1f} s")
    recorded = _record(settings, AuditAction.backup, BackupDetails(
        path=str(report.path.resolve()), parts=len(report.parts),
        archive_bytes=report.archive_bytes, audit_records=report.audit_records))
    return 0 if recorded else 1


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from app.operations.backup import RestoreRefused, restore_backup

    if args.data_dir:
        settings = settings.isolated(Path(args.data_dir).resolve(),
                                     corpora_dir=settings.corpora_dir)
    try:
        report = restore_backup(Path(args.archive), settings, force=args.force)
    except RestoreRefused as exc:
        print(f"restore refused, nothing was changed: {exc}", file=sys.stderr)
        return 1
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"restored {len(report.parts)} parts into {report.data_dir}"
          + (f"; what they replaced is in {report.set_aside}" if report.set_aside else ""))
    # Recorded in the restored log: its chain then says when and from what it came back.
    recorded = _record(settings, AuditAction.restore, RestoreDetails(
        archive=str(Path(args.archive).resolve()), parts=len(report.parts),
        audit_records=report.audit_records,
        set_aside=str(report.set_aside) if report.set_aside else None))
    print("next: `medcite audit verify`, then start the API")
    return 0 if recorded else 1


def register(sub: Any) -> None:
    b = sub.add_parser("backup", help="write one archive of the store, catalog, audit log "
                                      "and keys (safe while the API serves)")
    b.add_argument("out", help="the archive to write, e.g. medcite-2025-01-31.tar.gz")
    b.set_defaults(func=cmd_backup)
    r = sub.add_parser("restore", help="restore a `medcite backup` archive into a data folder "
                                       "(refused if any part or the audit chain fails to verify)")
    r.add_argument("archive")
    r.add_argument("--data-dir", help="restore here (embedded store, SQLite databases) "
                                      "instead of MEDCITE_DATA_DIR")
    r.add_argument("--force", action="store_true",
                   help="replace a data folder that holds data (kept under .pre-restore-*/)")
    r.set_defaults(func=cmd_restore)
