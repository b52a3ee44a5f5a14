"""End to end in a real browser: the real API (uvicorn, real retrieval, the local CPU
generator, verification, audit log) and the real Streamlit server, both on 127.0.0.1,
driven by the system's headless Chromium through Playwright (never a downloaded browser;
`scripts/ci_browser.sh` installs Debian's `chromium`).

With MEDCITE_SCREENSHOTS_DIR set, each page is saved there (ask.png, audit.png,
documents-diff.png); `scripts/screenshots.sh` regenerates docs/screenshots/ this way.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.auth import KeyStore, Role
from app.settings import REPO_ROOT, Settings
from tests.conftest import Keys, LiveAPI

CHROMIUM = os.environ.get("MEDCITE_CHROMIUM", "/usr/bin/chromium")
QUESTION = "What is the recommended starting dose of atorvastatin?"
OHIO_NEW_VERSION = (
    REPO_ROOT / "corpora/formularies/ohio-medicaid-updl/versions"
    / "lipotropics.v2024-01-05.7f5fdb53.md"
)
# The CPU generator answers in 10-100 s alone, far slower when the machine is shared.
ANSWER_TIMEOUT_MS = 900_000

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')"
)
if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
    pytest.skip(
        f"no Chromium at {CHROMIUM}: run scripts/ci_browser.sh (Debian packages chromium, "
        "chromium-driver) or set MEDCITE_CHROMIUM",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ui_url(live_api: LiveAPI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real Streamlit server for the real API; no MEDCITE_API_KEY, so users sign in."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MEDCITE_API_KEY"}
    env.update(MEDCITE_API_URL=live_api.url, PYTHONPATH=str(REPO_ROOT))
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "ui" / "app.py"),
             "--server.address", "127.0.0.1", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
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
def browser() -> Iterator[object]:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


def _screenshot(page: object, name: str) -> None:
    folder = os.environ.get("MEDCITE_SCREENSHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)  # type: ignore[attr-defined]


def _sign_in(browser: object, ui_url: str, key: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1500, "height": 1500})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(ui_url)
    field = page.get_by_label("API key or token")
    field.fill(key)
    field.press("Enter")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for(timeout=60_000)
    return page


def _settle(page: object) -> None:
    """Wait until Streamlit has finished the current run (its status widget is gone)."""
    page.wait_for_timeout(500)  # type: ignore[attr-defined]
    page.locator('[data-testid="stStatusWidget"]').wait_for(  # type: ignore[attr-defined]
        state="detached", timeout=ANSWER_TIMEOUT_MS
    )


@pytest.mark.timeout(1800)
def test_ask_then_audit_in_the_browser(
    browser: object, ui_url: str, live_api: LiveAPI, keys: Keys
) -> None:
    page = _sign_in(browser, ui_url, live_api.api_key)
    question = page.get_by_label("Question")
    question.fill(QUESTION)
    question.press("Control+Enter")
    page.get_by_role("button", name="Ask", exact=True).click()
    page.locator(".medcite-badge").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    _settle(page)

    supported = page.locator(".medcite-badge.medcite-supported")
    assert supported.count() >= 1
    assert "supported: support score" in (supported.first.get_attribute("title") or "")
    _screenshot(page, "ask.png")
    sources = page.locator(".medcite-source")
    assert sources.count() >= 1
    assert any("lipitor" in text.lower() for text in sources.all_inner_texts())
    assert page.locator("mark").count() >= 1  # the supporting span, highlighted
    page.context.close()

    page = _sign_in(browser, ui_url, keys.auditor)
    user = page.get_by_label("User (key name or id)")
    user.fill("dr-test")
    user.press("Enter")
    page.get_by_role("button", name="Search").click()
    page.get_by_text("Answer as given").wait_for(timeout=60_000)
    _settle(page)
    assert page.get_by_text(QUESTION).count() >= 1
    assert page.locator(".medcite-badge.medcite-supported").count() >= 1
    assert page.get_by_text("answer status:").count() == 1
    _screenshot(page, "audit.png")
    page.context.close()


@pytest.mark.timeout(1800)
def test_documents_upload_and_diff_in_the_browser(
    browser: object, ui_url: str, live_api: LiveAPI, settings: Settings
) -> None:
    if "/documents" not in httpx.get(f"{live_api.url}/openapi.json").json()["paths"]:
        pytest.skip("the API has no /documents endpoints yet (issue #4)")
    key = KeyStore(settings.keys_file).create("policy-browser", Role.policy_admin, ["public"])[0]
    page = _sign_in(browser, ui_url, key)
    page.get_by_text("Upload a new version").wait_for(timeout=60_000)

    # Choose the Ohio lipotropics page, then upload its other version.
    page.get_by_label("Document", exact=True).click()
    page.get_by_role("option").filter(has_text="lipotropics").first.click()
    _settle(page)
    page.locator('input[type="file"]').set_input_files(str(OHIO_NEW_VERSION))
    page.get_by_role("button", name="Upload and ingest").click()
    page.get_by_text("Ingested").wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.locator(".medcite-diff-headline").wait_for(timeout=60_000)
    _settle(page)
    assert "→" in page.locator(".medcite-diff-headline").inner_text()
    assert page.locator(".medcite-change").count() >= 1
    _screenshot(page, "documents-diff.png")
    page.context.close()
