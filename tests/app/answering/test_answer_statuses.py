"""What each kind of model failure ends as, through the real API (/ask and /ask/stream)
over the real small corpus, with a stand-in model that answers in a chosen way:
verified only when the cited units support the sentence AND address the question."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, StandInLLM

DOSE_QUESTION = "What is the recommended starting dose of atorvastatin?"
# The label has no boxed warning: the passages name atorvastatin (so there is no early
# abstention), but none states a boxed warning.
NO_BOXED_WARNING = "What does the boxed warning of atorvastatin say?"


@pytest.fixture
def ask(make_services, standin_llm: StandInLLM, keys: Keys, settings):  # type: ignore[no-untyped-def]
    yield from _asker(make_services, standin_llm, keys, settings)


@pytest.fixture
def ask_once(make_services, standin_llm: StandInLLM, keys: Keys, settings):  # type: ignore[no-untyped-def]
    """The model asked once: no second look with the addressing units (the default)."""
    yield from _asker(make_services, standin_llm, keys, settings, second_look=False)


@pytest.fixture
def ask_twice(make_services, standin_llm: StandInLLM, keys: Keys, settings):  # type: ignore[no-untyped-def]
    """With MEDCITE_SECOND_LOOK on."""
    yield from _asker(make_services, standin_llm, keys, settings, second_look=True)


def _asker(make_services, standin_llm: StandInLLM, keys: Keys, settings,  # type: ignore[no-untyped-def]
           **overrides: Any):
    from app.api.main import create_app

    services = make_services(llm_base_url=standin_llm.url, llm_structured_output="json_object",
                             rate_limit_per_minute=0, **overrides)
    with TestClient(create_app(settings, services)) as api:
        def call(question: str, mode: str, stream: bool = False, **body: Any) -> dict[str, Any]:
            standin_llm.set_mode(mode)
            auth = {"Authorization": f"Bearer {keys.clinician}"}
            payload = {"question": question, **body}
            if not stream:
                r = api.post("/ask", headers=auth, json=payload)
                assert r.status_code == 200, r.text
                return dict(r.json())
            with api.stream("POST", "/ask/stream", headers=auth, json=payload) as r:
                assert r.status_code == 200
                events = _events(r.iter_lines())
            answers = [data for name, data in events if name == "answer"]
            assert len(answers) == 1, events
            return answers[0]
        yield call


def _events(lines: Any) -> list[tuple[str, dict[str, Any]]]:
    out, name = [], None
    for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and name:
            out.append((name, json.loads(line.split(":", 1)[1])))
    return out


@pytest.mark.parametrize("stream", [False, True])
def test_a_faithful_answer_citing_the_dose_unit_is_verified(ask, stream: bool) -> None:  # type: ignore[no-untyped-def]
    body = ask(DOSE_QUESTION, "good", stream=stream)
    assert body["status"] == "verified", body
    cited = body["sentences"][0]["citations"][0]
    passage = next(p for p in body["passages"] if p["id"] == cited["passage_id"])
    # The quote is the unit's own text, at its span: exact by construction.
    assert passage["text"][cited["span_start"]:cited["span_end"]] == cited["quote"]
    assert cited["unit_id"].startswith("P")
    assert "recommended starting dose" in cited["quote"].lower() and " mg" in cited["quote"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("mode", ["header", "header_alone"])
def test_a_copied_passage_header_is_dropped_and_the_sentence_verifies(  # type: ignore[no-untyped-def]
        ask, stream: bool, mode: str) -> None:
    body = ask(DOSE_QUESTION, mode, stream=stream)
    assert body["status"] == "verified", body
    assert not body["removed_sentences"]
    sentence, *more = body["sentences"]
    assert " | " not in sentence["text"] and "effective" not in sentence["text"]
    assert "recommended starting dose" in sentence["text"].lower()
    # Anything after it is the source's own continuation, quoted and marked so.
    assert all(s["quoted_by_server"] and s["quoted_as"] == "continuation" for s in more)


@pytest.mark.parametrize("stream", [False, True])
def test_a_changed_dose_is_never_verified(ask, stream: bool) -> None:  # type: ignore[no-untyped-def]
    body = ask(DOSE_QUESTION, "wrong_dose", stream=stream)
    assert body["status"] != "verified"
    assert not body["sentences"], "an unsupported dose must not be shown as the answer"
    reasons = [r for s in body["removed_sentences"] for c in s["citations"] for r in c["reasons"]]
    assert any(r.startswith("not in the cited text: 31") for r in reasons), reasons
    # The dose unit itself addresses the question: shown verbatim instead.
    assert body["status"] == "evidence_only"
    assert any("starting dose" in e["text"].lower() for e in body["evidence"])


def test_a_swapped_indication_and_population_is_unsupported_whatever_the_coverage(ask) -> None:  # type: ignore[no-untyped-def]
    body = ask(DOSE_QUESTION, "swap_indication")
    assert body["status"] == "evidence_only"
    removed = body["removed_sentences"][0]
    assert removed["status"] == "unsupported"
    reasons = " ".join(removed["citations"][0]["reasons"])
    assert "condition, population or route not in the cited text" in reasons
    assert "hidradenitis" in reasons


@pytest.mark.parametrize("stream", [False, True])
def test_a_unit_copied_with_a_word_swapped_is_never_verified(ask, stream: bool) -> None:  # type: ignore[no-untyped-def]
    body = ask(DOSE_QUESTION, "swap_word", stream=stream)
    assert body["status"] == "evidence_only", body
    reasons = " ".join(r for s in body["removed_sentences"] for c in s["citations"]
                       for r in c["reasons"])
    assert "changes the cited text: 'pancreatic' where it says" in reasons, reasons


def test_a_vacuous_sentence_does_not_verify(ask) -> None:  # type: ignore[no-untyped-def]
    body = ask(DOSE_QUESTION, "vacuous")
    assert body["status"] in ("evidence_only", "abstained")
    assert not body["sentences"]
    assert "states nothing on its own" in " ".join(
        body["removed_sentences"][0]["citations"][0]["reasons"])


@pytest.mark.parametrize("stream", [False, True])
def test_ids_outside_the_prompt_never_become_citations(ask, stream: bool) -> None:  # type: ignore[no-untyped-def]
    body = ask(DOSE_QUESTION, "bad_ids", stream=stream)
    assert body["status"] in ("evidence_only", "abstained")
    assert "well-formed" in (body["status_reason"] or body["abstain_reason"])
    assert not body["sentences"]


def test_malformed_output_ends_in_evidence_not_an_error(ask) -> None:  # type: ignore[no-untyped-def]
    body = ask(DOSE_QUESTION, "malformed")
    assert body["status"] == "evidence_only"
    assert body["evidence"] and all(e["unit_id"] for e in body["evidence"])


def test_supported_but_off_topic_is_never_verified(ask) -> None:  # type: ignore[no-untyped-def]
    body = ask(NO_BOXED_WARNING, "good")
    assert body["status"] == "off_topic", body
    assert body["abstained"] and not body["sentences"]
    assert "does not state a boxed warning" in body["status_reason"]
    assert body["removed_sentences"], "the off-topic sentences stay visible as removed"


def test_off_topic_citation_falls_back_to_the_units_that_answer(ask_once) -> None:  # type: ignore[no-untyped-def]
    body = ask_once(DOSE_QUESTION, "off_topic")
    assert body["status"] == "evidence_only", body
    assert "does not address the question" in body["status_reason"]
    assert any("starting dose" in e["text"].lower() for e in body["evidence"])


@pytest.mark.parametrize("stream", [False, True])
def test_a_second_look_at_the_addressing_units_alone_can_answer(  # type: ignore[no-untyped-def]
        ask_twice, standin_llm: StandInLLM, stream: bool) -> None:
    """Off topic first, then asked again with only the units that address the question
    and their neighbours: the second answer is verified and cites one of them."""
    body = ask_twice("What is the maximum dose of atorvastatin for children with heterozygous FH?",
               "off_topic>good", stream=stream)
    assert body["status"] == "verified", body
    first, second = standin_llm.prompts
    shown = [set(re.findall(r"^\[(P\d+\.\d+)\]", p, re.M)) for p in (first, second)]
    assert shown[1] and shown[1] < shown[0]
    assert "second_look" in body["timings_ms"]
    cited = {c["unit_id"] for s in body["sentences"] for c in s["citations"]}
    assert cited <= shown[1]


def test_a_second_look_that_misses_again_leaves_the_evidence(  # type: ignore[no-untyped-def]
        ask_twice, ask_once, standin_llm: StandInLLM) -> None:
    body = ask_twice(DOSE_QUESTION, "off_topic>vacuous")
    assert body["status"] == "evidence_only", body
    assert len(standin_llm.prompts) == 2  # asked twice, never a third time
    # Off (the default): asked once.
    assert ask_once(DOSE_QUESTION, "off_topic>good")["status"] == "evidence_only"
    assert len(standin_llm.prompts) == 1
    assert any("starting dose" in e["text"].lower() for e in body["evidence"])


def test_a_sentence_citing_the_wrong_unit_is_cited_to_the_unit_that_states_it(ask) -> None:  # type: ignore[no-untyped-def]
    body = ask(DOSE_QUESTION, "miscite")
    assert body["status"] == "verified", body
    (citation,) = body["sentences"][0]["citations"]
    assert any(r.startswith("the model cited P") and "the sentence is stated by" in r
               for r in citation["reasons"])
    assert "10 or 20 mg" in citation["quote"]  # the adults' dose unit


def test_strict_keeps_only_supported_sentences(ask) -> None:  # type: ignore[no-untyped-def]
    body = ask(DOSE_QUESTION, "good", strict=True)
    assert body["status"] == "verified"
    assert all(s["status"] in ("supported", "partial") for s in body["sentences"])


def test_the_prompt_offers_only_units_and_the_schema_enumerates_them(
    ask, standin_llm: StandInLLM  # type: ignore[no-untyped-def]
) -> None:
    ask(DOSE_QUESTION, "good")
    prompt = standin_llm.prompts[-1]
    shown = re.findall(r"^\[(P\d+\.\d+)\]", prompt, re.M)
    assert shown and "Question: " + DOSE_QUESTION in prompt
    schema = standin_llm.handler.bodies[-1]["response_format"]["schema"]
    enum = schema["properties"]["sentences"]["items"]["properties"]["units"]["items"]["enum"]
    assert enum == shown


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_leaving_out_the_asked_populations_contraindication_gets_it(  # type: ignore[no-untyped-def]
        ask, stream: bool) -> None:
    """The stand-in answers from the counselling sentence (birth control while using
    LIPITOR), true and cited, but silent on the contraindication the retrieved
    Contraindications section states for women who are or may become pregnant: seen
    verified with the real model. The server quotes that section's units first."""
    body = ask("Trying to conceive: should women of childbearing age keep using birth "
               "control while taking LIPITOR?", "good", stream=stream)
    assert body["status"] == "verified", body
    first, *rest = body["sentences"]
    assert "fetal harm" in first["text"] and "pregnant" in first["text"]
    assert all(c["status"] == "supported" for c in first["citations"])
    assert first["quoted_by_server"] and not any(
        s["quoted_by_server"] and s["quoted_as"] != "continuation" for s in rest)
    assert any("quoted by the server" in r for c in first["citations"] for r in c["reasons"])
    by_id = {p["id"]: p for p in body["passages"]}
    assert all("CONTRAINDICATIONS" in " ".join(by_id[c["passage_id"]]["provenance"]
                                               ["section_path"]).upper()
               for c in first["citations"])
    assert any("birth control" in s["text"] for s in rest)
    # The counselling sentence's next one is on the question ("trying to conceive"): the
    # source goes on, quoted by the server right after the sentence it continues.
    mine = next(i for i, s in enumerate(rest) if "birth control" in s["text"])
    after = rest[mine + 1]
    assert after["quoted_as"] == "continuation" and "trying to conceive" in after["text"]
    assert any("right before or after a cited unit" in r
               for c in after["citations"] for r in c["reasons"])


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_leaving_out_the_asked_conditions_warning_gets_it(  # type: ignore[no-untyped-def]
        ask, stream: bool) -> None:
    """A risk question naming a condition that the label's warnings name (a recent stroke:
    "A higher incidence of hemorrhagic stroke was seen in patients ... with stroke or TIA
    within the previous 6 months"). The stand-in answers from the unit sharing most words
    with the question, the myopathy warning, true and cited but silent on the stroke: the
    server quotes the stroke warning first, labelled as a warning."""
    body = ask("Which muscle risks increase when LIPITOR is used concomitantly with "
               "cyclosporine, and any concern after a recent stroke?", "good", stream=stream)
    assert body["status"] == "verified", body
    first, *rest = body["sentences"]
    assert first["quoted_by_server"] and first["quoted_as"] == "warning"
    assert "hemorrhagic stroke" in first["text"]
    assert all(c["status"] == "supported" for c in first["citations"])
    assert any("quoted by the server" in r and "condition asked about" in r
               for c in first["citations"] for r in c["reasons"])
    by_id = {p["id"]: p for p in body["passages"]}
    assert all("WARNING" in " ".join(by_id[c["passage_id"]]["provenance"]["section_path"])
               .upper() for c in first["citations"])
    # The model's own sentence stays, after it, not relabelled.
    assert rest and not any(s["quoted_by_server"] for s in rest)
    assert any("cyclosporine" in s["text"] for s in rest)


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_citing_the_status_criteria_gets_the_drugs_own_criteria(  # type: ignore[no-untyped-def]
        ask, stream: bool) -> None:
    """The stand-in answers from the lipotropics page's Non-Preferred criteria, which
    govern pitavastatin without naming it (their drugs come from the page's rows): true,
    cited and on the question, but silent on what pitavastatin alone needs (seen verified
    with the real model for Livalo). The server quotes the page's criteria headed by the
    drug after the model's sentence, labelled as the payer's criteria for this drug."""
    body = ask("What does Ohio Medicaid need before approving pitavastatin: an inadequate "
               "clinical response of at least 30 days with at least one preferred drug in "
               "the same drug class?", "good", stream=stream)
    assert body["status"] == "verified", body
    first, *rest = body["sentences"]
    assert not first["quoted_by_server"] and "at least one preferred" in first["text"]
    quoted = [s for s in rest if s["quoted_as"] == "criteria"]
    assert len(quoted) == 1 and quoted[0]["quoted_by_server"], body["sentences"]
    assert "two preferred drugs in the same drug class" in quoted[0]["text"]
    by_id = {p["id"]: p for p in body["passages"]}
    paths = [by_id[c["passage_id"]]["provenance"]["section_path"]
             for c in quoted[0]["citations"]]
    assert paths and all("Pitavastatin (Livalo)" in path[-1] for path in paths)
    governing = by_id[first["citations"][0]["passage_id"]]["provenance"]
    assert "pitavastatin" in governing["applies_to"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_substance_the_sources_never_name_abstains_before_the_model(  # type: ignore[no-untyped-def]
        ask, standin_llm: StandInLLM, stream: bool) -> None:
    """Seen partially verified: "What is the dose of unobtainium for gout?" answered from
    the gout page's allopurinol row, its product strength read as a dose. The lipotropics
    page's rows state strengths the same way; a word the drug dictionary does not know,
    where the question names what the dose is of, must be named by the sources."""
    before = len(standin_llm.prompts)
    body = ask("What is the dose of unobtainium for hypercholesterolemia?", "good",
               stream=stream)
    assert body["status"] == "abstained", body
    assert "unobtainium" in body["abstain_reason"]
    assert len(standin_llm.prompts) == before  # decided without the model
    # The closest evidence is still shown.
    assert body["passages"]
