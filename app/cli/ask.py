"""`medcite ask`: a question to the running API, printed with its sources."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from app.answering.models import quoted_label
from app.core.settings import Settings


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    key = settings.resolved_api_key()
    if not key:
        print("No API key: set MEDCITE_API_KEY or run `medcite serve` once.", file=sys.stderr)
        return 2
    body: dict[str, object] = {"question": args.question, "strict": args.strict}
    filters: dict[str, object] = {}
    if args.type:
        filters["doc_types"] = args.type
    if args.as_of:
        filters["as_of"] = args.as_of
    if filters:
        body["filters"] = filters
    if args.bundle:
        body["fhir_bundle"] = json.loads(Path(args.bundle).read_text())
    try:
        resp = httpx.post(
            f"{settings.api_url}/ask", json=body, timeout=settings.llm_timeout_s * 2 + 60,
            headers={"Authorization": f"Bearer {key}"},
        )
    except httpx.HTTPError as exc:
        print(f"API at {settings.api_url} unreachable: {exc}", file=sys.stderr)
        return 2
    if resp.status_code != 200:
        print(f"HTTP {resp.status_code}: {resp.json().get('detail')}", file=sys.stderr)
        return 1
    data = resp.json()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(format_answer(data))
    return 0


def format_answer(data: dict) -> str:  # type: ignore[type-arg]
    """Plain-text rendering for the terminal: sentences, markers, then the sources."""
    passages = {p["id"]: p for p in data["passages"]}
    lines = [f"Status: {data['status']}"]
    if data["abstained"]:
        lines.append(f"Abstained: {data['abstain_reason']}")
    if data.get("status_reason"):
        lines.append(data["status_reason"])
    order: list[str] = []
    evidence = data.get("evidence") or []
    if evidence:
        # What the sources say, verbatim: the model's answer did not verify.
        lines.append("What the sources say (quoted, not a composed answer):")
    for q in evidence:
        if q["passage_id"] not in order:
            order.append(q["passage_id"])
        lines.append(f"  > \"{q['text']}\" [{order.index(q['passage_id']) + 1}]")
        if q.get("header"):
            lines.append("    (columns: " + " | ".join(q["header"]) + ")")
    for s in data["sentences"]:
        marks = []
        for c in s["citations"]:
            if c["passage_id"] not in order:
                order.append(c["passage_id"])
            n = order.index(c["passage_id"]) + 1 if c["passage_id"] in order else "?"
            mark = f"[{n}:{c['status']}]"
            # Two units of one source (a record's limit and its row) read as one mark.
            if mark not in marks:
                marks.append(mark)
        said = f"{quoted_label(s.get('quoted_as'))} {s['text']}" if s.get("quoted_by_server") \
            else s["text"]
        lines.append(f"- {said} {' '.join(marks)}")
    if order:
        lines.append("Sources:")
    for n, pid in enumerate(order, start=1):
        p = passages.get(pid)
        if p is None:
            continue
        prov = p["provenance"]
        where = " › ".join(prov["section_path"])
        page = f", page {prov['page']}" if prov.get("page") else ""
        lines.append(f"  [{n}] {prov['title']} — {where}{page} ({prov['source_file']})")
    return "\n".join(lines)


def register(sub: Any) -> None:
    p = sub.add_parser("ask", help="ask the running API a question")
    p.add_argument("question")
    p.add_argument("--type", action="append", help="document type filter (repeatable)")
    p.add_argument("--bundle", help="FHIR Bundle JSON file as patient context")
    p.add_argument("--strict", action="store_true", help="drop unverified sentences")
    p.add_argument("--as-of", help="answer from the versions in force on YYYY-MM-DD")
    p.add_argument("--json", action="store_true", help="print the raw JSON response")
    p.set_defaults(func=cmd_ask)
