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


def _age(birth: date | None, today: date) -> int | None:
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


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
    today = today or date.today()
    ctx = PatientContext()
    for entry in bundle.entry or []:
        res = entry.resource
        if res is None or res.get_resource_type() not in USED_TYPES:
            continue
        kind = res.get_resource_type()
        ctx.resource_ids.append(f"{kind}/{res.id}")
        if kind == "Patient":
            ctx.age = _age(res.birthDate, today) if not res.deceasedDateTime else None
            ctx.sex = res.gender
        elif kind == "Condition" and _is_active(res.clinicalStatus) and not res.abatementDateTime:
            text = _concept_text(res.code)
            if text and text not in ctx.conditions:
                ctx.conditions.append(text)
        elif kind in ("MedicationRequest", "MedicationStatement") and res.status == "active":
            text = _concept_text(getattr(res, "medicationCodeableConcept", None))
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
    return question + " (patient: " + "; ".join(ctx.retrieval_terms) + ")"


def describe(ctx: PatientContext) -> str:
    who = " ".join(p for p in (f"{ctx.age}-year-old" if ctx.age is not None else "",
                               ctx.sex or "") if p) or "unknown age and sex"
    lines = [f"Patient: {who}."]
    lines.append("Active conditions: " + ("; ".join(ctx.conditions) or "none recorded") + ".")
    lines.append("Current medications: " + ("; ".join(ctx.medications) or "none recorded") + ".")
    lines.append("Allergies: " + ("; ".join(ctx.allergies) or "none recorded") + ".")
    return "\n".join(lines)
