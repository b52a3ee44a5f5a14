"""CI guard on answer quality: a small fixed subset of eval/corpora_questions.jsonl
(gold written from the documents), answered by the real CPU generator over the small
test corpus and graded by app/evaluation/answers/grading.py (never by the verifier). A
collapse of correct answers, or verified answers that state the wrong thing, fails CI."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.answering.models import AskResponse
from app.evaluation.answers import grading
from app.evaluation.datasets import load_corpora_questions
from tests.conftest import Keys

# Answerable from the small corpus (tests/conftest.py SMALL_CORPUS), one per kind, and
# one that sounds answerable but is not (atorvastatin is not on the example QHP plan).
GUARD = ("label-atorva-start", "oh-pcsk9", "ncd-lipid-frequency", "qhp-tylenol", "none-14")
# Set loosely: one calibration run of the 1.5B model on these five (2026-12-04) is all
# there is yet, and the eval run showed a correct dose answer becoming a
# verified-but-incomplete one between runs. Raise them as runs accumulate.
MIN_CORRECT = 1  # of the 4 answerable
MAX_WRONG_BUT_VERIFIED = 1  # of the 5


def test_answer_quality_floor_on_the_fixed_subset(api: TestClient, keys: Keys) -> None:
    questions = {q.qid: q for q in load_corpora_questions()}
    rows = []
    for qid in GUARD:
        q = questions[qid]
        r = api.post("/ask", headers={"Authorization": f"Bearer {keys.clinician}"},
                     json={"question": q.text})
        assert r.status_code == 200, r.text
        response = AskResponse.model_validate(r.json())
        sources = {p.id: p.provenance.source_file for p in response.passages}
        cited = [sources[c.passage_id] for s in response.sentences for c in s.citations]
        text = " ".join(s.text for s in response.sentences)
        rows.append(grading.grade(q, response.status.value, text, cited,
                                  response.timings_ms.get("generation", 0) / 1000))
    summary = {r.qid: (r.status, r.correct, r.wrong_but_verified, r.text[:200]) for r in rows}
    assert sum(r.correct for r in rows if r.answerable) >= MIN_CORRECT, summary
    assert sum(r.wrong_but_verified for r in rows) <= MAX_WRONG_BUT_VERIFIED, summary
