"""Drug names in text: a class is never a drug."""

from __future__ import annotations

import pytest

from retrieval.drugs import drug_names, find_drug_mentions, is_class_name, mentioned_in


@pytest.mark.parametrize("text", [
    "Which lipotropics are preferred?",
    "Lipotropic Agents",
    "statins",
    "gout agents",
    "Glucagon-Like Peptide-1 Receptor agonists",
    "Anti-Inflammatory Agents, Non-Steroidal",
    "NSAIDs",
    "proton pump inhibitors",
    "PCSK9 inhibitors",
    "ACE inhibitors",
    "anticoagulants",
])
def test_a_class_name_is_never_a_drug(text: str) -> None:
    mentions = find_drug_mentions(text, fuzzy=True)
    assert all(m.is_class for m in mentions), [(m.name, m.is_class) for m in mentions]
    assert drug_names(text, fuzzy=True) == []


@pytest.mark.parametrize(("text", "drug"), [
    ("Is Livalo preferred?", "pitavastatin"),
    ("Atorvastatin Calcium Tab (all strengths)", "atorvastatin"),
    ("How many Trulicity pens?", "dulaglutide"),
    ("insulin glargine", "insulin glargine"),
    ("Simvistatin 10 MG", "simvastatin"),  # Synthea's spelling, read fuzzily
])
def test_drugs_are_normalised(text: str, drug: str) -> None:
    assert drug in drug_names(text, fuzzy=True)
    mention = next(m for m in find_drug_mentions(text, fuzzy=True) if m.name.lower() == drug)
    assert not mention.is_class and mentioned_in(mention, drug.upper())


def test_class_shaped_names() -> None:
    assert is_class_name("Lipotropic Agents") and is_class_name("Analgesics, Opioid")
    assert is_class_name("Glucagon-Like Peptide-1 Receptor")
    assert not is_class_name("Atorvastatin") and not is_class_name("Insulin Glargine")
