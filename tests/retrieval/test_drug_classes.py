"""Drug classes by naming stem: the members formularies list under no class name."""

from __future__ import annotations

import pytest

from retrieval.drug_classes import class_members, classes_in
from retrieval.drugs import drug_names, find_drug_mentions
from retrieval.intent import read_intent


@pytest.mark.parametrize(("question", "key"), [
    ("Which statins are preferred on the Ohio Medicaid PDL?", "statins"),
    ("SGLT2 inhibitors preferred on the Ohio Medicaid PDL?", "sglt2 inhibitors"),
    ("Which GLP-1 receptor agonists are preferred?", "glp-1 receptor agonists"),
    ("Which triptans are preferred for acute migraine?", "triptans"),
    ("Are PPIs covered?", "proton pump inhibitors"),
])
def test_a_question_names_its_class(question: str, key: str) -> None:
    assert key in [c.key for c in classes_in(question)]


def test_members_come_from_the_naming_stem_and_not_its_lookalikes() -> None:
    statins = class_members("statins")
    assert {"atorvastatin", "rosuvastatin", "simvastatin", "pravastatin"} <= set(statins)
    # "-statin" alone also ends enzyme inhibitors and an antifungal.
    assert not {"nystatin", "cilastatin", "cystatin a"} & set(statins)
    assert "aripiprazole" not in class_members("proton pump inhibitors")
    assert {"dapagliflozin", "empagliflozin", "canagliflozin"} <= set(
        class_members("sglt2 inhibitors"))


def test_a_plural_class_word_is_a_class_and_a_member_is_not() -> None:
    by_name = {m.name: m.is_class for m in find_drug_mentions("triptans or sumatriptan")}
    assert by_name["Sumatriptan"] is False
    assert [v for k, v in by_name.items() if k != "Sumatriptan"] == [True]


def test_a_dose_word_does_not_hide_the_drug() -> None:
    (aspirin,) = find_drug_mentions("low-dose aspirin in pregnancy")
    assert "aspirin" in aspirin.synonyms


def test_a_class_status_question_asks_for_a_list_of_its_members() -> None:
    intent = read_intent("SGLT2 inhibitors preferred on the Ohio Medicaid PDL?")
    assert intent.listing and intent.formulary
    assert "empagliflozin" in intent.class_drugs and not intent.drugs
    # A named drug keeps its own question: its row, not the list.
    assert not read_intent("Is Jardiance preferred on the Ohio Medicaid PDL?").listing


def test_a_member_named_with_its_salt_or_form_is_still_a_member() -> None:
    """The drug dictionary names Prevalite "cholestyramine resin": a bile acid
    sequestrant, left out of Ohio Medicaid's preferred bile-acid list before."""
    (bile,) = classes_in("Which bile acid sequestrants does Ohio Medicaid prefer?")
    assert drug_names("Prevalite") == ["cholestyramine resin"]
    assert bile.has_member("cholestyramine resin")
    assert not bile.has_member("ezetimibe")


def test_oral_anticoagulants_are_the_formularys_category_not_only_the_doacs() -> None:
    # "What oral anticoagulants can I prescribe…" asks for the category's list (warfarin
    # included); "direct oral anticoagulants" stays the DOAC class alone.
    assert [c.key for c in classes_in("What oral anticoagulants can I prescribe?")] == [
        "oral anticoagulants"]
    assert [c.key for c in classes_in("Are direct oral anticoagulants preferred?")] == [
        "direct oral anticoagulants"]
    assert "warfarin" in class_members("oral anticoagulants")
    assert "warfarin" not in class_members("direct oral anticoagulants")
    intent = read_intent("What oral anticoagulants can I prescribe without a non-preferred "
                         "PA for an Ohio Medicaid patient?")
    assert intent.listing and "apixaban" in intent.class_drugs


def test_corticosteroids_are_their_listed_members_not_every_sone_or_olone() -> None:
    # "Is a Medrol dose pack reasonable …?" against "systemic corticosteroids".
    steroids = set(class_members("corticosteroids"))
    assert {"methylprednisolone", "prednisone", "dexamethasone", "budesonide"} <= steroids
    assert not {"dapsone", "tolperisone", "zuranolone", "nandrolone decanoate"} & steroids
    assert "corticosteroids" in [c.key for c in classes_in("the Work Group recommends "
                                                           "against systemic corticosteroids")]


def test_hepatitis_c_antivirals_and_growth_hormones_are_classes_a_list_question_names() -> None:
    assert [c.key for c in classes_in("Which HCV products are preferred on the UPDL?")] == [
        "hepatitis c antivirals"]
    hcv = set(class_members("hepatitis c antivirals"))
    assert {"sofosbuvir", "glecaprevir and pibrentasvir", "ledipasvir and sofosbuvir",
            "ribavirin", "peginterferon alfa-2a"} <= hcv
    assert not {"acyclovir", "oseltamivir", "ritonavir"} & hcv
    # Brands the dictionary calls "human growth hormone" are members.
    assert set(drug_names("Norditropin Omnitrope")) <= set(class_members("growth hormones"))
    assert [c.key for c in classes_in("Which growth hormone brands are preferred?")] == [
        "growth hormones"]
