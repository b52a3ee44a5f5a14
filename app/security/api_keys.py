"""API keys: stored hashed, each with a role and access groups.

Keys live in a JSON file under the data folder. The raw key is shown once, when it is
created; only its SHA-256 is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field


class Role(StrEnum):
    clinician = "clinician"
    integration = "integration"
    policy_admin = "policy_admin"
    auditor = "auditor"
    # Labels answers in the review queue (GET /review/queue, POST /review/{answer_id}).
    reviewer = "reviewer"
    # Scrapes GET /metrics and nothing else: the key a Prometheus server holds.
    metrics = "metrics"
    admin = "admin"


class Principal(BaseModel):
    key_id: str
    name: str
    role: Role
    groups: list[str] = Field(default_factory=lambda: ["public"])


class StoredKey(Principal):
    sha256: str
    created_at: str
    revoked: bool = False


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> list[StoredKey]:
        if not self.path.exists():
            return []
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return [StoredKey.model_validate(k) for k in data.get("keys", [])]

    def _save(self, keys: list[StoredKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [k.model_dump() for k in keys]}, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    def create(self, name: str, role: Role, groups: list[str]) -> tuple[str, StoredKey]:
        raw = "mc_" + secrets.token_urlsafe(32)
        key = StoredKey(
            key_id=secrets.token_hex(6), name=name, role=role, groups=groups,
            sha256=_digest(raw), created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self._save([*self._load(), key])
        return raw, key

    def revoke(self, key_id: str) -> bool:
        keys = self._load()
        hit = False
        for k in keys:
            if k.key_id == key_id and not k.revoked:
                k.revoked, hit = True, True
        self._save(keys)
        return hit

    def list(self) -> list[StoredKey]:
        return self._load()

    def authenticate(self, raw: str) -> Principal | None:
        digest = _digest(raw)
        for k in self._load():
            if not k.revoked and hmac.compare_digest(k.sha256, digest):
                return Principal(key_id=k.key_id, name=k.name, role=k.role, groups=k.groups)
        return None


def ensure_local_key(store: KeyStore, key_file: Path) -> str:
    """The key the bundled UI and CLI use on a single machine, created on first start."""
    if key_file.exists():
        raw = key_file.read_text().strip()
        if store.authenticate(raw):
            return raw
    raw, _ = store.create("local-clinician", Role.clinician, ["public"])
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(raw)
    os.chmod(key_file, 0o600)
    return raw
