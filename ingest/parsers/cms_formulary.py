"""CMS Qualified Health Plan formulary files (`drugs.json`), one readable section per drug.

Schema: https://github.com/CMSgov/QHP-provider-formulary-APIs (copied in the corpus
README). Plan names come from a sibling `plans.json` when there is one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingest.models import ParsedDocument, ParseError, SourceFile
from ingest.parsers.builder import DocumentBuilder, normalise_line, relpath_stem

PLANS_FILE = "plans.json"
_FLAGS = (
    ("prior_authorization", "prior authorization"),
    ("step_therapy", "step therapy"),
    ("quantity_limit", "quantity limit"),
)


def is_drug_list(data: Any) -> bool:
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(d, dict) and "drug_name" in d and "plans" in d for d in data)
    )


def parse_cms_drugs(data: Any, source: SourceFile) -> ParsedDocument:
    if not is_drug_list(data):
        raise ParseError(
            "JSON is not a CMS QHP drugs.json list (expected a list of objects with "
            "'drug_name' and 'plans')"
        )
    plan_names = load_plan_names(source.path.parent / PLANS_FILE)
    builder = DocumentBuilder()
    plan_ids: dict[str, None] = {}
    years: set[int] = set()
    for index, drug in enumerate(data):
        plans = _plans(drug, index)
        plan_ids.update({str(p.get("plan_id", "")): None for p in plans})
        years.update(y for p in plans for y in _years(p))
        name = normalise_line(str(drug["drug_name"]))
        # Each drug is a record (ingest/chunking.py row_records), not prose.
        with builder.scope(kind="row"):
            builder.add((name,), drug_text(drug, plans, plan_names))
    named = [plan_names.get(pid, pid) for pid in plan_ids if pid]
    return builder.build(
        doc_id=f"qhp:{relpath_stem(source.relpath)}",
        title=f"QHP drug formulary {source.path.stem} ({len(data)} drugs)",
        source_file=source.relpath,
        doc_type=source.doc_type,
        metadata={
            "plan_ids": ", ".join(pid for pid in plan_ids if pid),
            "plans": "; ".join(named),
            "years": ", ".join(str(y) for y in sorted(years)),
        },
    )


def _plans(drug: dict[str, Any], index: int) -> list[dict[str, Any]]:
    plans = drug["plans"]
    if not isinstance(plans, list) or not all(isinstance(p, dict) for p in plans):
        raise ParseError(f"drug #{index + 1} ({drug.get('drug_name')!r}): 'plans' is not a list")
    return plans


def _years(plan: dict[str, Any]) -> list[int]:
    years = plan.get("years") or []
    return [y for y in years if isinstance(y, int)] if isinstance(years, list) else []


def drug_text(drug: dict[str, Any], plans: list[dict[str, Any]], names: dict[str, str]) -> str:
    """'Atorvastatin ... (RxNorm 12345):' then one line per plan covering it."""
    rxnorm = drug.get("rxnorm_id")
    head = normalise_line(str(drug["drug_name"])) + (f" (RxNorm {rxnorm})" if rxnorm else "")
    if not plans:
        return f"{head}: not covered by any plan in this file."
    return "\n".join([f"{head}:", *(f"- {_plan_line(p, names)}" for p in plans)])


def _plan_line(plan: dict[str, Any], names: dict[str, str]) -> str:
    plan_id = str(plan.get("plan_id", "unknown"))
    label = f"{names[plan_id]} ({plan_id})" if plan_id in names else plan_id
    parts = [f"plan {label}", f"tier {plan.get('drug_tier') or 'not stated'}"]
    parts += [f"{text}: {_yes_no(plan.get(key))}" for key, text in _FLAGS]
    years = _years(plan)
    if years:
        parts.append("years " + ", ".join(str(y) for y in years))
    return ", ".join(parts) + "."


def _yes_no(value: Any) -> str:
    if value is None:
        return "not stated"
    return "yes" if value is True else "no" if value is False else str(value)


def load_plan_names(path: Path) -> dict[str, str]:
    """plan_id -> marketing name; a missing or unreadable plans.json just means no names."""
    try:
        plans = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(plans, list):
        return {}
    return {
        str(p["plan_id"]): normalise_line(str(p["marketing_name"]))
        for p in plans
        if isinstance(p, dict) and p.get("plan_id") and p.get("marketing_name")
    }
