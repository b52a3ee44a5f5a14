"""Structure-aware retrieval over the real index: formulary records, label sections by
LOINC code, recommendations above a guideline's administrative fields, drug-aware
search reached by a patient's medications."""

from __future__ import annotations

import dataclasses
import json

from app.core.settings import REPO_ROOT
from retrieval.intent import BOXED_WARNING, read_intent

GROUPS = ["public"]
PATIENT = REPO_ROOT / "corpora/fhir/synthea/Tom_Goodwin_e20de9eb-6f2d-4871-a43f-bbede53293ed.json"


def test_a_formulary_row_question_retrieves_its_row_first(structured_retriever) -> None:  # type: ignore[no-untyped-def]
    hits = structured_retriever.search(
        "Does Repatha need prior authorization under Ohio Medicaid?", access_groups=GROUPS)
    top = hits[0]
    assert top.provenance.unit_kind == "row"
    assert "| Repatha (PA) |" in top.text and "prior authorization" in top.text
    assert top.provenance.payer == "Ohio Medicaid"
    hits = structured_retriever.search(
        "What quantity limit applies to simvastatin on Ohio Medicaid?", access_groups=GROUPS)
    assert hits[0].provenance.unit_kind == "row"
    assert "| Simvastatin (QL) | Simvastatin Tab (all strengths) | 102 | 102 |" in hits[0].text


def test_the_whole_table_stays_for_list_questions(structured_retriever) -> None:  # type: ignore[no-untyped-def]
    hits = structured_retriever.search(
        "Which lipotropics are preferred on Ohio Medicaid?", access_groups=GROUPS, limit=10)
    assert any(h.provenance.unit_kind == "table" and "| Preferred | Generic Name |" in h.text
               for h in hits)


def test_a_boxed_warning_question_retrieves_the_34066_1_section(structured_retriever) -> None:  # type: ignore[no-untyped-def]
    question = "What is the boxed warning for Humira?"
    assert BOXED_WARNING in read_intent(question).section_codes
    hits = structured_retriever.search(question, access_groups=GROUPS)
    assert hits[0].provenance.section_code == BOXED_WARNING
    assert "humira" in hits[0].provenance.source_file


def test_administrative_sections_do_not_outrank_recommendations(structured_retriever) -> None:  # type: ignore[no-untyped-def]
    hits = structured_retriever.search(
        "Which drug regimen is recommended for HIV preexposure prophylaxis?",
        access_groups=GROUPS, limit=10)
    kinds = [h.provenance.unit_kind for h in hits if "ngc-10403" in h.provenance.source_file]
    assert "recommendation" in kinds
    first = kinds.index("recommendation")
    assert "admin" not in kinds[:first], kinds
    # Asked for, the administrative fields come back.
    hits = structured_retriever.search(
        "When was the CDC PrEP guideline released and what is its bibliographic source?",
        access_groups=GROUPS)
    assert any(h.provenance.unit_kind == "admin" for h in hits[:3])


def test_plain_hybrid_search_is_still_there(structured_retriever) -> None:  # type: ignore[no-untyped-def]
    plain = dataclasses.replace(structured_retriever, structure="off")
    hits = plain.search("Does Repatha need prior authorization under Ohio Medicaid?",
                        access_groups=GROUPS)
    assert hits and all(h.provenance.section_path for h in hits)


def test_a_patients_medication_reaches_the_drug_filter(structured_retriever) -> None:  # type: ignore[no-untyped-def]
    from app.answering.fhir_context import parse_bundle, retrieval_query

    question = ("Is my patient's statin preferred on the Ohio Medicaid list, and is there "
                "a quantity limit?")
    query = retrieval_query(question, parse_bundle(json.loads(PATIENT.read_text())))
    # Synthea's "Simvistatin 10 MG" reaches search as the dictionary's drug.
    assert read_intent(query).drugs == ("simvastatin",)
    assert read_intent(question).drugs == ()  # "statin" is a class, not a drug
    hits = structured_retriever.search(query, access_groups=GROUPS)
    assert hits[0].provenance.unit_kind == "row"
    assert "Simvastatin (QL)" in hits[0].text
    # The question alone names no drug: no drug arm, and no row of simvastatin first.
    alone = structured_retriever.search(question, access_groups=GROUPS)
    assert "Simvastatin (QL)" not in alone[0].text


