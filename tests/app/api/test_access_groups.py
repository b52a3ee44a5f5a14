"""Minimum necessary: a passage outside the caller's groups is never retrieved, sent to
the model, cited or shown, even when it is the best answer."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.core.settings import Settings
from app.security.api_keys import KeyStore, Role

QUESTION = "Is inclisiran covered, and what is its quantity limit?"


def test_retrieval_respects_groups(services) -> None:  # type: ignore[no-untyped-def]
    def sources(groups: list[str]) -> set[str]:
        hits = services.retriever.search(QUESTION, access_groups=groups, limit=10)
        return {h.provenance.source_file for h in hits}

    assert "formularies/cardiology-addendum.md" in sources(["public", "cardiology"])
    assert "formularies/cardiology-addendum.md" not in sources(["public"])
    assert sources(["cardiology"]) == {"formularies/cardiology-addendum.md"}


def test_ask_never_shows_a_forbidden_passage(api: TestClient, settings: Settings) -> None:
    raw, _ = KeyStore(settings.keys_file).create("gp", Role.clinician, ["public"])
    r = api.post("/ask", headers={"Authorization": f"Bearer {raw}"}, json={"question": QUESTION})
    assert r.status_code == 200
    data = r.json()
    for secret in ("Leqvio", "maximally tolerated statin", "cardiologist"):
        assert secret not in r.text
    assert all("cardiology" not in p["provenance"]["access_groups"] for p in data["passages"])
    assert data["abstained"], "the only support is in a group this user lacks"
