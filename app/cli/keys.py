"""`medcite keys create | list | revoke`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.core.settings import Settings


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from app.audit import records as audit_records
    from app.audit.models import AuditAction, KeyDetails
    from app.security.api_keys import KeyStore, Role

    store = KeyStore(settings.keys_file)
    if args.action in ("create", "revoke"):
        audit_records.ensure_available(settings)
    if args.action == "create":
        before = {k.key_id for k in store.list()}
        raw, key = store.create(args.name, Role(args.role), args.groups.split(","))
        audit_records.record_new_keys(settings, store, before)
        print(f"key id {key.key_id} ({key.role.value}, groups {','.join(key.groups)}):")
        print(raw)
    elif args.action == "revoke":
        if not store.revoke(args.key_id):
            print(f"no active key {args.key_id}", file=sys.stderr)
            return 1
        audit_records.record(settings, AuditAction.key_revoke,
                         KeyDetails(kind="key_revoke", key_id=args.key_id))
        print(f"revoked {args.key_id}")
    else:
        for k in store.list():
            state = "revoked" if k.revoked else "active"
            print(f"{k.key_id}  {k.name:<20} {k.role.value:<13} {','.join(k.groups):<20} {state}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("keys", help="manage API keys")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("--name", default="user")
    p.add_argument("--role", default="clinician")
    p.add_argument("--groups", default="public")
    p.add_argument("--key-id")
    p.set_defaults(func=cmd_keys)
