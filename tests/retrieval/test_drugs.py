"""Drug names in text: a class is never a drug."""

from __future__ import annotations

import pytest

from retrieval.drugs import (
    branded_products,
    drug_names,
    find_drug_mentions,
    is_class_name,
    mentioned_in,
    product_key,
    products_in,
)


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


@pytest.mark.parametrize(("text", "key"), [
    ("Xywav", "calcium, magnesium, potassium, and sodium oxybate"),
    ("Is Trikafta preferred?", "elexacaftor, tezacaftor, and ivacaftor"),
    ("Biktarvy", "bictegravir, emtricitabine, and tenofovir"),
])
def test_a_combination_product_named_with_commas_is_a_drug(text: str, key: str) -> None:
    # Its dictionary name lists the ingredients; MeSH's own comma names stay classes.
    assert drug_names(text) == [key]
    assert drug_names("LDL cholesterol above 190 mg/dL") == []
    assert drug_names("Anti-Inflammatory Agents, Non-Steroidal") == []


@pytest.mark.parametrize(("cell", "key"), [
    ("Auvelity", "auvelity"),
    ("Gloperba Susp", "gloperba"),
    ("Janumet XR", "janumet"),
    ("Kogenate FS", "kogenate"),
    ("Pred Forte", "pred forte"),
    ("Lipitor", None),  # the dictionary knows it: its generic is the key
    ("Anti-Inflammatory Agents, Non-Steroidal", None),  # a class
    ("All Other Treatments", None),  # a phrase
    ("Transdermal/Topical", None),
    ("H. Pylori Treatment", None),
    ("Preferred", None),
])
def test_a_product_the_dictionary_lacks_is_keyed_by_its_name(cell: str, key: str | None) -> None:
    assert product_key(cell) == key


def test_a_brand_in_parentheses_after_its_ingredients_is_a_product() -> None:
    assert branded_products("Additional Dextromethorphan/Bupropion (Auvelity) Criteria") \
        == ["auvelity"]
    # Not after a drug, or not a brand: nothing.
    assert branded_products("Neurologist Exemption (Optional) and Colchicine (Preferred)") == []
    assert branded_products("selective serotonin reuptake inhibitors (SSRIs)") == []


def test_products_are_found_as_whole_words() -> None:
    products = frozenset({"auvelity", "pred forte"})
    assert products_in("Step therapy before Ohio Medicaid covers AUVELITY?", products) \
        == ["auvelity"]
    assert products_in("Is Pred Forte preferred?", products) == ["pred forte"]
    assert products_in("Auvelitys and predforte", products) == []


def test_ordinary_words_the_dictionary_lists_as_synonyms_are_not_drugs() -> None:
    # The Ohio criteria's "allergy to two or more generics" named oxazepam.
    assert drug_names("must provide documentation of an inadequate clinical response or "
                      "allergy to two or more generic labelers; preferred generics") == []
    assert drug_names("Oxazepam 10 mg caps") == ["oxazepam"]


def test_a_dosage_form_is_not_a_drug() -> None:
    # Seen abstained: "The retrieved sources do not mention Ophthalmic Solutions" for
    # "brand TobraDex eye drops or generic tobramycin/dexamethasone?".
    assert drug_names("brand TobraDex eye drops or generic tobramycin/dexamethasone") == [
        "dexamethasone", "tobramycin"]
    assert drug_names("fluticasone nasal spray") == ["fluticasone"]
    # A substance named with its form is still what is given.
    assert drug_names("hypertonic saline solution") != []
