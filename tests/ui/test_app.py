"""Tests of the Streamlit UI: render functions, API client, and the page via AppTest."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from app.answering.models import (
    AnswerSentence,
    AnswerStatus,
    AskRequest,
    AskResponse,
    Citation,
    CitationStatus,
    EvidenceQuote,
    PatientContext,
)
from app.core.settings import REPO_ROOT
from retrieval.models import Passage, Provenance, SearchFilters
from ui import render
from ui.api_client import ApiError, ApiTimeout, MedciteClient
from ui.patients import list_patient_bundles, patient_label

# AppTest resolves a relative path against the calling file (tests/), not the working
# directory, so the page is addressed absolutely.
APP_PATH = REPO_ROOT / "ui" / "main.py"
QUESTION = "What is the recommended starting dose of atorvastatin?"

LABEL_TEXT = (
    "2.3 Adults\nThe recommended starting dosage of LIPITOR is 10 or 20 mg once daily. "
    "Patients requiring a large LDL-C reduction (more than 45%) may be started at 40 mg."
)
GUIDELINE_TEXT = "Use a moderate-intensity statin; costs are <$4 & covered at *tier 1*."


def _passage(
    pid: str, text: str, *, title: str, doc_type: str, score: float = 0.8, **prov: Any
) -> Passage:
    return Passage(
        id=pid,
        text=text,
        score=score,
        provenance=Provenance(
            doc_id=f"doc-{pid}",
            title=title,
            source_file=f"{pid}.xml",
            doc_type=doc_type,
            char_start=0,
            char_end=len(text),
            **prov,
        ),
    )


def _citation(
    pid: str, status: CitationStatus, score: float, span: tuple[int, int] | None, quote: str = ""
) -> Citation:
    return Citation(
        passage_id=pid,
        quote=quote,
        status=status,
        score=score,
        reasons=["lexical overlap"],
        span_start=span[0] if span else None,
        span_end=span[1] if span else None,
    )


def _response() -> AskResponse:
    label = _passage(
        "p-label",
        LABEL_TEXT,
        title="LIPITOR (atorvastatin calcium) tablets",
        doc_type="label",
        section_path=["2 Dosage and Administration", "2.3 Adults"],
        page=4,
        effective_date="2024-03-01",
        version="12",
    )
    guideline = _passage(
        "p-guide", GUIDELINE_TEXT, title="Lipid guideline <2018>", doc_type="guideline"
    )
    unused = _passage("p-unused", "Unrelated text.", title="Other", doc_type="formulary", score=0.4)
    dose_start = LABEL_TEXT.index("The recommended")
    dose_end = LABEL_TEXT.index("once daily.") + len("once daily.")
    sentences = [
        # Cites the guideline first so numbering must follow citation order, not retrieval order.
        AnswerSentence(
            text="A moderate-intensity statin costs $4 *or less*.",
            citations=[_citation("p-guide", CitationStatus.partial, 0.55, None, quote="<$4 &")],
            status=CitationStatus.partial,
        ),
        AnswerSentence(
            text="The usual starting dose is 10 or 20 mg once daily.",
            citations=[
                _citation("p-label", CitationStatus.supported, 0.93, (dose_start, dose_end)),
                _citation("p-guide", CitationStatus.partial, 0.41, None),
            ],
            status=CitationStatus.supported,
        ),
        AnswerSentence(
            text="It should be taken with <grapefruit juice>.",
            citations=[_citation("p-missing", CitationStatus.invalid, 0.0, None)],
            status=CitationStatus.invalid,
        ),
        AnswerSentence(
            text="Doses never exceed 40 mg.", citations=[], status=CitationStatus.unsupported
        ),
    ]
    return AskResponse(
        question=QUESTION,
        status=AnswerStatus.unverified,
        abstained=False,
        sentences=sentences,
        passages=[label, unused, guideline],
        patient=PatientContext(age=54, sex="female", conditions=["Hyperlipidemia"]),
        model="qwen2.5-test",
        timings_ms={"retrieve": 120.0, "generate": 31000.0},
    )


# -- render: numbering, badges, escaping ---------------------------------------------------


def test_markers_follow_first_citation_order() -> None:
    response = _response()
    assert render.citation_numbers(response) == {"p-guide": 1, "p-label": 2}
    lines = render.render_answer(response)
    assert len(lines) == 4
    assert lines[0].count('class="medcite-marker"') == 1 and "\\[1\\]" in lines[0]
    # Second sentence: label passage is [2], guideline keeps its number [1].
    assert lines[1].index("\\[2\\]") < lines[1].index("\\[1\\]")
    # Unknown passage id gets a placeholder marker rather than a wrong number.
    assert "\\[?\\]" in lines[2]


def test_badges_have_status_colour_and_score_tooltip() -> None:
    lines = render.render_answer(_response())
    supported = render.BADGE_COLOURS[CitationStatus.supported]
    partial = render.BADGE_COLOURS[CitationStatus.partial]
    assert f"background-color:{supported}" in lines[1]
    assert f"background-color:{partial}" in lines[0]
    assert 'title="supported: support score 0.93 - lexical overlap"' in lines[1]
    assert "medcite-invalid" in lines[2]
    assert render.BADGE_COLOURS[CitationStatus.invalid] in lines[2]


def test_unsupported_sentences_are_marked() -> None:
    lines = render.render_answer(_response())
    assert "medcite-flag" not in lines[0] and "medcite-flag" not in lines[1]
    assert "Unsupported:" in lines[2] and "Unsupported:" in lines[3]
    assert "(no citation)" in lines[3]


def test_answer_text_is_escaped() -> None:
    lines = render.render_answer(_response())
    assert "<grapefruit juice>" not in lines[2]
    assert "&lt;grapefruit juice&gt;" in lines[2]
    # "$" would start LaTeX and "*" emphasis in Streamlit markdown.
    assert "\\$4 \\*or less\\*" in lines[0]


def test_escape_text_neutralises_markdown_and_html() -> None:
    assert render.escape_text("1. dose") == "1\\. dose"
    assert render.escape_text("- item") == "\\- item"
    assert render.escape_text("[x](javascript:y)") == "\\[x\\](javascript:y)"
    assert render.escape_text('<img src=x onerror="a">') == '&lt;img src=x onerror="a"&gt;'
    assert render.escape_text("a ~b~ | c") == "a \\~b\\~ \\| c"


def test_status_summary_variants() -> None:
    response = _response()
    summary = render.status_summary(response)
    assert summary.level == "error"
    assert summary.text == (
        "2 of 4 sentences unsupported, 1 of 4 sentences only partially supported"
    )

    verified = response.model_copy(
        update={"sentences": [response.sentences[1]], "status": AnswerStatus.verified}
    )
    assert render.status_summary(verified) == render.StatusSummary("success", "All claims verified")

    strict = verified.model_copy(update={"removed_sentences": response.sentences[2:]})
    assert render.status_summary(strict).text == (
        "All claims verified; 2 unsupported sentences removed"
    )

    abstained = response.model_copy(
        update={
            "sentences": [],
            "abstained": True,
            "status": AnswerStatus.abstained,
            "abstain_reason": "no passage above the relevance threshold",
        }
    )
    assert render.status_summary(abstained) == render.StatusSummary(
        "info", "Abstained: no passage above the relevance threshold"
    )


def test_sources_in_marker_order_with_metadata_and_highlight() -> None:
    sources = render.cited_sources(_response())
    assert [number for number, _ in sources] == [1, 2]
    guide_md, label_md = sources[0][1], sources[1][1]

    assert "Lipid guideline &lt;2018&gt;" in guide_md and "\\[1\\]" in guide_md
    assert "LIPITOR (atorvastatin calcium) tablets" in label_md
    assert "label · 2 Dosage and Administration › 2.3 Adults · p. 4" in label_md
    assert "effective 2024-03-01 · version 12" in label_md
    # The verifier's span is highlighted, newlines kept as <br> on one markdown line.
    assert (
        "<mark>The recommended starting dosage of LIPITOR is 10 or 20 mg once daily.</mark>"
        in label_md
    )
    assert label_md.split("\n\n", 1)[1].startswith("2.3 Adults<br><mark>")
    # Without offsets the quote is found in the text; everything around it stays escaped.
    assert "costs are <mark>&lt;\\$4 &amp;</mark> covered at \\*tier 1\\*." in guide_md
    assert "p-unused" not in "".join(md for _, md in sources)


def test_citation_spans_merge_and_validate() -> None:
    passage = _passage("p", "abcdefghij", title="t", doc_type="label")
    citations = [
        _citation("p", CitationStatus.supported, 1.0, (2, 5)),
        _citation("p", CitationStatus.supported, 1.0, (4, 7)),
        _citation("p", CitationStatus.partial, 0.5, (8, 99), quote="IJ"),  # bad offsets
        _citation("other", CitationStatus.supported, 1.0, (0, 1)),
    ]
    assert render.citation_spans(passage, citations) == [(2, 7), (8, 10)]
    assert render.highlight_passage("a<b>c", [(1, 4)]) == "a<mark>&lt;b&gt;</mark>c"
    assert render.highlight_passage("abc", []) == "abc"


def test_abstention_lists_closest_passages() -> None:
    response = _response().model_copy(
        update={"sentences": [], "abstained": True, "status": AnswerStatus.abstained}
    )
    assert render.is_abstention(response)
    assert render.cited_sources(response) == []
    closest = render.closest_passages(response, limit=2)
    assert [p.id for p in closest] == ["p-label", "p-guide"]
    md = render.render_source(closest[0], None, show_score=True)
    assert "retrieval score 0.80" in md and "medcite-marker" not in md
    assert len(render.abstention_sources(response)) == 3


def test_abstention_keeps_draft_citations_resolvable() -> None:
    # A draft that cites only the lowest-scored passage, which is outside the closest one.
    draft = AnswerSentence(
        text="Unverified.",
        citations=[_citation("p-unused", CitationStatus.unsupported, 0.1, None)],
        status=CitationStatus.unsupported,
    )
    response = _response().model_copy(
        update={"sentences": [draft], "abstained": True, "status": AnswerStatus.abstained}
    )
    sources = render.abstention_sources(response, limit=1)
    assert len(sources) == 2
    assert "LIPITOR" in sources[0] and "medcite-marker" not in sources[0]
    assert "\\[1\\]" in sources[1] and "Other" in sources[1]


def test_patient_and_footer() -> None:
    response = _response()
    assert render.render_patient(None) is None
    patient = render.render_patient(response.patient)
    assert patient == "Patient context used: age 54; female; conditions: Hyperlipidemia"
    assert render.render_footer(response) == "model qwen2.5-test · retrieve 0.1 s · generate 31.0 s"


def test_patient_labels_drop_uuid() -> None:
    assert patient_label("Reuben_Lind_1d03714f-4851-44d9-a6b6-8a2752bbe178") == "Reuben Lind"
    assert patient_label("Reuben954_Lind744_1d03714f-4851-44d9-a6b6-8a2752bbe178") == (
        "Reuben Lind"
    )
    bundles = list_patient_bundles()
    assert "Reuben Lind" in bundles
    assert all(path.suffix == ".json" for path in bundles.values())


# -- API client against httpx.MockTransport -------------------------------------------------


def _client(handler: Any, api_key: str | None = "k-123") -> MedciteClient:
    return MedciteClient("http://api.test/", api_key, transport=httpx.MockTransport(handler))


def test_client_ask_sends_bearer_and_parses_response() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("authorization")
        seen["url"] = str(request.url)
        seen["body"] = json.loads(request.content)
        return httpx.Response(200, json=_response().model_dump(mode="json"))

    request = AskRequest(question=QUESTION, filters=SearchFilters(doc_types=["label"]))
    response = _client(handler).ask(request)
    assert response == _response()
    assert seen["auth"] == "Bearer k-123"
    assert seen["url"] == "http://api.test/ask"
    assert seen["body"] == {
        "question": QUESTION,
        "filters": {"doc_types": ["label"]},
        "strict": False,
    }


def test_client_health_sends_no_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert "authorization" not in request.headers
        body = {"status": "ok", "collection": "c", "passages": 3, "llm": "up"}
        return httpx.Response(200, json=body)

    assert _client(handler).health().passages == 3


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"detail": "invalid key"}, "rejected the API key or token (invalid key)"),
        (403, {"detail": "forbidden"}, "role may not do this: forbidden"),
        (
            422,
            {"detail": [{"loc": ["body", "question"], "msg": "too short"}]},
            "rejected the request: question: too short",
        ),
        (413, {"detail": "question is 3000 characters"}, "too large: question is 3000"),
        (503, {"detail": "llm down"}, "generator is unavailable, try again later: llm down"),
        (500, None, "returned an error"),
    ],
)
def test_client_errors(status: int, body: dict[str, Any] | None, expected: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, text="boom")
        return httpx.Response(status, json=body)

    with pytest.raises(ApiError) as info:
        _client(handler).ask(AskRequest(question=QUESTION))
    assert info.value.status == status
    assert expected in info.value.message


def test_client_unreachable_and_malformed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ApiError) as info:
        _client(refuse).health()
    assert info.value.status is None
    assert "Cannot reach the medcite API at http://api.test" in str(info.value)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(ApiTimeout, match="did not answer within 10 s"):
        _client(slow).health()

    with pytest.raises(ApiError, match="does not understand"):
        _client(lambda request: httpx.Response(200, json={"x": 1})).ask(
            AskRequest(question=QUESTION)
        )


# -- the page ---------------------------------------------------------------------------------


def _markdown(at: AppTest) -> list[str]:
    return [element.value for element in at.markdown]


def test_page_without_api_explains_and_offers_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 9 (discard) has no listener: connections are refused at once.
    monkeypatch.setenv("MEDCITE_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MEDCITE_API_KEY", "not-a-real-key")
    at = AppTest.from_file(APP_PATH, default_timeout=60)
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("Cannot reach the medcite API at http://127.0.0.1:9" in e for e in errors)
    assert any(e.startswith("Signing in with MEDCITE\\_API\\_KEY failed") for e in errors)
    # Nothing but the sign-in page is offered until a key is accepted.
    assert at.text_input(key="login_key") is not None
    assert not at.text_area
    with pytest.raises(ValueError):
        at.switch_page("views/ask.py")


class _StubApi:
    """A stdlib HTTP server that answers /health and /ask with canned responses."""

    api_key = "stub-key"

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {stub.api_key}":
                    return True
                self._send(401, {"detail": "invalid API key"})
                return False

            def do_GET(self) -> None:
                if self.path == "/me":
                    if self._authorised():
                        self._send(200, {"key_id": "k1", "name": "dr-stub",
                                         "role": "clinician", "groups": ["public"]})
                    return
                body = {"status": "ok", "collection": "stub", "passages": 3, "llm": "stub"}
                self._send(200, body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length))
                if not self._authorised():
                    return
                stub.requests.append(request)
                response = _response()
                if "evidence only" in request["question"]:
                    passage = response.passages[0]
                    response = response.model_copy(update={
                        "sentences": [], "abstained": False,
                        "status": AnswerStatus.evidence_only,
                        "status_reason": "No sentence of the generated answer could be "
                                         "verified against the sources.",
                        "evidence": [EvidenceQuote(
                            passage_id=passage.id, unit_id="P1.1",
                            text=passage.text[:60], span_start=0, span_end=60)],
                    })
                elif "abstain" in request["question"]:
                    response = response.model_copy(
                        update={
                            "sentences": [],
                            "abstained": True,
                            "status": AnswerStatus.abstained,
                            "abstain_reason": "nothing relevant enough",
                        }
                    )
                # /ask/stream's events: passages, the raw model output, the answer; or,
                # for the failure tests, an `error` event, or the end of the stream.
                events = [
                    ("passages", {"passages": [p.model_dump() for p in response.passages]}),
                    ("token", {"text": '{"sentences": [{"text": "A draft'}),
                    ("answer", response.model_dump(mode="json")),
                ]
                if "fail mid-stream" in request["question"]:
                    events[-1] = ("error", {"detail": "The audit log could not be written, "
                                                      "so no answer is given."})
                elif "cut the stream" in request["question"]:
                    events.pop()
                elif "garble the answer" in request["question"]:
                    events[-1] = ("answer", {"status": "no-such-status"})
                data = "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(data.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def stub_api() -> Iterator[_StubApi]:
    stub = _StubApi()
    thread = threading.Thread(target=stub.server.serve_forever, daemon=True)
    thread.start()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


def _stub_page(stub: _StubApi, monkeypatch: pytest.MonkeyPatch, key: str) -> AppTest:
    monkeypatch.setenv("MEDCITE_API_URL", stub.url)
    monkeypatch.setenv("MEDCITE_API_KEY", key)
    at = AppTest.from_file(APP_PATH, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def test_page_renders_answer_from_stub_api(
    stub_api: _StubApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _stub_page(stub_api, monkeypatch, stub_api.api_key)
    assert not at.error
    at.text_area(key="question").input(QUESTION)
    at.multiselect(key="doc_types").select("label")
    at.text_input(key="payer").input("Medicare, Aetna")
    at.selectbox(key="patient").select("Reuben Lind")
    at.date_input(key="as_of").set_value(date(2024, 2, 1))
    at.button(key="ask").click()
    at.run()
    assert not at.exception

    sent = stub_api.requests[-1]
    assert sent["question"] == QUESTION
    assert sent["filters"] == {"doc_types": ["label"], "payers": ["Medicare", "Aetna"],
                               "as_of": "2024-02-01"}
    assert sent["fhir_bundle"]["resourceType"] == "Bundle"

    assert [e.value for e in at.error] == [
        "2 of 4 sentences unsupported, 1 of 4 sentences only partially supported"
    ]
    markdown = _markdown(at)
    # Four sentences; the last has no citation, so no badge.
    assert sum("medcite-badge" in md for md in markdown) == 3
    assert sum("(no citation)" in md for md in markdown) == 1
    sources = [md for md in markdown if 'class="medcite-source"' in md]
    assert len(sources) == 3  # two cited, one in "other retrieved passages"
    assert "\\[2\\]" in sources[1] and "LIPITOR" in sources[1]
    assert "<mark>" in sources[1]
    assert [e.label for e in at.expander][:2] == [
        "Full section: Lipid guideline <2018>",
        "Full section: 2 Dosage and Administration › 2.3 Adults",
    ]

    # The answer survives an unrelated rerun (session state); signing out forgets it.
    at.checkbox(key="strict").check()
    at.run()
    assert any("medcite-badge" in md for md in _markdown(at))
    at.button(key="sign_out").click()
    at.run()
    assert not at.exception
    assert not any("medcite-badge" in md for md in _markdown(at))
    at.text_input(key="login_key").input("wrong-key")
    at.button(key="sign_in").click()
    at.run()
    assert any("rejected the API key or token" in e.value for e in at.error)


def test_page_shows_abstention(stub_api: _StubApi, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _stub_page(stub_api, monkeypatch, stub_api.api_key)
    at.text_area(key="question").input("Please abstain")
    at.button(key="ask").click()
    at.run()
    assert not at.exception
    assert [i.value for i in at.info] == ["Abstained: nothing relevant enough"]
    assert "fhir_bundle" not in stub_api.requests[-1]
    sources = [md for md in _markdown(at) if 'class="medcite-source"' in md]
    assert len(sources) == 3 and "retrieval score 0.80" in sources[0]


def test_page_shows_evidence_only_as_quotes_not_an_answer(
    stub_api: _StubApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _stub_page(stub_api, monkeypatch, stub_api.api_key)
    at.text_area(key="question").input("Show evidence only")
    at.button(key="ask").click()
    at.run()
    assert not at.exception
    assert [w.value for w in at.warning][0].startswith("Evidence only, not a composed answer")
    headers = [h.value for h in at.subheader]
    assert "Evidence from the sources (verbatim)" in headers and "Answer" not in headers
    quotes = [md for md in _markdown(at) if md.startswith("> ")]
    assert len(quotes) == 1 and "LIPITOR" in quotes[0].upper()


def test_page_against_live_api(standin_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real API and retrieval with the stand-in generator: the page's rendering is under
    # test; the real model answers in the browser test (tests/ui/test_browser.py).
    monkeypatch.setenv("MEDCITE_API_URL", standin_api.url)
    monkeypatch.setenv("MEDCITE_API_KEY", standin_api.api_key)
    at = AppTest.from_file(APP_PATH, default_timeout=600)
    at.run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]

    at.text_area(key="question").input(QUESTION)
    at.button(key="ask").click()
    at.run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]

    markdown = _markdown(at)
    assert any("medcite-badge" in md for md in markdown), markdown
    sources = [md for md in markdown if 'class="medcite-source"' in md]
    assert any("lipitor" in md.lower() for md in sources), sources


# -- the Ask page when the stream fails ---------------------------------------------------


def _ask(at: AppTest, question: str) -> AppTest:
    at.text_area(key="question").input(question)
    at.button(key="ask").click()
    at.run()
    assert not at.exception, at.exception
    return at


def _nothing_shown_as_an_answer(at: AppTest) -> None:
    markdown = _markdown(at)
    assert not any("medcite-badge" in md or 'class="medcite-source"' in md for md in markdown)
    assert not any("A draft" in md for md in markdown), "the raw draft was left on the page"
    assert not at.success and not at.info


def test_page_shows_an_error_event_and_no_answer(
    stub_api: _StubApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _ask(_stub_page(stub_api, monkeypatch, stub_api.api_key), "Please fail mid-stream")
    assert [e.value for e in at.error] == [
        "The API stopped: The audit log could not be written, so no answer is given. (HTTP 200)"]
    _nothing_shown_as_an_answer(at)
    # A later answer clears the error.
    _ask(at, QUESTION)
    assert not any("API stopped" in e.value for e in at.error)
    assert any("medcite-badge" in md for md in _markdown(at))


def test_page_says_so_when_the_stream_closes_without_an_answer(
    stub_api: _StubApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _ask(_stub_page(stub_api, monkeypatch, stub_api.api_key), "Please cut the stream")
    assert [e.value for e in at.error] == ["The API closed the stream without an answer."]
    _nothing_shown_as_an_answer(at)


def test_page_refuses_an_answer_it_does_not_understand(
    stub_api: _StubApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _ask(_stub_page(stub_api, monkeypatch, stub_api.api_key), "Please garble the answer")
    (error,) = [e.value for e in at.error]
    assert error.startswith("The API sent an answer this UI does not understand")
    _nothing_shown_as_an_answer(at)


def test_client_stream_yields_events_then_raises_on_an_error_event() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = ('event: passages\ndata: {"passages": []}\n\n'
                'event: token\ndata: {"text": "x"}\n\n'
                'event: error\ndata: {"detail": "generator unavailable"}\n\n'
                'event: answer\ndata: {"never": "read"}\n\n')
        return httpx.Response(200, text=body, headers={"Content-Type": "text/event-stream"})

    seen = []
    with pytest.raises(ApiError) as info:
        for event in _client(handler).ask_stream(AskRequest(question=QUESTION)):
            seen.append(event.event)
    assert seen == ["passages", "token"]
    assert info.value.status == 200 and "generator unavailable" in info.value.message
