"""End to end in a real browser: the real API (uvicorn, real retrieval, the local CPU
generator, verification, audit log, document versions) and the real Streamlit server, both
on 127.0.0.1, driven by the system's headless Chromium through Playwright (never a
downloaded browser; `scripts/ci_browser.sh` installs Debian's `chromium`).

One API and one Streamlit server serve every test here, over a collection of their own
(the Lipitor label and the Ohio lipotropics list as of 2023-04-04), so publishing a new
version does not change what the session's other tests retrieve. Only one question goes
to the CPU generator.

With MEDCITE_SCREENSHOTS_DIR set, each page is saved there (ask.png, audit.png,
documents-diff.png); `scripts/screenshots.sh` regenerates docs/screenshots/ this way.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth import KeyStore, Role
from app.settings import REPO_ROOT, Settings
from tests.conftest import Keys, serve, write_corpus

CHROMIUM = os.environ.get("MEDCITE_CHROMIUM", "/usr/bin/chromium")
QUESTION = "What is the recommended starting dose of atorvastatin?"
LABEL = "drug-labels/fda-spl/lipitor-orig.xml"
OHIO = "formularies/ohio-medicaid-updl/versions"
OHIO_2023 = f"{OHIO}/lipotropics.v2023-04-04.b8c269cd.md"
OHIO_2024 = REPO_ROOT / "corpora" / OHIO / "lipotropics.v2024-01-05.7f5fdb53.md"
OHIO_KEY = "ohio-medicaid:lipotropics"
# The CPU generator answers in 10-100 s alone, far slower when the machine is shared.
ANSWER_TIMEOUT_MS = 900_000
# Streamlit reruns, API reads and a one-file ingest: seconds, minutes on a loaded CPU.
STEP_TIMEOUT_MS = 300_000
VIEWPORT = {"width": 1440, "height": 1800}

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')"
)


def _chromium() -> str | None:
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


if _chromium() is None:
    pytest.skip(
        f"no Chromium at {CHROMIUM} or on PATH: run scripts/ci_browser.sh (Debian packages "
        "chromium, chromium-driver) or set MEDCITE_CHROMIUM",
        allow_module_level=True,
    )


@dataclass(frozen=True)
class Stack:
    ui_url: str
    clinician: str
    auditor: str
    policy_admin: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _streamlit(api_url: str, log: Path) -> Iterator[str]:
    """The real Streamlit server for the API; no MEDCITE_API_KEY, so users sign in."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MEDCITE_API_KEY"}
    env.update(MEDCITE_API_URL=api_url, PYTHONPATH=str(REPO_ROOT))
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "ui" / "app.py"),
             "--server.address", "127.0.0.1", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log.read_text()
            time.sleep(0.5)
        else:
            raise AssertionError(f"Streamlit did not start:\n{log.read_text()}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def stack(  # type: ignore[no-untyped-def]
    settings: Settings, services, qdrant, embedder, keys: Keys,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    from app import local_llm
    from app.main import create_app
    from app.services import build_services
    from ingest.pipeline import ingest_path

    tmp = tmp_path_factory.mktemp("browser")
    # The session's generator (`services` started it): one llama.cpp process per session.
    own_settings = settings.model_copy(update={
        "collection": "ui_browser",
        "database_url": f"sqlite:///{tmp / 'audit.db'}",
        "llm_base_url": local_llm.server_url(settings),
        "llm_structured_output": "json_object",
        "max_concurrent_answers": 1,
    })
    corpus = write_corpus(tmp / "corpus", {
        LABEL: ("label", None), OHIO_2023: ("formulary", "Ohio Medicaid")})
    report = ingest_path(corpus, own_settings, client=qdrant, embedder=embedder,
                         catalog=services.catalog, progress=False)
    assert not report.failed and len(report.by_status("ingested")) == 2, report.summary()
    own = build_services(own_settings, client=qdrant, embedder=embedder)
    policy_admin = KeyStore(settings.keys_file).create(
        "policy-browser", Role.policy_admin, ["public"])[0]
    try:
        with serve(create_app(own_settings, own)) as api_url, \
                _streamlit(api_url, tmp / "streamlit.log") as ui_url:
            yield Stack(ui_url, keys.clinician, keys.auditor, policy_admin)
    finally:
        own.jobs.close()
        own.audit.close()
        own.catalog.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=_chromium(), headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


def _screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("MEDCITE_SCREENSHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def _sign_in(browser: Any, stack: Stack, key: str) -> Any:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(stack.ui_url)
    field = page.get_by_label("API key or token")
    field.fill(key)
    field.press("Enter")  # commits the value before the click reruns the script
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for()
    _settle(page)
    return page


def _wait(page: Any, target: Any, what: str, timeout_ms: int = STEP_TIMEOUT_MS) -> None:
    """Wait for `target` or for an error on the page; fail saying what the page shows
    (and save it next to the test's temporary files) instead of a bare timeout."""
    errors = page.get_by_test_id("stAlertContentError").or_(page.get_by_test_id("stException"))
    try:
        target.or_(errors).first.wait_for(timeout=timeout_ms)
    except playwright_api.TimeoutError:
        pass
    if target.count():
        return
    shot = Path(tempfile.gettempdir()) / f"medcite-{what.replace(' ', '-')}.png"
    page.screenshot(path=str(shot), full_page=True)
    text = page.locator("body").inner_text()[-3000:]
    raise AssertionError(f"no {what} on the page (screenshot {shot}); it shows:\n{text}")


def _settle(page: Any, timeout_ms: int = STEP_TIMEOUT_MS) -> None:
    """Wait until Streamlit has finished the current run (its running indicator is gone)."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached",
                                                            timeout=timeout_ms)


def _choose(page: Any, label: str, option: str) -> None:
    """Pick an option of the st.selectbox labelled `label` (a BaseWeb combobox)."""
    box = page.get_by_test_id("stSelectbox").filter(
        has=page.get_by_text(label, exact=True))
    box.get_by_role("combobox").click()
    page.get_by_role("option").filter(has_text=option).first.click()
    _settle(page)


@pytest.mark.timeout(1800)
def test_documents_upload_and_diff_in_the_browser(browser: Any, stack: Stack) -> None:
    page = _sign_in(browser, stack, stack.policy_admin)
    page.get_by_text("Upload a new version").wait_for()

    # Choose the Ohio lipotropics list (as of 2023-04-04), then upload its 2024 version;
    # the form takes the document's key, type and payer, the date from the file name.
    _choose(page, "Document", OHIO_KEY)
    assert page.get_by_role("textbox", name="Document key").input_value() == OHIO_KEY
    page.locator('input[type="file"]').set_input_files(str(OHIO_2024))
    page.get_by_text(OHIO_2024.name).wait_for()
    page.get_by_role("button", name="Upload and ingest").click()
    _wait(page, page.locator(".medcite-diff-headline"), "diff")
    _settle(page)
    assert page.get_by_text(f"Ingested {OHIO_2024.name}").count() == 1

    headline = page.locator(".medcite-diff-headline").inner_text()
    assert "version 1 (effective 2023-04-04) → version 2 (effective 2024-01-05)" in headline
    added = page.locator(".medcite-diff-row").filter(
        has=page.locator(".medcite-change-added"))
    assert "Atorvaliq" in " ".join(added.all_inner_texts())
    _screenshot(page, "documents-diff.png")
    page.context.close()


@pytest.mark.timeout(1800)
def test_ask_then_audit_in_the_browser(browser: Any, stack: Stack) -> None:
    page = _sign_in(browser, stack, stack.clinician)
    question = page.get_by_label("Question", exact=True)
    question.fill(QUESTION)
    question.press("Control+Enter")  # a text area commits on Ctrl+Enter (or blur)
    page.get_by_role("button", name="Ask", exact=True).click()
    _wait(page, page.locator(".medcite-badge"), "citation badge", ANSWER_TIMEOUT_MS)
    _settle(page, ANSWER_TIMEOUT_MS)

    supported = page.locator(".medcite-badge.medcite-supported")
    assert supported.count() >= 1
    assert "supported: support score" in (supported.first.get_attribute("title") or "")
    sources = page.locator(".medcite-source")
    assert sources.count() >= 1
    assert any("lipitor" in text.lower() for text in sources.all_inner_texts())
    assert page.locator("mark").count() >= 1  # the supporting span, highlighted
    _screenshot(page, "ask.png")
    page.context.close()

    page = _sign_in(browser, stack, stack.auditor)
    page.get_by_label("User (key name or id)").fill("dr-test")
    page.get_by_role("button", name="Search").click()
    _wait(page, page.get_by_text("Answer as given"), "audit record")
    _settle(page)
    assert page.get_by_text(QUESTION, exact=True).count() >= 1
    assert page.locator(".medcite-badge.medcite-supported").count() >= 1
    assert page.get_by_text("answer status:").count() == 1
    _screenshot(page, "audit.png")
    page.context.close()
