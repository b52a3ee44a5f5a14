"""Patient context from a FHIR R4 Bundle, parsed and validated with fhir.resources.

Only what the answer needs goes on: age, sex, active conditions, medications and
allergies. Names, addresses and identifiers are never copied into the prompt, the logs
or the response. When the question refers to the patient ("my patient's statin"), the
patient's medications, allergies and conditions are added to the search query so that
retrieval finds the passages about *their* drugs; the response lists the terms added.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from app.answering.models import PatientContext
from retrieval.drugs import find_drug_mentions
from retrieval.intent import PATIENT_FACTS

USED_TYPES = (
    "Patient", "Condition", "MedicationRequest", "MedicationStatement", "AllergyIntolerance"
)
# Words by which a question points at the patient in the bundle.
_REFERS_TO_PATIENT = re.compile(
    r"\b(?:my|this|the|our|her|his|their)\s+patient'?s?\b|\bpatient'?s\b|"
    r"\b(?:he|she|his|her|him|they|their|them)\b",
    re.IGNORECASE,
)
# Strengths and forms say nothing about which passages are relevant: "Simvastatin 10 MG"
# searches as "Simvastatin".
_STRENGTH = re.compile(
    r"\s+\d[\d.,/]*\s*(?:mg|mcg|ml|g|unt|units?|%|hr|day)\b.*$|\s+\(\w+\)$", re.IGNORECASE
)
_PRODUCT_CODE = re.compile(r"^(?:NDA|ANDA|BLA)\d+\s+")
MAX_RETRIEVAL_TERMS = 8
# A long record is cut in the prompt (the rest is counted, not listed): a bundle of
# thousands of entries must not crowd the passages out of the model's context.
MAX_FACTS_DESCRIBED = 20
# FHIR R4's bundle-type codes (required binding); fhir.resources checks only the shape.
BUNDLE_TYPES = frozenset({
    "document", "message", "transaction", "transaction-response", "batch",
    "batch-response", "history", "searchset", "collection",
})


class InvalidBundle(ValueError):
    pass


def _concept_text(concept: Any) -> str | None:
    if concept is None:
        return None
    if getattr(concept, "text", None):
        return str(concept.text)
    for coding in getattr(concept, "coding", None) or []:
        if coding.display:
            return str(coding.display)
    return None


def _is_active(status_concept: Any) -> bool:
    codes = {c.code for c in (getattr(status_concept, "coding", None) or [])}
    return not codes or bool(codes & {"active", "recurrence", "relapse"})


def _is_refuted(status_concept: Any) -> bool:
    codes = {c.code for c in (getattr(status_concept, "coding", None) or [])}
    return bool(codes & {"refuted", "entered-in-error"})


def _age(birth: date | str | None, today: date) -> int | None:
    """Age in whole years. FHIR allows a partial birthDate ("1950", "1950-02", kept as a
    string by fhir.resources): it counts from the last day it may stand for, so the age
    is never overstated. A birthDate after today is refused."""
    if birth is None:
        return None
    if isinstance(birth, str):
        parts = [int(p) for p in birth.split("-")]
        year, month = parts[0], parts[1] if len(parts) > 1 else 12
        first = date(year, parts[1] if len(parts) > 1 else 1, 1)
        day = 31 if month == 12 else (date(year, month + 1, 1) - date(year, month, 1)).days
        birth = max(first, min(date(year, month, day), today))
    if birth > today:
        raise InvalidBundle(f"invalid FHIR R4 Bundle: birthDate {birth} is after today "
                            "at Patient.birthDate")
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _medications(entries: list[Any]) -> dict[str, str]:
    """The bundle's Medication resources by every way a reference may name them
    ("Medication/<id>", the entry's fullUrl such as "urn:uuid:<id>"): their names."""
    found: dict[str, str] = {}
    for entry in entries:
        res = entry.resource
        if res.get_resource_type() != "Medication":
            continue
        text = _concept_text(res.code)
        if text is None:
            continue
        if res.id:
            found[f"Medication/{res.id}"] = text
        if entry.fullUrl:
            found[str(entry.fullUrl)] = text
    return found


def _referenced_medication(res: Any, medications: dict[str, str]) -> str | None:
    """A MedicationRequest/Statement's `medicationReference`: the Medication it names in
    the bundle (or among its contained resources), else the reference's display text."""
    ref = getattr(res, "medicationReference", None)
    if ref is None:
        return None
    target = str(ref.reference or "")
    if target.startswith("#"):
        for contained in getattr(res, "contained", None) or []:
            if (contained.get_resource_type() == "Medication"
                    and contained.id == target[1:]):
                return _concept_text(contained.code) or (str(ref.display) if ref.display
                                                         else None)
    text = medications.get(target)
    if text is None and "/" in target:  # an absolute URL ending in Medication/<id>
        text = medications.get("/".join(target.rsplit("/", 2)[-2:]))
    return text or (str(ref.display) if ref.display else None)


def parse_bundle(raw: dict[str, Any], today: date | None = None) -> PatientContext:
    if raw.get("resourceType") != "Bundle":
        raise InvalidBundle(f"expected resourceType 'Bundle', got {raw.get('resourceType')!r}")
    try:
        bundle = Bundle.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidBundle(
            f"invalid FHIR R4 Bundle: {first.get('msg', str(exc))} at {where or 'bundle'} "
            f"({exc.error_count()} error(s))"
        ) from exc
    except (LookupError, TypeError, AttributeError) as exc:
        # fhir.resources looks an entry's resourceType up by name: an unknown one ("Banana")
        # is a KeyError from inside the validator, not a ValidationError.
        raise InvalidBundle(
            f"invalid FHIR R4 Bundle: {type(exc).__name__} {exc} (an unknown resourceType?)"
        ) from exc
    if bundle.type not in BUNDLE_TYPES:
        raise InvalidBundle(
            f"invalid FHIR R4 Bundle: type {bundle.type!r} is not a bundle type (one of "
            f"{', '.join(sorted(BUNDLE_TYPES))}) at type"
        )
    entries = [e for e in bundle.entry or [] if e.resource is not None]
    patients = sum(e.resource.get_resource_type() == "Patient" for e in entries)
    if patients > 1:
        raise InvalidBundle(
            f"the bundle holds {patients} Patient resources; send one patient's bundle"
        )
    medications = _medications(entries)
    today = today or date.today()
    ctx = PatientContext()
    for entry in entries:
        res = entry.resource
        if res.get_resource_type() not in USED_TYPES:
            continue
        kind = res.get_resource_type()
        if res.id:
            ctx.resource_ids.append(f"{kind}/{res.id}")
        if kind == "Patient":
            deceased = bool(res.deceasedDateTime or res.deceasedBoolean)
            ctx.age = _age(res.birthDate, today) if not deceased else None
            ctx.sex = res.gender
        elif kind == "Condition" and _is_active(res.clinicalStatus) and not res.abatementDateTime:
            text = _concept_text(res.code)
            if text and text not in ctx.conditions:
                ctx.conditions.append(text)
        elif kind in ("MedicationRequest", "MedicationStatement") and res.status == "active":
            text = _concept_text(getattr(res, "medicationCodeableConcept", None))
            if text is None:
                text = _referenced_medication(res, medications)
            if text and text not in ctx.medications:
                ctx.medications.append(text)
        elif (kind == "AllergyIntolerance" and _is_active(res.clinicalStatus)
              and not _is_refuted(res.verificationStatus)):
            text = _concept_text(res.code)
            if text and text not in ctx.allergies:
                ctx.allergies.append(text)
    return ctx


def _search_terms(fact: str, is_medication: bool) -> list[str]:
    # Medications by their dictionary names ("NDA020800 0.3 ML Epinephrine 1 MG/ML
    # Auto-Injector" is "Epinephrine"; Synthea's "Simvistatin" is "Simvastatin", hence
    # fuzzy); conditions and allergies as written (the drug dictionary maps disease words
    # to drugs), without strengths and SNOMED tags such as "(finding)".
    if is_medication:
        drugs = [d.name for d in find_drug_mentions(fact, fuzzy=True) if not d.is_class]
        if drugs:
            return drugs
    return [_STRENGTH.sub("", _PRODUCT_CODE.sub("", fact)).strip()]


def retrieval_query(question: str, ctx: PatientContext) -> str:
    """The question, plus the patient's medications, allergies and conditions when the
    question refers to the patient; records the added terms in `ctx.retrieval_terms`."""
    ctx.retrieval_terms = []
    if not _REFERS_TO_PATIENT.search(question):
        return question
    terms: list[str] = []
    # Medications first: "is my patient's statin covered?" is the common case.
    facts = [(m, True) for m in ctx.medications]
    facts += [(f, False) for f in (*ctx.allergies, *ctx.conditions)]
    for fact, is_medication in facts:
        for term in _search_terms(fact, is_medication):
            if term and term.lower() not in question.lower() and term not in terms:
                terms.append(term)
    ctx.retrieval_terms = terms[:MAX_RETRIEVAL_TERMS]
    if not ctx.retrieval_terms:
        return question
    return question + PATIENT_FACTS + "; ".join(ctx.retrieval_terms) + ")"


def describe(ctx: PatientContext) -> str:
    who = " ".join(p for p in (f"{ctx.age}-year-old" if ctx.age is not None else "",
                               ctx.sex or "") if p) or "unknown age and sex"
    lines = [f"Patient: {who}."]
    lines.append("Active conditions: " + _listed(ctx.conditions) + ".")
    lines.append("Current medications: " + _listed(ctx.medications) + ".")
    lines.append("Allergies: " + _listed(ctx.allergies) + ".")
    return "\n".join(lines)


def _listed(facts: list[str]) -> str:
    if not facts:
        return "none recorded"
    shown = "; ".join(facts[:MAX_FACTS_DESCRIBED])
    more = len(facts) - MAX_FACTS_DESCRIBED
    return shown + (f"; and {more} more" if more > 0 else "")
