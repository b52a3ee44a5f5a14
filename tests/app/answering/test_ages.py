"""A patient's age asked about, and the age bands evidence states (app/answering/ages.py):
a dosing chart whose bands do not hold the age does not answer the question."""

from __future__ import annotations

import math

from app.answering.ages import age_ranges, asked_age, outside_ages
from app.answering.relevance import Evidence, addresses, question_focus

# The chart of the shipped children's cough syrup label (corpora/drug-labels/fda-spl/
# cough.xml): no band for 12 and over.
CHART = ("Age Dose children under 4 years of age do not use children 4 to under 6 years of "
         "age do not use unless directed by a doctor children 6 to under 12 years of age 2 "
         "teaspoonfuls (10 mL)")


def test_the_age_asked_and_not_other_year_counts() -> None:
    assert asked_age("How much Triaminic should a 14-year-old take?") == 14
    assert asked_age("35-year-old who smokes wants combined pills") == 35
    assert asked_age("At what 10-year CVD risk should a statin be started?") is None


def test_bands_are_read_each_once() -> None:
    assert age_ranges(CHART) == [(4, 6), (6, 12), (0, 4)]
    assert age_ranges("Pediatric Patients (10-17 years of age)") == [(10, 18)]
    assert age_ranges("adults and children 12 years and over") == [(12, math.inf)]
    assert age_ranges("Age ≥35 years") == [(35, math.inf)]


def test_only_bands_that_all_miss_the_age_count_against_the_evidence() -> None:
    assert outside_ages(14, CHART) == [(4, 6), (6, 12), (0, 4)]
    assert outside_ages(8, CHART) == [] and outside_ages(3, CHART) == []
    assert outside_ages(14, "The usual dose is 10 mL every 4 hours.") == []


def test_another_ages_dose_does_not_address_the_question() -> None:
    focus = question_focus("How much Triaminic Night Time Cold and Cough should a "
                           "14-year-old take?")
    row = Evidence(text="children 6 to under 12 years of age | 2 teaspoonfuls (10 mL)",
                   context="Triaminic Night Time Cold and Cough Directions")
    assert any(p.startswith("the cited evidence is for other ages") for p in
               addresses(focus, row))
    eight = question_focus("How much Triaminic Night Time Cold and Cough for an "
                           "8-year-old?")
    assert not any("other ages" in p for p in addresses(eight, row))
