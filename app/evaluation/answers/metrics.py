"""Answer-quality metrics, the same for every system compared (pure functions).

A system's answer is reduced to `Scored`: sentences, each with the passages it cites.
Citations are judged ALCE-style (Gao et al., 2023) by one judge for all systems: the
passage text alone against the sentence, ignoring any quote a system gave, with the
deterministic verifier of app/answering/citation_checks.py (sentence aligned in the passage, or
a passage
sentence covering its content words, then numbers, units, dates, negation and drug names
checked). No NLI model is packaged, and the small CPU model is a poor judge
(bench/RESULTS-answers.md), so this is the strongest judge available here.

* citation recall: share of answer sentences that their cited passages support (any one
  judged supported or partial; a sentence without citation counts as unsupported).
* citation precision: share of citations that support their sentence on their own.
* gold (question set only): share of answers citing a gold passage (recall) and share of
  cited passages that are gold (precision).
* exact-number agreement: share of the numbers, doses, units, frequencies and dates
  written in answer sentences that the cited passages state (normalised: 10 mg = 10mg).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from app.answering.citation_checks import (
    FREQUENCIES,
    dates,
    missing_quantities,
    quantities,
    verify_sentence,
)
from app.answering.models import CitationStatus
from app.evaluation.relevance import Gold, Hit, matches
from retrieval.models import Passage

_SUPPORTS = (CitationStatus.supported, CitationStatus.partial)
_WORD = re.compile(r"[a-z]+")
# What a free-text answer says when it declines (the baseline has no abstain flag).
_DECLINES = re.compile(
    r"\b(?:not (?:found|mentioned|provided|specified|stated|available|contain\w*|address\w*)|"
    r"no (?:information|mention|relevant)|(?:do|does|did) not (?:provide|mention|contain|"
    r"specify|state|address|include|say)|cannot (?:answer|determine|be determined)|"
    r"(?:is|are) not (?:helpful|relevant)|unable to)\b",
    re.IGNORECASE,
)


@dataclass
class Scored:
    """One system's answer to one question, as the metrics see it."""

    qid: str
    answerable: bool
    abstained: bool
    latency_s: float
    sentences: list[tuple[str, list[Passage]]] = field(default_factory=list)
    decision: str | None = None  # PubMedQA: yes / no / maybe
    label: str | None = None  # PubMedQA gold decision
    gold: tuple[Gold, ...] = ()
    why_abstained: str | None = None  # the system's own reason, for reading the results


def looks_like_declining(text: str) -> bool:
    return not text.strip() or bool(_DECLINES.search(text))


def judge_citations(sentence: str, cited: list[Passage]) -> list[bool]:
    """Whether each cited passage, on its own, supports the sentence."""
    out = []
    for p in cited:
        s = verify_sentence(sentence, [("P", "")], {"P": p})
        out.append(s.status in _SUPPORTS)
    return out


def sentence_supported(sentence: str, cited: list[Passage]) -> bool:
    """Whether the cited passages together support the sentence (numbers and drug names
    may come from different passages)."""
    if not cited:
        return False
    labels = {f"P{i}": p for i, p in enumerate(cited)}
    s = verify_sentence(sentence, [(k, "") for k in labels], labels)
    return s.status in _SUPPORTS


def number_counts(sentence: str, cited: list[Passage]) -> tuple[int, int]:
    """(numbers, doses, dates and frequencies in the sentence; how many of them the
    cited passages state)."""
    words = _WORD.findall(sentence.lower())
    total = len(quantities(sentence)) + len(dates(sentence)) + sum(w in FREQUENCIES for w in words)
    if not total:
        return 0, 0
    missing = missing_quantities(sentence, " ".join(p.text for p in cited))
    return total, total - min(total, len(missing))


def decision_of(text: str) -> str | None:
    """yes / no / maybe from a free-text answer: its first such word."""
    m = re.search(r"\b(yes|no|maybe)\b", text, re.IGNORECASE)
    return m.group(1).lower() if m else None


def _share(items: Sequence[Scored], pred: Callable[[Scored], bool]) -> float | None:
    return round(sum(bool(pred(r)) for r in items) / len(items), 3) if items else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)


def _is_gold(p: Passage, gold: tuple[Gold, ...]) -> bool:
    return any(matches(Hit(p.provenance.source_file, p.text, 0.0), g) for g in gold)


def _cites_gold(r: Scored) -> bool:
    return not r.abstained and any(_is_gold(p, r.gold) for _, c in r.sentences for p in c)


def summarise(results: list[Scored]) -> dict[str, float | int | None]:
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    answered = [r for r in results if not r.abstained]
    sentences = [(s, c) for r in answered for s, c in r.sentences]
    citations = [ok for s, c in sentences for ok in judge_citations(s, c)]
    numbers = [number_counts(s, c) for s, c in sentences]
    n_total = sum(t for t, _ in numbers)
    out: dict[str, float | int | None] = {
        "questions": len(results),
        "citation recall": round(sum(sentence_supported(s, c) for s, c in sentences)
                                 / len(sentences), 3) if sentences else None,
        "citation precision": round(sum(citations) / len(citations), 3) if citations else None,
        "exact-number agreement": round(sum(a for _, a in numbers) / n_total, 3)
        if n_total else None,
        "numbers checked": n_total,
        "abstention (unanswerable)": _share(unanswerable, lambda r: r.abstained),
        "false abstention (answerable)": _share(answerable, lambda r: r.abstained),
        "latency p50 s": _percentile([r.latency_s for r in results], 50),
        "latency p95 s": _percentile([r.latency_s for r in results], 95),
    }
    with_gold = [r for r in answerable if r.gold and r.gold[0].contains]
    if with_gold:
        cited = [(p, r.gold) for r in with_gold if not r.abstained
                 for _, c in r.sentences for p in c]
        out["gold cited (answerable)"] = _share(with_gold, _cites_gold)
        out["cited passages that are gold"] = round(
            sum(_is_gold(p, gold) for p, gold in cited) / len(cited), 3
        ) if cited else None
    labelled = [r for r in results if r.label]
    if labelled:
        out["yes/no/maybe accuracy"] = _share(labelled, lambda r: r.decision == r.label)
    return out


def consistency(groups: dict[str, list[set[str]]]) -> dict[str, float | None]:
    """Per group of rephrasings, the documents each answer cites: the share of groups
    whose answers all cite the same documents, and the mean pairwise Jaccard overlap."""
    if not groups:
        return {"same documents (all rephrasings)": None, "mean pairwise Jaccard": None}
    same = sum(all(d == docs[0] for d in docs) for docs in groups.values())
    pairs = [
        (len(a & b) / len(a | b)) if (a | b) else 1.0
        for docs in groups.values() for a, b in combinations(docs, 2)
    ]
    return {
        "same documents (all rephrasings)": round(same / len(groups), 3),
        "mean pairwise Jaccard": round(sum(pairs) / len(pairs), 3) if pairs else None,
    }
