"""The Streamlit pages (AppTest) against the real API served by uvicorn on 127.0.0.1:
sign-in and role gating, the Ask page over /ask/stream, the Audit page over /audit, and
the Documents page over /documents.

Generation goes to the stand-in OpenAI endpoint of conftest (it quotes the first passage
at once); everything else (retrieval, verification, keys, the audit log) is real.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

from app.auth import KeyStore, Role
from app.main import create_app
from app.settings import REPO_ROOT, Settings
from tests.conftest import Keys, StandInLLM, serve

APP_PATH = Path(__file__).resolve().parent.parent / "ui" / "app.py"
QUESTION = "What is the recommended starting dose of atorvastatin?"
OHIO_VERSIONS = REPO_ROOT / "corpora/formularies/ohio-medicaid-updl/versions"


@dataclass
class Stack:
    url: str
    keys: Keys
    policy_admin: str
    admin: str
    has_documents_api: bool


@pytest.fixture
def stack(make_services, keys: Keys, settings: Settings,  # type: ignore[no-untyped-def]
          standin_llm: StandInLLM) -> Iterator[Stack]:
    services = make_services(llm_base_url=standin_llm.url)
    store = KeyStore(settings.keys_file)
    policy_admin = store.create("policy-test", Role.policy_admin, ["public"])[0]
    admin = store.create("admin-test", Role.admin, ["public"])[0]
    app = create_app(settings, services)
    has_documents = any(getattr(r, "path", "") == "/documents" for r in app.routes)
    with serve(app) as url:
        yield Stack(url, keys, policy_admin, admin, has_documents)


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
    assert at.text_input(key="login_key") is not None
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
    assert at.text_input(key="login_key") is not None
    assert not any("Signed in as" in md for md in _markdown(at))


def test_admin_gets_every_page(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page(monkeypatch, stack.url, stack.admin)
    assert at.text_area(key="question") is not None  # Ask is the first page
    at.switch_page("views/audit.py").run()
    assert not at.exception
    assert at.button(key="FormSubmitter:audit_search-Search") is not None


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


def test_documents_page_upload_diff_and_history(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not stack.has_documents_api:
        pytest.skip("the API has no /documents endpoints yet (issue #4)")
    from ui.api_client import MedciteClient
    from ui.documents_page import wait_for_job

    client = MedciteClient(stack.url, stack.policy_admin)
    documents = {d.doc_key: d for d in client.documents()}
    ohio = next(d for d in documents.values() if "lipotropics" in d.doc_key)
    # AppTest cannot drive a file picker: upload through the page's own client and job
    # poller, then read the diff on the page.
    upload = OHIO_VERSIONS / "lipotropics.v2024-01-05.7f5fdb53.md"
    job = client.upload(upload.name, upload.read_bytes(), doc_type="formulary",
                        payer=ohio.payer, doc_key=ohio.doc_key)
    job = wait_for_job(client, job, timeout_s=600, poll_s=0.5)
    assert job.status == "done", job.reason

    at = _page(monkeypatch, stack.url, stack.policy_admin)
    assert not at.error, [e.value for e in at.error]
    _selectbox(at, "Document").select(ohio.doc_key)
    at.run()
    assert not at.exception, at.exception
    markdown = _markdown(at)
    assert any("medcite-diff-headline" in md and "→" in md for md in markdown), markdown
    assert any('class="medcite-diff"' in md and "medcite-change" in md for md in markdown)
    assert len(at.dataframe) >= 2  # documents and the version history