def test_a_criteria_question_retrieves_the_criteria_before_the_row(structured_retriever) -> None:  # type: ignore[no-untyped-def]
    question = "What must be tried before Ohio Medicaid approves colchicine capsules for gout?"
    intent = read_intent(question)
    assert intent.criteria and not intent.status
    hits = structured_retriever.search(question, access_groups=GROUPS)
    assert hits[0].provenance.unit_kind == "section"
    assert "Criteria" in " ".join(hits[0].provenance.section_path)
    assert "inadequate clinical response" in hits[0].text
    # A yes/no question about the same drug asks its status: its row answers it.
    assert read_intent("Does colchicine need prior authorization on Ohio Medicaid?").status


def test_words_that_are_not_what_they_look_like() -> None:
    # "Medicare-covered" asks a coverage policy, not a formulary's records.
    lvad = read_intent("List the patient-selection criteria for Medicare-covered LVAD therapy.")
    assert not lvad.formulary and lvad.listing
    # "authorization" is not "author": no administrative fields for it.
    assert not read_intent("Extra requirement for Xywav prior authorization in Ohio?").admin
    # Without a drug, "how often" to a payer is a billing interval, not a label's dose.
    assert read_intent("How often can HbA1c be billed to Medicare?").section_codes == ()
    assert read_intent("How often can I take ibuprofen?").section_codes
    # ... and a coverage policy's question, unless it is a formulary's.
    assert read_intent("How often can HbA1c be billed to Medicare?").coverage
    assert not read_intent("Is atorvastatin covered by Ohio Medicaid?").coverage
    # "the Ohio Medicaid list" is where, not a request for a list.
    assert not read_intent("Is simvastatin preferred on the Ohio Medicaid list?").listing


def test_a_patients_medications_are_searched_only_when_asked_about() -> None:
    facts = " (patient: Hydrochlorothiazide; Simvastatin; Hypertension; Gout)"
    # The question names its drug: the patient's others are not drug arms.
    assert read_intent("What must he try before Ohio Medicaid approves colchicine?"
                       + facts).drugs == ("colchicine",)
    # A class: the patient's members of it.
    assert read_intent("Is his thiazide dose within range?" + facts).drugs == (
        "hydrochlorothiazide",)
    assert read_intent("Is my patient's statin preferred?" + facts).drugs == ("simvastatin",)
    # "His medications": all of them; a follow-up question: none.
    assert set(read_intent("Do any of his medications need prior auth?" + facts).drugs) == {
        "hydrochlorothiazide", "simvastatin"}
    assert read_intent("How often should I see her now that her BP is at goal?"
                       + facts).drugs == ()
    # A medication the patient does not take yet is not theirs.
    assert read_intent("Should I add a new blood pressure medication for him?"
                       + facts).drugs == ()
    assert set(read_intent("Is the dose right for her?" + facts).drugs) == {
        "hydrochlorothiazide", "simvastatin"}


def test_a_billing_question_favours_the_coverage_policy() -> None:
    """Measured: "How often can HbA1c be billed to Medicare?" ranked the VA/DoD diabetes
    guideline's HbA1c recommendations first and the NCD 14th; a coverage question
    favours coverage policies (bench/RESULTS-retrieval.md)."""
    from retrieval.schema import ChunkPayload
    from retrieval.search import structure_factor

    ncd = ChunkPayload(doc_type="coverage", unit_kind="section")
    guideline = ChunkPayload(doc_type="guideline", unit_kind="section")
    billing = read_intent("How often does Medicare pay for a lipid panel?")
    assert structure_factor(ncd, billing) > structure_factor(guideline, billing)
    dosing = read_intent("How often is a lipid panel recommended after starting a statin?")
    assert structure_factor(ncd, dosing) == structure_factor(guideline, dosing)
    # A question about the document itself favours its administrative fields ("Date
    # Released: 2011 Jan 28 (revised 2014)"); other questions put them last.
    # A clinician's question is answered by a label's professional sections before its
    # Medication Guide, unless it asks what the patient is told.
    guide = ChunkPayload(doc_type="label", section_code="42231-1")
    warnings = ChunkPayload(doc_type="label", section_code="43685-7")
    screening = read_intent("Do I need to test for tuberculosis before starting Enbrel?")
    assert structure_factor(guide, screening) < structure_factor(warnings, screening)
    told = read_intent("What does the Medication Guide tell patients about TB with Enbrel?")
    assert told.patient_facing and structure_factor(guide, told) >= 1
    field = ChunkPayload(doc_type="guideline", unit_kind="admin")
    assert structure_factor(field, read_intent("When was the PrEP guideline released?")) > 1
    assert structure_factor(field, read_intent("Who should get PrEP?")) < 1


