"""API keys: a revoked key is refused everywhere at once (the store is read on every
request, so no restart is needed); the raw key is never stored."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.core.settings import Settings
from app.security.api_keys import KeyStore, Role


def test_a_revoked_key_no_longer_authenticates(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    raw, key = store.create("dr-revoked", Role.clinician, ["public"])
    other, _ = store.create("dr-kept", Role.clinician, ["public"])
    assert raw not in (tmp_path / "keys.json").read_text()
    who = store.authenticate(raw)
    assert who is not None and who.key_id == key.key_id
    assert store.revoke(key.key_id) is True
    assert store.authenticate(raw) is None
    assert store.authenticate(other) is not None, "only the revoked key is refused"
    assert store.revoke(key.key_id) is False  # already revoked
    assert store.revoke("no-such-key") is False
    assert [(k.name, k.revoked) for k in store.list()] == [("dr-revoked", True),
                                                            ("dr-kept", False)]


def test_the_api_refuses_a_revoked_key_on_every_route(api: TestClient, settings: Settings) -> None:
    store = KeyStore(settings.keys_file)
    raw, key = store.create("revoked-api", Role.admin, ["public"])
    auth = {"Authorization": f"Bearer {raw}"}
    assert api.get("/me", headers=auth).status_code == 200  # the control
    store.revoke(key.key_id)
    body = {"question": "What is the recommended starting dose of atorvastatin?"}
    assert api.get("/me", headers=auth).status_code == 401
    assert api.post("/ask", headers=auth, json=body).status_code == 401
    assert api.post("/ask/stream", headers=auth, json=body).status_code == 401
    assert api.get("/audit", headers=auth).status_code == 401
    assert api.get("/documents", headers=auth).status_code == 401
