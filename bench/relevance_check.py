"""The answer relevance test (`app/answering/relevance.py addresses`) on the right evidence
and on the wrong one, without a model (issue #20).

For every answerable question of eval/corpora_questions.jsonl, retrieval as `/ask` does it
(`AnswerService.prepare`, the data folder's store), then:

* accept: the retrieved units that state one of the question's key facts (graded by
  `app/evaluation/answers/grading.py`, from the documents) - what a correct answer cites.
  Rejecting them makes a correct answer impossible to verify.
* reject: each retrieved passage from a document that is not gold for the question and
  whose units state no key fact, as one citation set. Accepting it lets an answer that
  does not address the question pass. An upper bound on false acceptance: some of those
  passages are on topic (a drug's row in the Preferred Drug List when its category page
  is the gold).

    MEDCITE_DATA_DIR=data .venv/bin/python -m bench.relevance_check --cache /tmp/drafts.pkl -v
"""

from __future__ import annotations

import argparse
import collections
import pickle
from pathlib import Path
from typing import Any

from app.answering.pipeline import evidence_from
from app.answering.relevance import addresses, question_focus
from app.answering.units import split_passage
from app.evaluation.answers.grading import fact_stated
from app.evaluation.datasets import load_corpora_questions


def retrieve_all(cache: Path | None) -> dict[str, Any]:
    """qid -> (passages, patient, early status) for every answerable question."""
    if cache is not None and cache.exists():
        return pickle.loads(cache.read_bytes())  # type: ignore[no-any-return]
    from app.core.container import build_services
    from app.core.settings import Settings
    from app.evaluation.answers.runner import WHO, _request

    # Retrieval only: a closed port for the generator, which is never called.
    services = build_services(Settings(LLM_BASE_URL="http://127.0.0.1:9/v1"))
    out = {}
    try:
        for q in load_corpora_questions():
            if q.answerable:
                draft, early = services.answers.prepare(_request(q), WHO)
                out[q.qid] = (draft.passages, draft.patient,
                              early.status.value if early else None)
    finally:
        services.close()
    if cache is not None:
        cache.write_bytes(pickle.dumps(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="keep the retrieved passages here")
    parser.add_argument("-v", action="count", default=0,
                        help="list rejected right evidence (-vv: accepted wrong evidence)")
    args = parser.parse_args()
    questions = {q.qid: q for q in load_corpora_questions()}
    right = right_ok = wrong = wrong_ok = 0
    reasons: collections.Counter[str] = collections.Counter()
    for qid, (passages, patient, _) in retrieve_all(args.cache).items():
        q = questions[qid]
        focus = question_focus(q.text, patient)
        gold_files = {g.source_file for g in q.gold}
        facts, off = [], collections.defaultdict(list)
        for i, p in enumerate(passages):
            for u in split_passage(p, i):
                if any(fact_stated(f, u.reading(p)) for f in q.key_facts):
                    facts.append((u, p))
                elif p.provenance.source_file not in gold_files:
                    off[p.id].append((u, p))
        for units in off.values():
            wrong += 1
            if not addresses(focus, evidence_from(units)):
                wrong_ok += 1
                if args.v >= 2:
                    p = units[0][1]
                    print(f"accepted wrong: {qid} {p.provenance.source_file} "
                          f"{' '.join(p.text.split())[:90]}")
        if not facts:
            continue
        right += 1
        problems = addresses(focus, evidence_from(facts))
        if not problems:
            right_ok += 1
            continue
        reasons.update(" ".join(x.split()[3:5]) for x in problems)
        if args.v:
            print(f"rejected right: {qid} | {q.text[:70]} | {problems}")
    print(f"right evidence accepted: {right_ok}/{right} ({right_ok / max(right, 1):.3f})")
    print(f"off-gold passages accepted: {wrong_ok}/{wrong} ({wrong_ok / max(wrong, 1):.3f})")
    print("rejections:", dict(reasons.most_common()))


if __name__ == "__main__":
    main()
