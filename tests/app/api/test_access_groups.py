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


def test_ask_stream_never_shows_a_forbidden_passage(
    make_services, keys, standin_llm, settings: Settings  # type: ignore[no-untyped-def]
) -> None:
    """The same rule on /ask/stream, in every event (passages, tokens, answer). The control:
    a key of the cardiology group gets the addendum through the same stream."""
    from app.api.main import create_app
    from tests.app.api.test_stream import read_events

    services = make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0)
    store = KeyStore(settings.keys_file)
    public = store.create("gp-stream", Role.clinician, ["public"])[0]
    cardiology = store.create("cardio-stream", Role.clinician, ["public", "cardiology"])[0]
    with TestClient(create_app(settings, services)) as client:
        status, events, text = read_events(client, public, QUESTION)
        assert status == 200
        for secret in ("Leqvio", "maximally tolerated statin", "cardiologist"):
            assert secret not in text
        (passages,) = [data for name, data in events if name == "passages"]
        assert all("cardiology" not in p["provenance"]["access_groups"]
                   for p in passages["passages"])
        (answer,) = [data for name, data in events if name == "answer"]
        assert answer["abstained"], "the only support is in a group this user lacks"
        assert all("cardiology" not in p["provenance"]["access_groups"]
                   for p in answer["passages"])

        status, events, text = read_events(client, cardiology, QUESTION)
    assert status == 200 and "Leqvio" in text
    (passages,) = [data for name, data in events if name == "passages"]
    assert any("cardiology" in p["provenance"]["access_groups"] for p in passages["passages"])