def test_a_product_the_dictionary_lacks_is_searched_as_a_drug(structured_retriever) -> None:  # type: ignore[no-untyped-def]
    """Zypitamag and Gloperba are rows of the shipped Ohio pages that the packaged drug
    dictionary does not know: the store's own product keys make them drugs of the
    question, so the drug-filtered arms reach their row and their criteria."""
    question = "Is Zypitamag preferred on Ohio Medicaid?"
    assert read_intent(question).drugs == ()
    assert structured_retriever.intent(question).drugs == ("zypitamag",)
    hits = structured_retriever.search(question, access_groups=GROUPS)
    assert hits[0].provenance.unit_kind == "row" and "Zypitamag" in hits[0].text
    question = "What must a patient show before Ohio Medicaid approves Gloperba?"
    assert structured_retriever.intent(question).drugs == ("gloperba",)
    hits = structured_retriever.search(question, access_groups=GROUPS)
    assert "Colchicine Solution (Gloperba)" in hits[0].provenance.section_path, \
        [h.provenance.section_path for h in hits]
    # Words of the formulary that are not products stay words.
    assert structured_retriever.intent("Which drugs are preferred or non-preferred?").drugs == ()


def test_the_products_are_read_once_per_catalog_change_not_per_as_of_day(  # type: ignore[no-untyped-def]
        structured_retriever) -> None:
    """Questions as of another day replace the versions view; the product lexicon
    depends only on what the collection holds and is not read again for them."""
    from datetime import date

    from retrieval.models import SearchFilters

    class Counting:
        def __init__(self, client) -> None:  # type: ignore[no-untyped-def]
            self.client, self.facets = client, 0

        def facet(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.facets += 1
            return self.client.facet(*args, **kwargs)

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.client, name)

    counting = Counting(structured_retriever.client)
    retriever = dataclasses.replace(structured_retriever, client=counting, _view=None,
                                    _products_read=None)
    question = "Is Zypitamag preferred on Ohio Medicaid?"
    for as_of in (None, date(2023, 6, 1), None, date(2023, 6, 1)):
        hits = retriever.search(question, access_groups=GROUPS,
                                filters=SearchFilters(as_of=as_of) if as_of else None)
        assert hits
    assert counting.facets == 1
    assert retriever.intent(question).drugs == ("zypitamag",)


def test_a_when_question_favours_the_date_field_and_criteria_favour_the_drugs_own() -> None:
    """Measured: "When was the CDC PrEP guideline first released?" ranked two other
    guidelines' "Guideline Status" fields above PrEP's "Date Released" (not in the top 40);
    "Is Savaysa preferred, or what trial is needed?" ranked the decision tree and another
    page's criteria above the Non-Preferred criteria that name edoxaban."""
    from retrieval.schema import ChunkPayload
    from retrieval.search import structure_factor

    when = read_intent("When was the CDC PrEP guideline first released and when revised?")
    who = read_intent("Who developed the CDC PrEP guideline?")
    assert when.asks_date and not who.asks_date
    date = ChunkPayload(doc_type="guideline", unit_kind="admin",
                        section_path=["Identifying Information", "Date Released"])
    status = ChunkPayload(doc_type="guideline", unit_kind="admin",
                          section_path=["General", "Guideline Status"])
    assert structure_factor(date, when) > structure_factor(status, when)
    assert structure_factor(date, who) == structure_factor(status, who)

    trial = read_intent("Is Savaysa covered as preferred by Ohio Medicaid, or what trial is "
                        "needed?")
    assert trial.criteria and "edoxaban" in trial.drugs
    theirs = ChunkPayload(doc_type="formulary", unit_kind="section",
                          drugs=["dabigatran", "edoxaban"])
    tree = ChunkPayload(doc_type="formulary", unit_kind="section", drugs=[])
    assert structure_factor(theirs, trial) > structure_factor(tree, trial)
