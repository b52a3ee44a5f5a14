"""The Streamlit pages (AppTest) against the real API served by uvicorn on 127.0.0.1:
sign-in and role gating, the Ask page over /ask/stream, the Audit page over /audit, and
the Documents page over /documents (in a collection of its own).

Generation goes to the stand-in OpenAI endpoint of conftest (it quotes the first passage
at once); everything else (retrieval, verification, keys, the audit log) is real.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

from app.api.main import create_app
from app.core.settings import REPO_ROOT, Settings
from app.security.api_keys import KeyStore, Role
from tests.conftest import Keys, StandInLLM, serve

APP_PATH = REPO_ROOT / "ui" / "main.py"
QUESTION = "What is the recommended starting dose of atorvastatin?"
OHIO_VERSIONS = REPO_ROOT / "corpora/formularies/ohio-medicaid-updl/versions"
LIPO_2023 = OHIO_VERSIONS / "lipotropics.v2023-04-04.b8c269cd.md"
LIPO_2024 = OHIO_VERSIONS / "lipotropics.v2024-01-05.7f5fdb53.md"
DOC = "ohio-medicaid:lipotropics"


@dataclass
class Stack:
    url: str
    keys: Keys
    admin: str


@pytest.fixture
def stack(make_services, keys: Keys, settings: Settings,  # type: ignore[no-untyped-def]
          standin_llm: StandInLLM) -> Iterator[Stack]:
    services = make_services(llm_base_url=standin_llm.url)
    store = KeyStore(settings.keys_file)
    admin = store.create("admin-test", Role.admin, ["public"])[0]
    with serve(create_app(settings, services)) as url:
        yield Stack(url, keys, admin)


def _page(monkeypatch: pytest.MonkeyPatch, url: str, key: str | None) -> AppTest:
    monkeypatch.setenv("MEDCITE_API_URL", url)
    if key is None:
        monkeypatch.delenv("MEDCITE_API_KEY", raising=False)
    else:
        monkeypatch.setenv("MEDCITE_API_KEY", key)
    at = AppTest.from_file(APP_PATH, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _markdown(at: AppTest) -> list[str]:
    return [element.value for element in at.markdown]


def _selectbox(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(box for box in at.selectbox if box.label == label)


def test_me_names_the_caller(make_services, keys: Keys, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(settings, make_services())) as client:
        assert client.get("/me").status_code == 401
        assert client.get("/me", headers={"Authorization": "Bearer mc_wrong"}).status_code == 401
        me = client.get("/me", headers={"Authorization": f"Bearer {keys.auditor}"}).json()
        assert me["role"] == "auditor" and me["name"] == "audit-test"
        assert me["groups"] == ["public"] and "sha256" not in me


def test_sign_in_offers_only_the_roles_pages(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _page(monkeypatch, stack.url, None)
    assert _keys(at.text_input) == ["login_key"]
    assert not at.text_area  # no question box before signing in

    at.text_input(key="login_key").input("mc_not-a-key")
    at.button(key="sign_in").click()
    at.run()
    assert any("rejected the API key or token" in e.value for e in at.error)

    at.text_input(key="login_key").input(stack.keys.auditor)
    at.button(key="sign_in").click()
    at.run()
    assert not at.exception
    assert any("Signed in as audit-test" in md for md in _markdown(at))
    assert any(form for form in at.get("form"))  # the audit search form
    # Pages the role cannot use are not registered at all.
    with pytest.raises(ValueError):
        at.switch_page("views/ask.py")
    with pytest.raises(ValueError):
        at.switch_page("views/documents.py")

    at.button(key="sign_out").click()
    at.run()
    assert _keys(at.text_input) == ["login_key"]
    assert not any("Signed in as" in md for md in _markdown(at))


def _keys(elements) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.key for e in elements]


def test_admin_gets_every_page(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page(monkeypatch, stack.url, stack.admin)
    # Ask is the first page: its question box, and nothing of the other pages.
    assert [(t.key, t.label) for t in at.text_area] == [("question", "Question")]
    assert "audit_user" not in _keys(at.text_input)
    assert "login_key" not in _keys(at.text_input)
    at.switch_page("views/documents.py").run()
    assert not at.exception, at.exception
    assert any(h.value == "Documents" for h in at.subheader)
    assert "include_retired" in _keys(at.checkbox) and not at.text_area
    at.switch_page("views/audit.py").run()
    assert not at.exception, at.exception
    assert "audit_user" in _keys(at.text_input)
    assert at.button(key="FormSubmitter:audit_search-Search").label == "Search"
    assert not at.text_area


def test_a_revoked_key_is_refused_at_sign_in_and_mid_session(
    stack: Stack, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = KeyStore(settings.keys_file)
    raw, key = store.create("revoked-ui", Role.clinician, ["public"])
    at = _page(monkeypatch, stack.url, None)
    at.text_input(key="login_key").input(raw)
    at.button(key="sign_in").click()
    at.run()
    assert any("Signed in as revoked-ui" in md for md in _markdown(at))  # the control

    store.revoke(key.key_id)
    # The open session's next call is refused by the API, and nothing is answered.
    at.text_area(key="question").input(QUESTION)
    at.button(key="ask").click()
    at.run()
    assert not at.exception, at.exception
    assert any("rejected the API key or token" in e.value for e in at.error)
    assert not any("medcite-badge" in md for md in _markdown(at))

    at.button(key="sign_out").click()
    at.run()
    at.text_input(key="login_key").input(raw)
    at.button(key="sign_in").click()
    at.run()
    assert any("rejected the API key or token" in e.value for e in at.error)
    assert not any("Signed in as" in md for md in _markdown(at)) and not at.text_area

    # Nor does the UI sign in with it from MEDCITE_API_KEY.
    auto = _page(monkeypatch, stack.url, raw)
    # (the message is shown markdown-escaped: MEDCITE\\_API\\_KEY)
    assert any(e.value.startswith("Signing in with MEDCITE") and
               "rejected the API key or token" in e.value for e in auto.error), auto.error
    assert "login_key" in _keys(auto.text_input) and not auto.text_area


def test_ask_page_streams_and_shows_a_verified_answer(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _page(monkeypatch, stack.url, stack.keys.clinician)
    at.text_area(key="question").input(QUESTION)
    at.multiselect(key="doc_types").select("label")
    at.button(key="ask").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]

    markdown = _markdown(at)
    badges = [md for md in markdown if "medcite-badge" in md]
    assert badges and any("medcite-supported" in md for md in badges), badges
    assert any('title="supported: support score' in md for md in badges)
    sources = [md for md in markdown if 'class="medcite-source"' in md]
    assert sources and "<mark>" in sources[0] and "LIPITOR" in sources[0].upper()
    assert "label" in sources[0]  # the metadata line names the type
    assert any(e.label.startswith("Full section: ") for e in at.expander)
    assert [s.value for s in at.success] == ["All claims verified"]


def test_audit_page_finds_and_opens_an_answer(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An answer by the clinician, made through the real API, to find in the log.
    asker = _page(monkeypatch, stack.url, stack.keys.clinician)
    asker.text_area(key="question").input(QUESTION)
    asker.button(key="ask").click()
    asker.run()
    assert not asker.error, [e.value for e in asker.error]

    at = _page(monkeypatch, stack.url, stack.keys.auditor)
    at.text_input(key="audit_user").input("dr-test")
    at.button(key="FormSubmitter:audit_search-Search").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert all("dr-test" in option for option in _selectbox(at, "Open record").options)
    markdown = _markdown(at)
    assert any(md == QUESTION.replace(".", "\\.") or QUESTION[:40] in md for md in markdown)
    assert any("medcite-supported" in md for md in markdown)
    assert any("answer status: verified" in md for md in markdown)
    assert len(at.dataframe) == 2  # the results and the record's sources

    # A filter that matches nothing says so.
    at.text_input(key="audit_user").input("nobody-at-all")
    at.button(key="FormSubmitter:audit_search-Search").click()
    at.run()
    assert [i.value for i in at.info] == ["No records match."]


def test_clinician_is_refused_the_audit_log_by_the_api(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Even a client that reached past the hidden page would only hold the user's key.
    from ui.api_client import ApiError, MedciteClient

    with pytest.raises(ApiError) as info:
        MedciteClient(stack.url, stack.keys.clinician).audit()
    assert info.value.status == 403


def test_documents_page_upload_diff_history_and_retire(
    make_services, settings: Settings, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    from ui.api_client import MedciteClient
    from ui.documents_page import wait_for_job

    # A collection of its own: publishing and retiring here must not change what the
    # session's other tests retrieve. No generator is needed.
    services = make_services(collection="ui_pages_documents")
    key = KeyStore(settings.keys_file).create("policy-pages", Role.policy_admin, ["public"])[0]
    with serve(create_app(services.settings, services)) as url:
        client = MedciteClient(url, key)
        # AppTest cannot drive a file picker: publish both dated versions through the
        # page's own client and job poller, then read the diff on the page.
        for path, effective in ((LIPO_2023, date(2023, 4, 4)), (LIPO_2024, date(2024, 1, 5))):
            job = client.upload(path.name, path.read_bytes(), doc_type="formulary",
                                payer="Ohio Medicaid", effective_date=effective)
            job = wait_for_job(client, job, timeout_s=600, poll_s=0.5)
            assert (job.status, job.doc_key) == ("done", DOC), job.reason
        assert (job.version, job.previous_version) == (2, 1)

        at = _page(monkeypatch, url, key)
        assert not at.error, [e.value for e in at.error]
        assert _selectbox(at, "Document").value == DOC
        assert (_selectbox(at, "From version").value, _selectbox(at, "To version").value) == (1, 2)
        markdown = _markdown(at)
        headline = next(md for md in markdown if "medcite-diff-headline" in md)
        assert "version 1 (effective 2023-04-04) → version 2 (effective 2024-01-05)" in headline
        assert "1 added" in headline
        table = next(md for md in markdown if 'class="medcite-diff"' in md)
        assert "medcite-change-added" in table and "Atorvaliq" in table
        history = at.dataframe[-1].value
        assert list(history["version"]) == [2, 1]
        assert list(history["status"]) == ["current", "superseded"]

        # Retiring takes a confirmation; the reason goes to the API (and its audit log).
        assert at.button(key="retire").disabled
        at.text_input(key="retire_reason").input("replaced by the 2025 list")
        at.checkbox(key="retire_confirm").check()
        at.run()
        at.button(key="retire").click()
        at.run()
        assert not at.exception, at.exception
        assert [s.value for s in at.success] == [f"Retired {DOC}."]
        assert [i.value for i in at.info] == ["No documents you may see yet: upload one."]
        retired = client.documents(include_retired=True)
        assert [(d.doc_key, d.retired, d.retired_reason) for d in retired] == [
            (DOC, True, "replaced by the 2025 list")]
