"""Answer-quality evaluation: the real `/ask` over the corpora question set.

Per question it records whether the service answered or abstained, whether a supported
citation lands on the gold passage (same file, containing the gold text), the share of
answer sentences whose citations verify, and the latency. Unanswerable questions (no
gold) score when the service abstains. The same run also scores a baseline that answers
from the same retrieval without verification (the raw model output), so the table shows
what verification and abstention change.

    medcite eval-answers [--limit N] [--json out.json]

It needs an ingested corpus (`medcite ingest`) and the generator; on this 2-core CPU a
question takes 20-60 s, so the default limit is small.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass

from app.auth import Principal, Role
from app.generator import MalformedOutput
from app.schemas import AskRequest, AskResponse, CitationStatus
from app.services import Services, build_services
from app.settings import Settings
from retrieval.evaluation.datasets import load_corpora_questions
from retrieval.evaluation.relevance import EvalQuestion, Gold, Hit, matches


@dataclass
class AnswerResult:
    qid: str
    answerable: bool
    abstained: bool
    gold_cited: bool  # a supported/partial citation rests on a gold passage
    sentences: int
    supported_sentences: int
    latency_s: float
    baseline_answered: bool  # the unverified model output had sentences
    baseline_gold_cited: bool


def _gold_cited(response: AskResponse, gold: tuple[Gold, ...]) -> bool:
    passages = {p.id: p for p in response.passages}
    for sentence in response.sentences:
        for c in sentence.citations:
            p = passages.get(c.passage_id)
            if p is None or c.status not in (CitationStatus.supported, CitationStatus.partial):
                continue
            hit = Hit(p.provenance.source_file, p.text, p.score)
            if any(matches(hit, g) for g in gold):
                return True
    return False


def evaluate_question(services: Services, question: EvalQuestion) -> AnswerResult:
    who = Principal(key_id="eval", name="eval", role=Role.clinician, groups=["public"])
    request = AskRequest(question=question.text)
    started = time.perf_counter()
    response = services.answers.ask(request, who)
    latency = time.perf_counter() - started
    # Baseline: the same passages, the model's own answer, no verification or abstention.
    draft = services.answers.retrieve(request, who)
    try:
        raw = services.generator.generate(services.answers.messages(draft), phi=False)
        cited_labels = {c.passage.strip("[] ") for s in raw.sentences for c in s.citations}
        by_label = {f"P{i + 1}": p for i, p in enumerate(draft.passages)}
        base_hits = [Hit(by_label[x].provenance.source_file, by_label[x].text, 0.0)
                     for x in cited_labels if x in by_label]
        base_answered = bool(raw.sentences) and not raw.abstain
    except MalformedOutput:
        base_hits, base_answered = [], False
    ok = {CitationStatus.supported, CitationStatus.partial}
    return AnswerResult(
        qid=question.qid,
        answerable=question.answerable,
        abstained=response.abstained,
        gold_cited=_gold_cited(response, question.gold),
        sentences=len(response.sentences),
        supported_sentences=sum(s.status in ok for s in response.sentences),
        latency_s=round(latency, 1),
        baseline_answered=base_answered,
        baseline_gold_cited=any(matches(h, g) for h in base_hits for g in question.gold),
    )


def summarise(results: list[AnswerResult]) -> dict[str, float]:
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]

    def share(items: list[AnswerResult], pred) -> float:  # type: ignore[no-untyped-def]
        return round(sum(bool(pred(r)) for r in items) / len(items), 3) if items else float("nan")

    sentences = sum(r.sentences for r in results)
    return {
        "questions": len(results),
        "answered (answerable)": share(answerable, lambda r: not r.abstained),
        "gold passage cited and verified": share(answerable, lambda r: r.gold_cited),
        "abstained (unanswerable)": share(unanswerable, lambda r: r.abstained),
        "sentences verified": round(sum(r.supported_sentences for r in results)
                                    / sentences, 3) if sentences else float("nan"),
        "median latency s": statistics.median(r.latency_s for r in results) if results else 0,
        "baseline answered (answerable)": share(answerable, lambda r: r.baseline_answered),
        "baseline gold cited (unverified)": share(answerable, lambda r: r.baseline_gold_cited),
        "baseline answered (unanswerable)": share(unanswerable, lambda r: r.baseline_answered),
    }


def pick(questions: list[EvalQuestion], limit: int) -> list[EvalQuestion]:
    """A spread over tags, answerable and unanswerable alike, in file order."""
    unanswerable = [q for q in questions if not q.answerable]
    answerable = [q for q in questions if q.answerable]
    n_un = max(1, limit // 4)
    step = max(1, len(answerable) // max(1, limit - n_un))
    return answerable[::step][: limit - n_un] + unanswerable[:n_un]


def main(args: argparse.Namespace, settings: Settings) -> int:
    questions = pick(load_corpora_questions(), args.limit)
    services = build_services(settings)
    try:
        results = []
        for q in questions:
            r = evaluate_question(services, q)
            results.append(r)
            base = "answered" if r.baseline_answered else "abstained"
            print(f"{q.qid:<32} {'abstained' if r.abstained else 'answered':<9} "
                  f"gold={'y' if r.gold_cited else 'n'} verified={r.supported_sentences}/"
                  f"{r.sentences} {r.latency_s:>5.1f}s  baseline={base}", flush=True)
    finally:
        services.close()
    summary = summarise(results)
    print("\n| metric | value |\n|---|---|")
    for key, value in summary.items():
        print(f"| {key} | {value} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"summary": summary, "results": [asdict(r) for r in results]}, fh, indent=2)
    return 0
