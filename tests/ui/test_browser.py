"""End to end in a real browser: the real API (uvicorn, real retrieval, the local CPU
generator, verification, audit log, document versions) and the real Streamlit server, both
on 127.0.0.1, driven by the system's headless Chromium through Playwright (never a
downloaded browser; `scripts/ci_browser.sh` installs Debian's `chromium`).

One API (the session's `live_api`) and one Streamlit server serve every test here; only
one question goes to the CPU generator. The Documents test works on a document of its
own (the Ohio lipotropics list as of 2023-04-04, published by the fixture), which it
retires at the end, so the session's other tests never retrieve it.

With MEDCITE_SCREENSHOTS_DIR set, each page is saved there (ask.png, audit.png,
documents-diff.png, review.png); `scripts/screenshots.sh` regenerates docs/screenshots/
this way.
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
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import REPO_ROOT, Settings
from app.security.api_keys import KeyStore, Role
from tests.conftest import Keys, LiveAPI

CHROMIUM = os.environ.get("MEDCITE_CHROMIUM", "/usr/bin/chromium")
QUESTION = "What is the recommended starting dose of atorvastatin?"
OHIO = REPO_ROOT / "corpora/formularies/ohio-medicaid-updl/versions"
OHIO_2023 = OHIO / "lipotropics.v2023-04-04.b8c269cd.md"
OHIO_2024 = OHIO / "lipotropics.v2024-01-05.7f5fdb53.md"
DOC_KEY = "ohio-medicaid:lipotropics-browser-test"
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
    api_url: str
    ui_url: str
    clinician: str
    auditor: str
    policy_admin: str
    reviewer: str


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
            [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "ui" / "main.py"),
             "--server.address", "127.0.0.1", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer"],
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
    settings: Settings, live_api: LiveAPI, keys: Keys,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    from ui.api_client import MedciteClient

    store = KeyStore(settings.keys_file)
    policy_admin = store.create("policy-browser", Role.policy_admin, ["public"])[0]
    reviewer = store.create("reviewer-browser", Role.reviewer, ["public"])[0]
    client = MedciteClient(live_api.url, policy_admin)
    try:
        with _streamlit(live_api.url, tmp_path_factory.mktemp("streamlit") / "log") as ui_url:
            yield Stack(live_api.url, ui_url, keys.clinician, keys.auditor, policy_admin,
                        reviewer)
    finally:
        # The Documents test retires its document; this is for a test that failed first.
        if any(not d.retired for d in client.documents(include_retired=True)
               if d.doc_key == DOC_KEY):
            client.retire(DOC_KEY, "browser test clean-up")


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


def _wait(page: Any, target: Any, what: str, timeout_ms: int = STEP_TIMEOUT_MS,
          also: Any = None) -> None:
    """Wait for `target`, or stop at an error (or `also`) on the page; fail saying what
    the page shows (and save a screenshot) instead of a bare timeout."""
    errors = page.get_by_test_id("stAlertContentError").or_(page.get_by_test_id("stException"))
    if also is not None:
        errors = errors.or_(also)
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
def test_ask_then_audit_in_the_browser(browser: Any, stack: Stack) -> None:
    page = _sign_in(browser, stack, stack.clinician)
    question = page.get_by_label("Question", exact=True)
    question.fill(QUESTION)
    question.press("Control+Enter")  # a text area commits on Ctrl+Enter (or blur)
    page.get_by_role("button", name="Ask", exact=True).click()
    # An abstention has no badges: stop waiting at once and show what it says.
    abstained = page.get_by_text("The service did not answer")
    _wait(page, page.locator(".medcite-badge"), "citation badge", ANSWER_TIMEOUT_MS,
          also=abstained)
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


@pytest.mark.timeout(1800)
def test_documents_upload_diff_and_retire_in_the_browser(browser: Any, stack: Stack) -> None:
    from ui.api_client import MedciteClient
    from ui.documents_page import wait_for_job

    # Published only now, after the question of the other test has been answered: the
    # answer rests on the session's corpus alone.
    client = MedciteClient(stack.api_url, stack.policy_admin)
    job = client.upload(OHIO_2023.name, OHIO_2023.read_bytes(), doc_type="formulary",
                        payer="Ohio Medicaid", effective_date=date(2023, 4, 4),
                        doc_key=DOC_KEY)
    job = wait_for_job(client, job, timeout_s=STEP_TIMEOUT_MS / 1000, poll_s=0.5)
    assert (job.status, job.version) == ("done", 1), job.reason

    page = _sign_in(browser, stack, stack.policy_admin)
    page.get_by_text("Upload a new version").wait_for()

    # Choose the Ohio lipotropics list (as of 2023-04-04), then upload its 2024 version;
    # the form takes the document's key, type and payer, the date from the file name.
    _choose(page, "Document", DOC_KEY)
    assert page.get_by_role("textbox", name="Document key").input_value() == DOC_KEY
    page.locator('input[type="file"]').set_input_files(str(OHIO_2024))
    # The uploader shows a shortened name; its title attribute holds the whole one.
    page.locator(f'[data-testid="stFileChipName"][title="{OHIO_2024.name}"]').wait_for()
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

    # Retire it: a reason, a confirmation, then it is gone from the list.
    page.get_by_text("Retire this document").click()
    page.get_by_role("textbox", name="Reason (kept in the audit log)").fill("browser test")
    page.get_by_role("textbox", name="Reason (kept in the audit log)").press("Enter")
    _settle(page)
    page.get_by_text(f"Yes, retire {DOC_KEY}").click()
    _settle(page)
    page.get_by_role("button", name="Retire", exact=True).click()
    _wait(page, page.get_by_text(f"Retired {DOC_KEY}."), "retirement")
    retired = [d for d in client.documents(include_retired=True) if d.doc_key == DOC_KEY]
    assert [(d.retired, d.retired_reason) for d in retired] == [(True, "browser test")]
    page.context.close()


@pytest.mark.timeout(1800)
def test_a_flagged_answer_is_labelled_on_the_review_page(browser: Any, stack: Stack) -> None:
    """The clinician's thumbs-down puts an answer in the queue; the reviewer reads it with
    its verification and sources, and labels it; the label is in the audit chain."""
    from app.audit.models import FeedbackRating, FeedbackReason, ReviewVerdict
    from app.operations.models import FeedbackRequest
    from ui.api_client import MedciteClient

    clinician = MedciteClient(stack.api_url, stack.clinician)
    # The answer the Ask test got (or, run alone, any of the session's answers).
    asked = MedciteClient(stack.api_url, stack.auditor).audit(user="dr-test", action="ask")
    assert asked.records, "no answer in the audit log to review"
    answer_id = asked.records[0].seq
    clinician.feedback(answer_id, FeedbackRequest(
        rating=FeedbackRating.down, reason=FeedbackReason.incomplete,
        comment="does not say when to titrate"))

    page = _sign_in(browser, stack, stack.reviewer)
    _wait(page, page.get_by_role("heading", name="Review queue"), "review queue")
    _choose(page, "Answer", f"#{answer_id} ·")
    _wait(page, page.get_by_text("Answer as given"), "queued answer")
    assert page.get_by_text("does not say when to titrate", exact=False).count() >= 1
    page.get_by_text(ReviewVerdict.incorrect.value, exact=True).click()
    page.get_by_label("Key facts a correct answer needs (one per line; forms separated "
                      "by |)").fill("10 or 20 mg\nonce daily")
    page.get_by_label("Note", exact=True).fill("browser test")
    _screenshot(page, "review.png")
    page.get_by_role("button", name="Save label").click()
    _wait(page, page.get_by_text(f"Label saved for answer #{answer_id}."), "saved label")

    queue = MedciteClient(stack.api_url, stack.reviewer).review_queue(include_labelled=True)
    (item,) = [i for i in queue.items if i.answer_id == answer_id]
    assert item.label is not None
    label = item.label.details
    assert (label.verdict, label.key_facts, label.note) == (
        ReviewVerdict.incorrect, [["10 or 20 mg"], ["once daily"]], "browser test")
    page.context.close()
