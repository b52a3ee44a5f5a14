"""Rank metrics over graded relevance.

Every function takes `gains`: the relevance grade of each retrieved item in rank order
(0 = not relevant; binary relevance is grades of 0 and 1), and where needed `ideal`: the
grades of every relevant item that exists for the question, which fixes how many there
are to find and the best achievable DCG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def recall_at_k(gains: Sequence[float], ideal: Sequence[float], k: int) -> float:
    """Share of the relevant items that appear in the top k."""
    relevant = sum(1 for g in ideal if g > 0)
    if relevant == 0:
        raise ValueError("recall is undefined for a question without relevant items")
    found = sum(1 for g in gains[:k] if g > 0)
    return min(found, relevant) / relevant


def reciprocal_rank(gains: Sequence[float]) -> float:
    """1 / rank of the first relevant item; 0 when none was retrieved."""
    for rank, g in enumerate(gains, start=1):
        if g > 0:
            return 1.0 / rank
    return 0.0


def dcg_at_k(gains: Sequence[float], k: int) -> float:
    # Exponential gain (2^g - 1) so a fully relevant passage outweighs several partial ones;
    # for binary grades it is the same as linear gain.
    return sum((2.0**g - 1.0) / math.log2(rank + 1) for rank, g in enumerate(gains[:k], 1))


def ndcg_at_k(gains: Sequence[float], ideal: Sequence[float], k: int = 10) -> float:
    best = dcg_at_k(sorted(ideal, reverse=True), k)
    if best == 0:
        raise ValueError("nDCG is undefined for a question without relevant items")
    return dcg_at_k(gains, k) / best


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
