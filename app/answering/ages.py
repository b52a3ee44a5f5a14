"""The patient's age a question gives, and the age ranges a text states.

A dosing chart answers by age band ("children 6 to under 12 years of age: 2
teaspoonfuls"). Asked "How much … should a 14-year-old take?" of a chart whose bands stop
below 12, the 6-to-12 row was shown as the evidence: another age's dose. Evidence that
states age ranges addresses a question about a patient of a given age only when one of
its ranges holds that age; evidence that states no range is not judged by age.
"""

from __future__ import annotations

import math
import re

from app.answering.text import normalise

_YEARS = r"\s*(?:years?|yrs?)\b"
# "14-year-old", "14 year old", "14 years old", "aged 14".
_ASKED = re.compile(r"\b(\d{1,3})[- ]years?[- ]old\b|\baged (\d{1,3})\b")
# (pattern, how its numbers make a [low, high) range)
_RANGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(\d{1,3})\s*(?:to|-|–|through)\s*(?:under|less than|younger than|<)\s*"
                r"(\d{1,3})" + _YEARS), "open"),
    (re.compile(r"(\d{1,3})\s*(?:to|-|–|through)\s*(\d{1,3})" + _YEARS), "closed"),
    (re.compile(r"(\d{1,3})" + _YEARS + r"(?: of age)?\s*(?:and|or)\s*(?:over|older|above)"),
     "from"),
    (re.compile(r"(?:under|younger than|less than|<)\s*(\d{1,3})" + _YEARS), "below"),
    (re.compile(r"(?:over|older than|above|>|≥|>=)\s*(\d{1,3})" + _YEARS), "from"),
    (re.compile(r"\bage\s*(?:≥|>=|>)\s*(\d{1,3})\b"), "from"),
    (re.compile(r"\bage\s*<\s*(\d{1,3})\b"), "below"),
)


def asked_age(question: str) -> int | None:
    m = _ASKED.search(normalise(question))
    if m is None:
        return None
    return int(next(g for g in m.groups() if g))


def age_ranges(text: str) -> list[tuple[float, float]]:
    """[low, high) ranges in years, as the text states them."""
    out: list[tuple[float, float]] = []
    lowered = normalise(text)
    for pattern, shape in _RANGES:
        for m in pattern.finditer(lowered):
            # A span read once: "4 to under 6 years" is not also "under 6 years".
            lowered = lowered[:m.start()] + " " * (m.end() - m.start()) + lowered[m.end():]
            nums = [int(g) for g in m.groups()]
            if shape == "open":
                out.append((nums[0], nums[1]))
            elif shape == "closed":
                out.append((nums[0], nums[1] + 1))
            elif shape == "from":
                out.append((nums[0], math.inf))
            else:
                out.append((0, nums[0]))
    return out


def outside_ages(age: int, text: str) -> list[tuple[float, float]]:
    """The text's age ranges when it states some and none holds `age`; else []."""
    ranges = age_ranges(text)
    if not ranges or any(low <= age < high for low, high in ranges):
        return []
    return ranges
