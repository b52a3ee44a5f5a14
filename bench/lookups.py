"""Formulary lookups (`app/answering/record_answer.py`) on every question of
eval/corpora_questions.jsonl, graded against the key facts written from the documents,
without a model (issue #20).

For each question, `AnswerService.prepare` as `/ask` calls it (retrieval, the abstention
check, then the lookup, all before the admission gate): the lookup's answer when it
verifies, else the question would go to the model. Reports how
many questions a lookup answered, how many of those are correct (every key fact, a gold
document cited: `app/evaluation/answers/grading.py`), how many are wrong but verified
(the product's worst outcome), how many of the unanswerable questions it answered at
all (it must not), and the time a lookup takes next to retrieval alone.

    MEDCITE_DATA_DIR=data .venv/bin/python -m bench.lookups [-v]
"""

from __future__ import annotations

import argparse
import statistics

from app.evaluation.answers.grading import grade
from app.evaluation.datasets import load_corpora_questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", action="store_true", help="print every lookup's answer")
    args = parser.parse_args()
    from app.core.container import build_services
    from app.core.settings import Settings
    from app.evaluation.answers.runner import WHO, _request

    # No generation: a closed port for the generator, which a lookup never calls.
    services = build_services(Settings(LLM_BASE_URL="http://127.0.0.1:9/v1"))
    answered = correct = wrong_verified = on_unanswerable = questions = 0
    retrieval_ms: list[float] = []
    lookup_ms: list[float] = []
    try:
        for q in load_corpora_questions():
            questions += 1
            # prepare() is retrieval, the abstention check, then the lookup.
            draft, response = services.answers.prepare(_request(q), WHO)
            retrieval_ms.append(draft.timings.get("retrieval", 0.0))
            if response is None or response.answered_from != "records":
                continue
            lookup_ms.append(response.timings_ms.get("lookup", 0.0))
            answered += 1
            cited = {p.id for s in response.sentences for c in s.citations
                     for p in response.passages if c.passage_id == p.id}
            sources = sorted({p.provenance.source_file for p in response.passages
                              if p.id in cited})
            text = " ".join(s.text for s in response.sentences)
            g = grade(q, response.status.value, text, sources, 0.0)
            correct += g.correct
            wrong_verified += g.wrong_but_verified
            on_unanswerable += not q.answerable
            if args.v or not g.correct:
                mark = "ok " if g.correct else "BAD"
                print(f"[{mark}] {q.qid} {g.facts_stated}/{g.facts_total} facts, gold cited "
                      f"{g.gold_cited} | {q.text}\n      {text[:300]}")
    finally:
        services.close()
    print(f"questions: {questions}; answered by a lookup: {answered} "
          f"(correct {correct}, wrong but verified {wrong_verified}, "
          f"on unanswerable questions {on_unanswerable})")
    if lookup_ms:
        print(f"retrieval p50 {statistics.median(retrieval_ms):.0f} ms; lookup after it "
              f"p50 {statistics.median(lookup_ms):.0f} ms, max {max(lookup_ms):.0f} ms")


if __name__ == "__main__":
    main()
