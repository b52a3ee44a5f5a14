"""The answer grading (app/evaluation/answers/grading.py) on hand-made answers with
known scores: it must be able to fail."""

from __future__ import annotations

from app.evaluation.answers.grading import by_kind, fact_stated, grade, stratified, summarise
from app.evaluation.relevance import EvalQuestion, Gold

LABEL = "drug-labels/fda-spl/lipitor-orig.xml"
DOSE = EvalQuestion("dose", "Starting dose of atorvastatin?",
                    (Gold(LABEL, "recommended starting dose of LIPITOR is 10 or 20 mg"),),
                    kind="dose", key_facts=(("10 or 20 mg",), ("once daily", "once a day")))
NONE = EvalQuestion("none", "Dose of atorvastatin for hidradenitis suppurativa?", (),
                    kind="unanswerable")


def test_key_facts_match_any_form_case_and_space_insensitively() -> None:
    assert fact_stated(["once daily", "once a day"], "Take it ONCE   A DAY.")
    assert not fact_stated(["10 or 20 mg"], "10 mg or 20 mg")
    # The label's ordinal-indicator degree sign is a degree sign, and nothing else is.
    assert fact_stated(["36°F to 46°F"], "Store at 36ºF to 46ºF (2ºC to 8ºC).")
    assert not fact_stated(["36°F to 46°F"], "Store at 36oF to 46oF.")


def test_correct_needs_every_fact_and_a_gold_citation() -> None:
    right = grade(DOSE, "verified", "Start at 10 or 20 mg once daily.", [LABEL], 1.0)
    assert right.correct and not right.wrong_but_verified
    half = grade(DOSE, "verified", "Start at 10 or 20 mg.", [LABEL], 1.0)
    assert not half.correct and half.wrong_but_verified and half.facts_stated == 1
    elsewhere = grade(DOSE, "verified", "Start at 10 or 20 mg once daily.", ["other.md"], 1.0)
    assert not elsewhere.correct and elsewhere.wrong_but_verified


def test_evidence_only_and_abstentions_are_never_correct_or_wrong_but_verified() -> None:
    quoted = grade(DOSE, "evidence_only", "10 or 20 mg once daily", [LABEL], 1.0)
    assert quoted.evidence_only and not quoted.correct and not quoted.wrong_but_verified
    for status in ("abstained", "off_topic"):
        r = grade(DOSE, status, "", [], 1.0)
        assert r.abstained and not r.correct


def test_summary_figures_on_a_known_mix() -> None:
    rows = [
        grade(DOSE, "verified", "Start at 10 or 20 mg once daily.", [LABEL], 10.0, 40),
        grade(DOSE, "verified", "Start at 40 mg.", [LABEL], 20.0, 20),  # wrong, verified
        grade(DOSE, "abstained", "", [], 2.0, None),  # false abstention
        grade(DOSE, "evidence_only", "10 or 20 mg once daily", [LABEL], 3.0, None),
        grade(NONE, "abstained", "", [], 1.0, None),  # right
        grade(NONE, "verified", "Start at 40 mg.", [LABEL], 30.0, 30),  # wrong, verified
    ]
    s = summarise(rows)
    assert s["answerable"] == 4
    assert s["correctness"] == 0.25
    assert s["wrong-but-verified"] == round(2 / 6, 3)
    assert s["false abstention"] == 0.25
    assert s["evidence-only (answerable)"] == 0.25
    assert s["evidence-only with every key fact"] == 0.25
    assert s["abstention on unanswerable"] == 0.5
    assert s["completeness (composed answers)"] == 0.5  # (2/2 + 0/2) / 2
    assert s["latency p50 s"] == 6.5 and s["latency p95 s"] == 30.0
    assert s["tokens generated (mean)"] == 30.0
    assert by_kind(rows)["unanswerable"] == {"n": 2, "correct": 0, "wrong-but-verified": 1,
                                            "abstained": 1, "evidence-only": 0}


def test_stratified_takes_every_kind_before_a_second_of_any() -> None:
    qs = [EvalQuestion(f"{k}{i}", "q", (), kind=k) for k in "abc" for i in range(5)]
    picked = stratified(qs, 4)
    assert [q.kind for q in picked[:3]] == ["a", "b", "c"] and len(picked) == 4


def test_stratified_picks_every_question_once_before_any_twice() -> None:
    # Steps of 7 over a kind of 7 or 14 questions kept picking the first: a run of 40
    # held-out questions asked 34.
    for size in (1, 5, 7, 13, 14, 21, 49):
        qs = [EvalQuestion(f"a{i}", "q", (), kind="a") for i in range(size)]
        picked = stratified(qs, size)
        assert len({q.qid for q in picked}) == size, size
