"""The pages of #18 against the real API on uvicorn: feedback under an answer on the Ask
page, the Review page labelling a flagged answer, the quality alarms on the Audit page.
Generation by conftest's stand-in endpoint; everything else real."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from app.api.main import create_app
from app.audit.log import AuditQuery
from app.audit.models import AuditAction
from app.core.container import Services
from app.core.settings import Settings
from app.security.api_keys import KeyStore, Role
from tests.conftest import Keys, StandInLLM, serve
from tests.ui.test_pages import QUESTION, _markdown, _page, _selectbox


@dataclass
class OpsStack:
    url: str
    keys: Keys
    reviewer: str
    services: Services


@pytest.fixture
def ops_stack(make_services, keys: Keys, settings: Settings,  # type: ignore[no-untyped-def]
              standin_llm: StandInLLM) -> Iterator[OpsStack]:
    services = make_services(llm_base_url=standin_llm.url, review_sample_rate=0.0)
    reviewer = KeyStore(settings.keys_file).create("rev-ui", Role.reviewer, ["public"])[0]
    with serve(create_app(settings, services)) as url:
        yield OpsStack(url, keys, reviewer, services)


def test_feedback_under_the_answer_then_the_reviewer_labels_it(
    ops_stack: OpsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _page(monkeypatch, ops_stack.url, ops_stack.keys.clinician)
    at.text_area(key="question").input(QUESTION)
    at.button(key="ask").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Was this answer right?" in md for md in _markdown(at))
    at.radio[0].set_value("👎 Something is wrong")
    _selectbox(at, "What was wrong (for 👎)").set_value(_reason("incomplete"))
    at.text_input[0].input("misses the maximum dose")
    next(b for b in at.button if b.label == "Send feedback").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("feedback on answer #" in s.value for s in at.success)
    (fb,) = ops_stack.services.audit.search(AuditQuery(action=AuditAction.feedback)).records
    assert fb.details.rating.value == "down" and fb.details.reason.value == "incomplete"  # type: ignore[union-attr]

    rv = _page(monkeypatch, ops_stack.url, ops_stack.reviewer)
    assert not rv.exception, rv.exception
    assert any(h.value == "Review queue" for h in rv.subheader)
    answer = _selectbox(rv, "Answer")
    assert answer.options and "flagged" in answer.options[0]
    markdown = _markdown(rv)
    assert any(QUESTION[:40] in md for md in markdown)
    assert any("medcite-badge" in md for md in markdown)
    assert any("misses the maximum dose" in md for md in markdown)
    rv.text_area[0].input("10 or 20 mg | 10-20 mg\nonce daily")
    next(b for b in rv.button if b.label == "Save label").click()
    rv.run()
    assert not rv.exception and not rv.error, [e.value for e in rv.error]
    assert any("Label saved" in s.value for s in rv.success)
    (label,) = ops_stack.services.audit.search(AuditQuery(action=AuditAction.review)).records
    assert label.details.key_facts == [["10 or 20 mg", "10-20 mg"], ["once daily"]]  # type: ignore[union-attr]
    assert label.details.answer_id == fb.details.answer_id  # type: ignore[union-attr]


def _reason(value: str):  # type: ignore[no-untyped-def]
    from app.audit.models import FeedbackReason

    return FeedbackReason(value)


def test_audit_page_shows_the_quality_alarms(
    ops_stack: OpsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _page(monkeypatch, ops_stack.url, ops_stack.keys.auditor)
    assert not at.exception, at.exception
    assert any(h.value == "Quality alarms" for h in at.subheader)
    assert any(e.label == "Quality signals" for e in at.expander)
    # The clinician is not offered the Review page.
    with pytest.raises(ValueError):
        _page(monkeypatch, ops_stack.url, ops_stack.keys.clinician).switch_page(
            "views/review.py")
