"""Patient context from a FHIR R4 Bundle, parsed and validated with fhir.resources.

Only what the answer needs goes on: age, sex, active conditions and medications. Names,
addresses and identifiers are never copied into the prompt, the logs or the response.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from app.schemas import PatientContext

USED_TYPES = ("Patient", "Condition", "MedicationRequest", "MedicationStatement")


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
    return ctx


def describe(ctx: PatientContext) -> str:
    who = " ".join(p for p in (f"{ctx.age}-year-old" if ctx.age is not None else "",
                               ctx.sex or "") if p) or "unknown age and sex"
    lines = [f"Patient: {who}."]
    lines.append("Active conditions: " + ("; ".join(ctx.conditions) or "none recorded") + ".")
    lines.append("Current medications: " + ("; ".join(ctx.medications) or "none recorded") + ".")
    return "\n".join(lines)
