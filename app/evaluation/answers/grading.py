"""Grading answers against gold written from the documents, never by the verifier that
produced them.

A question carries its gold documents and 1–4 key facts (each a list of acceptable
surface forms: eval/README.md). An answer is **correct** when it is a composed answer
(not an abstention, not evidence-only), states every key fact, and cites a gold
document. **Wrong-but-verified** is the product's worst outcome: status `verified` while
not correct (an unanswerable question answered `verified` counts). Evidence-only answers
are counted apart: they quote the sources and assert nothing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.evaluation.relevance import EvalQuestion, normalise

# Statuses under which nothing is asserted to the user as an answer.
NO_ANSWER = frozenset({"abstained", "off_topic"})
EVIDENCE_ONLY = "evidence_only"


@dataclass
class Graded:
    qid: str
    kind: str
    answerable: bool
    status: str  # the system's own status (a baseline: "answered" or "abstained")
    latency_s: float
    tokens: int | None
    text: str  # what the user is shown as the answer (or the evidence quotes)
    cited_sources: list[str] = field(default_factory=list)
    facts_stated: int = 0
    facts_total: int = 0
    gold_cited: bool = False
    # What the model wrote that was not shown (unsupported sentences a status removed):
    # for reading a run, never graded.
    withheld: str = ""
    # The system's own reason for its status (why it abstained, went off-topic or quoted
    # evidence): for reading a run, never graded.
    reason: str = ""

    @property
    def abstained(self) -> bool:
        return self.status in NO_ANSWER

    @property
    def evidence_only(self) -> bool:
        return self.status == EVIDENCE_ONLY

    @property
    def composed(self) -> bool:
        return not self.abstained and not self.evidence_only

    @property
    def correct(self) -> bool:
        return (self.answerable and self.composed and self.gold_cited
                and self.facts_stated == self.facts_total)

    @property
    def wrong_but_verified(self) -> bool:
        return self.status == "verified" and not self.correct


# Labels print the degree sign as the ordinal indicator ("36ºF"), which NFKC turns into
# an "o": an answer copying the label's temperature would not match "36°F".
_DEGREE = str.maketrans({"º": "°"})


def fact_stated(forms: Sequence[str], text: str) -> bool:
    haystack = " ".join(normalise(text.translate(_DEGREE)).split())
    return any(" ".join(normalise(f.translate(_DEGREE)).split()) in haystack for f in forms)


def grade(
    q: EvalQuestion, status: str, text: str, cited_sources: list[str], latency_s: float,
    tokens: int | None = None, withheld: str = "", reason: str = "",
) -> Graded:
    gold_files = {g.source_file for g in q.gold}
    return Graded(
        qid=q.qid, kind=q.kind, answerable=q.answerable, status=status, latency_s=latency_s,
        tokens=tokens, text=text, cited_sources=cited_sources, withheld=withheld, reason=reason,
        facts_stated=sum(fact_stated(forms, text) for forms in q.key_facts),
        facts_total=len(q.key_facts),
        gold_cited=bool(gold_files & set(cited_sources)),
    )


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _percentile(values: list[float], q: float) -> float | None:
    """The median for q = 0.5, else the nearest-rank percentile."""
    if not values:
        return None
    if q == 0.5:
        return round(statistics.median(values), 1)
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)


def summarise(rows: list[Graded]) -> dict[str, object]:
    answerable = [r for r in rows if r.answerable]
    unanswerable = [r for r in rows if not r.answerable]
    composed = [r for r in answerable if r.composed]
    tokens = [r.tokens for r in rows if r.tokens is not None]
    latencies = [r.latency_s for r in rows]
    return {
        "questions": len(rows),
        "answerable": len(answerable),
        "correctness": _share(sum(r.correct for r in answerable), len(answerable)),
        "completeness (composed answers)": (
            round(statistics.mean(r.facts_stated / r.facts_total for r in composed
                                  if r.facts_total), 3)
            if any(r.facts_total for r in composed) else None),
        "wrong-but-verified": _share(sum(r.wrong_but_verified for r in rows), len(rows)),
        "false abstention": _share(sum(r.abstained for r in answerable), len(answerable)),
        "evidence-only (answerable)": _share(sum(r.evidence_only for r in answerable),
                                             len(answerable)),
        "evidence-only with every key fact": _share(
            sum(r.evidence_only and r.facts_stated == r.facts_total for r in answerable),
            len(answerable)),
        "abstention on unanswerable": _share(sum(r.abstained for r in unanswerable),
                                             len(unanswerable)),
        "evidence-only on unanswerable": _share(sum(r.evidence_only for r in unanswerable),
                                                len(unanswerable)),
        "latency p50 s": _percentile(latencies, 0.5),
        "latency p95 s": _percentile(latencies, 0.95),
        "tokens generated (mean)": round(statistics.mean(tokens), 1) if tokens else None,
    }


def by_kind(rows: list[Graded]) -> dict[str, dict[str, object]]:
    kinds: dict[str, list[Graded]] = {}
    for r in rows:
        kinds.setdefault(r.kind or "-", []).append(r)
    return {
        k: {"n": len(v), "correct": sum(r.correct for r in v),
            "wrong-but-verified": sum(r.wrong_but_verified for r in v),
            "abstained": sum(r.abstained for r in v),
            "evidence-only": sum(r.evidence_only for r in v)}
        for k, v in sorted(kinds.items())
    }


def stratified(questions: list[EvalQuestion], limit: int) -> list[EvalQuestion]:
    """Up to `limit` questions, taken round-robin over the kinds in file order, so every
    kind is represented before any kind gets a second question."""
    kinds: dict[str, list[EvalQuestion]] = {}
    for q in questions:
        kinds.setdefault(q.kind or "-", []).append(q)
    out: list[EvalQuestion] = []
    depth = 0
    while len(out) < limit and any(len(v) > depth for v in kinds.values()):
        for group in kinds.values():
            if len(group) > depth and len(out) < limit:
                out.append(group[_spread(depth, len(group))])
        depth += 1
    return out


def _spread(depth: int, size: int) -> int:
    """The `depth`-th pick of a kind's questions, spread over the kind (its questions are
    grouped by source document): steps of 7, or the next step coprime with the kind's
    size, so that every question is picked once before any twice (steps of 7 over a kind
    of 7 or 14 questions kept picking the first and dropped six of 40 from a run)."""
    step = next(s for s in range(7, 7 + size + 1) if math.gcd(s, size) == 1)
    return (depth * step) % size
