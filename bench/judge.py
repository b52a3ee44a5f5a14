"""How good is the generator as a citation judge? A small hand-labelled set of (evidence,
claim) pairs, judged three ways in one run:

* deterministic: app/answering/citation_checks.py alone (the evidence is the quote; supported
  or partial
  counts as "supported");
* llm-judge: app/verifiers.LLMJudge alone (verdict "supported" counts as supported);
* combined: the deterministic status, then the judge lowering it (what /ask does with
  MEDCITE_LLM_JUDGE=true).

    .venv/bin/python -m bench.judge [--json out.json]

It starts its own generator (the embedded llama.cpp unless LLM_BASE_URL is set) in a
temporary data folder, sharing the product's assembled weights. Half the claims are
supported by their evidence; the others change a dose, a drug, the polarity or the
population, the failures that matter in clinical answers.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.answering.citation_checks import verify_sentence  # noqa: E402
from app.answering.model_verifiers import LLMJudge, Verdict, apply_verifiers  # noqa: E402
from app.answering.models import CitationStatus  # noqa: E402
from app.core.container import build_generator  # noqa: E402
from app.core.settings import Settings  # noqa: E402
from app.llm import local_server as local_llm  # noqa: E402
from retrieval.models import Passage  # noqa: E402

LIPITOR = "The recommended starting dose of LIPITOR is 10 or 20 mg once daily."
RENAL = "Dosage adjustment in patients with renal dysfunction is not necessary."
NITRATES = ("Administration of VIAGRA with nitrates, either regularly and/or intermittently, "
            "is contraindicated.")
HYDROXYUREA = ("In infants 9 months of age and older, children, and adolescents with sickle "
               "cell anemia, offer treatment with hydroxyurea regardless of clinical severity.")
VIALS = ("Medications packaged as single-dose or single-use should never be used for more "
         "than one patient; leftover contents should be discarded.")
PDL = "Rosuvastatin and simvastatin are preferred agents; pitavastatin requires prior " \
      "authorization."
# (evidence, claim, supported?)
PAIRS: list[tuple[str, str, bool]] = [
    (LIPITOR, "Atorvastatin is usually started at 10 or 20 mg once daily.", True),
    (LIPITOR, "Atorvastatin is usually started at 40 mg once daily.", False),
    (RENAL, "No dose adjustment is needed for patients with renal dysfunction.", True),
    (RENAL, "Patients with renal dysfunction need a lower dose.", False),
    (NITRATES, "Sildenafil must not be given to patients taking nitrates.", True),
    (NITRATES, "Sildenafil can be combined with nitrates taken intermittently.", False),
    (HYDROXYUREA, "Hydroxyurea should be offered to children with sickle cell anemia from "
                  "9 months of age.", True),
    (HYDROXYUREA, "Hydroxyurea should be offered only to adults with severe sickle cell "
                  "anemia.", False),
    (VIALS, "Single-dose vials must be used for one patient only.", True),
    (VIALS, "Leftover medication in a single-dose vial may be used for the next patient.",
     False),
    (PDL, "Simvastatin is a preferred statin.", True),
    (PDL, "Atorvastatin is a preferred statin.", False),
]


def _passage(text: str) -> Passage:
    return Passage.model_validate({
        "id": "p", "text": text, "score": 1.0,
        "provenance": {"doc_id": "d", "title": "", "source_file": "f", "doc_type": "label",
                       "char_start": 0, "char_end": len(text)},
    })


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write per-pair results here")
    args = parser.parse_args()
    product = Settings()
    ok = (CitationStatus.supported, CitationStatus.partial)
    with tempfile.TemporaryDirectory(prefix="medcite-judge-") as tmp:
        settings = product.isolated(
            Path(tmp),
            local_llm_port=product.local_llm_port if product.llm_base_url else _free_port(),
        )
        router, process = build_generator(settings)
        try:
            judge = LLMJudge(router)
            rows = []
            for evidence, claim, label in PAIRS:
                passage = {"P": _passage(evidence)}
                deterministic = verify_sentence(claim, [("P", evidence)], passage)
                started = time.perf_counter()
                verdict = judge.judge(claim, evidence, phi=False)
                seconds = time.perf_counter() - started
                combined = verify_sentence(claim, [("P", evidence)], passage)
                if combined.status in ok:
                    # The same verdict, applied as /ask would (no second model call).
                    apply_verifiers(combined, passage, [_Fixed(verdict)], False)
                rows.append({
                    "claim": claim, "label": label,
                    "deterministic": deterministic.status in ok,
                    "judge": bool(verdict and verdict.verdict is Verdict.entailed),
                    "judge_verdict": verdict.verdict.value if verdict else None,
                    "judge_reason": verdict.reason if verdict else None,
                    "combined": combined.status in ok, "judge_s": round(seconds, 1),
                })
                print(f"{'+' if label else '-'} det={rows[-1]['deterministic']!s:<5} "
                      f"judge={rows[-1]['judge_verdict']!s:<12} {seconds:5.1f}s  {claim}",
                      flush=True)
        finally:
            local_llm.stop_server(process)
    print(f"\nmodel {router.model} at {router.base_url}; {len(rows)} labelled pairs "
          f"({sum(r['label'] for r in rows)} supported)\n")
    print("| verifier | accuracy | supported claims kept | unsupported claims caught |")
    print("|---|---:|---:|---:|")
    for name in ("deterministic", "judge", "combined"):
        acc = sum(r[name] == r["label"] for r in rows) / len(rows)
        pos = [r for r in rows if r["label"]]
        neg = [r for r in rows if not r["label"]]
        print(f"| {name} | {acc:.3f} | {sum(r[name] for r in pos)}/{len(pos)} | "
              f"{sum(not r[name] for r in neg)}/{len(neg)} |")
    print(f"\njudge latency: median {statistics.median(r['judge_s'] for r in rows):.1f} s "
          f"per citation (a deterministic check takes milliseconds)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


class _Fixed:
    """Replays a verdict already obtained, so the combined row costs no second call."""

    name = "llm-judge"

    def __init__(self, verdict):  # type: ignore[no-untyped-def]
        self._verdict = verdict

    def judge(self, claim: str, evidence: str, phi: bool):  # type: ignore[no-untyped-def]
        return self._verdict


if __name__ == "__main__":
    sys.exit(main())
