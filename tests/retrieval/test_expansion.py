"""Query expansion: brand ↔ generic names from the packaged drug dictionary, clinical
abbreviations, and its effect on a real hybrid search over a real embedded Qdrant."""

from __future__ import annotations

import pytest

from app.core.settings import Settings
from retrieval.expansion import (
    ABBREVIATIONS,
    abbreviation_expansions,
    drug_synonyms,
    expand,
)


def test_brand_name_question_gains_the_generic_and_back() -> None:
    assert "atorvastatin" in drug_synonyms("What is the starting dose of Lipitor?")
    assert "eliquis" in drug_synonyms("Is apixaban preferred?")
    assert "apixaban" in expand("Is Eliquis on the preferred drug list?").terms


def test_spelling_variants_and_salts_are_left_out() -> None:
    names = drug_synonyms("max dose of atorvastatin")
    assert "lipitor" in names
    # Latin/foreign spellings and multi-word salt forms never help an English search.
    assert not {"atorvastatina", "atorvastatinum", "atorvastatin calcium"} & set(names)
    assert all(" " not in n for n in names)


def test_abbreviations_expand_only_when_written_as_abbreviations() -> None:
    assert abbreviation_expansions("Target BP in HTN with CKD?") == [
        "hypertension", "chronic kidney disease"]
    assert "morphine milligram equivalents" in expand("Daily MME limit for opioids?").terms
    assert "left ventricular assist device" in expand("LVAD coverage criteria?").terms
    # The formularies write "PA" themselves: it is searched as written.
    assert "prior authorization" not in expand("Is PA required for Repatha?").terms
    # The default mode adds the abbreviations' words, never drug names.
    assert expand("Lipitor in HTN?", drugs=False).terms == ("hypertension",)
    # Lower-case "pa" and "er" are ordinary words (or parts of them), not abbreviations.
    assert abbreviation_expansions("take pa er tablets") == []


def test_expansion_text_keeps_the_question_and_adds_each_term_once() -> None:
    e = expand("Lipitor dose in HTN, HTN with lipitor")
    assert e.text.startswith("Lipitor dose in HTN, HTN with lipitor (")
    assert len(e.terms) == len(set(e.terms))
    assert "hypertension" in e.terms
    assert expand("How should tablets be stored?").text == "How should tablets be stored?"


def test_every_abbreviation_maps_to_words() -> None:
    for abbrev, words in ABBREVIATIONS.items():
        assert abbrev == abbrev.lower() and words and all(w.strip() for w in words)


@pytest.fixture(scope="module")
def brand_corpus(tmp_path_factory: pytest.TempPathFactory, embedder):  # type: ignore[no-untyped-def]
    """Three short documents that name drugs by generic name only, ingested by the real
    pipeline into an embedded Qdrant of their own."""
    from ingest.pipeline import ingest_path
    from retrieval.store import open_client

    root = tmp_path_factory.mktemp("brand-corpus")
    docs = {
        "apixaban.md": "# Apixaban\n\nApixaban 5 mg twice daily is preferred for "
                       "nonvalvular atrial fibrillation; no prior authorization is needed.",
        "rivaroxaban.md": "# Rivaroxaban\n\nRivaroxaban 20 mg once daily with the evening "
                          "meal requires prior authorization after 30 days.",
        "warfarin.md": "# Warfarin\n\nWarfarin dosing is adjusted to an INR of 2 to 3; it "
                       "is preferred and covered without restrictions.",
    }
    for name, text in docs.items():
        (root / name).write_text(text + "\n")
    (root / "manifest.toml").write_text(
        '[[sources]]\nglob = "*.md"\ndoc_type = "formulary"\naccess_groups = ["public"]\n'
    )
    data = tmp_path_factory.mktemp("brand-data")
    settings = Settings(MEDCITE_DATA_DIR=data, MEDCITE_COLLECTION="brand")
    client = open_client(settings)
    ingest_path(root, settings, client=client, embedder=embedder, progress=False)
    yield settings, client
    client.close()


def test_expansion_lets_a_brand_name_query_find_the_generic_passage(
    brand_corpus, embedder  # type: ignore[no-untyped-def]
) -> None:
    import dataclasses

    from retrieval.search import Retriever

    settings, client = brand_corpus
    plain = Retriever(client, settings.collection, embedder)
    expanded = dataclasses.replace(plain, expansion="lexical")
    question = "Eliquis"
    # Without expansion the lexical arm has nothing to match: no document says "Eliquis".
    assert plain.search(question, access_groups=["public"], mode="sparse", limit=3) == []
    hits = expanded.search(question, access_groups=["public"], mode="sparse", limit=3)
    assert hits and hits[0].provenance.source_file == "apixaban.md"
    fused = expanded.search(question, access_groups=["public"], limit=3)
    assert fused[0].provenance.source_file == "apixaban.md"
    # Scores stay dense cosines of the question (the abstention threshold's scale).
    assert all(-1.0 <= p.score <= 1.0 for p in fused)


def test_a_guideline_question_gains_the_drugs_class_a_label_question_does_not() -> None:
    from retrieval.expansion import drug_class_names

    assert expand("Patient on chronic opioids asks for alprazolam - what does the CDC "
                  "guideline say?", drugs=False).terms == ("benzodiazepines",)
    # A label's own sections name its drug; its class words only blur them.
    assert drug_class_names("Can Humira be combined with anakinra in RA?") == []
    # A class the question already names is not added again, nor the patient's drugs'.
    assert drug_class_names("Does the guideline allow benzodiazepines with opioids?") == []
    assert drug_class_names("What does the VA/DoD guideline say about his dose? "
                            "(patient: Simvastatin 20 MG)") == []
    assert expand("When was the CDC PrEP guideline released?", drugs=False).terms == (
        "preexposure prophylaxis",)


def test_a_guideline_question_for_a_medication_searches_pharmacotherapy() -> None:
    from retrieval.expansion import guideline_words

    assert guideline_words("Would VA/DoD support adding a weight-loss medication?") == [
        "pharmacotherapy"]
    # Not a label question, nor the patient's own record appended to the question.
    assert guideline_words("What medication interacts with Lipitor?") == []
    assert guideline_words("What does the VA/DoD guideline say about his BMI? "
                           "(patient: Simvastatin 20 MG; medications reviewed)") == []
