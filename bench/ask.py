"""Time `/ask` end to end on this machine, stage by stage, against its own baseline.

Runs the real API (TestClient) over an already ingested Qdrant (default: the product's
`data/`, filled by `medcite ingest`), asks a fixed question set, and prints per-question
and median timings of retrieval, generation and verification. The baseline in the same
run is the bare generator call with the same prompt (no retrieval, no verification),
so the ratio shows what grounding and checking cost on top of generation. With
`--compare-v1` each question is also answered by the v1 pipeline (the model copies
quotes; MEDCITE_CITATIONS=quotes) through the same generator, in the same run, and the
p50/p95 latency and generated tokens of both are printed side by side.

    .venv/bin/python -m bench.ask [--questions N] [--compare-v1]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fastapi.testclient import TestClient  # noqa: E402

from app.answering.prompting import build_messages  # noqa: E402
from app.api.main import create_app  # noqa: E402
from app.core.container import build_services  # noqa: E402
from app.core.settings import get_settings  # noqa: E402
from app.security.api_keys import KeyStore, Role  # noqa: E402

QUESTIONS = [
    "What is the recommended starting dose of atorvastatin?",
    "Is rosuvastatin a preferred drug on the Ohio Medicaid formulary?",
    "When does Medicare cover lipid testing?",
    "What should be done after a needlestick exposure to hepatitis B?",
    "What is the maximum daily dose of Lipitor for pediatric patients?",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    parser.add_argument("--compare-v1", action="store_true",
                        help="also answer with the v1 (copied-quote) pipeline, side by side")
    args = parser.parse_args()
    settings = get_settings()
    started = time.perf_counter()
    services = build_services(settings)
    startup = time.perf_counter() - started
    store = KeyStore(settings.keys_file)
    raw, key = store.create("bench", Role.clinician, ["public"])
    rows = []
    with TestClient(create_app(settings, services)) as api:
        for q in QUESTIONS[: args.questions]:
            t = time.perf_counter()
            r = api.post("/ask", json={"question": q}, headers={"Authorization": f"Bearer {raw}"})
            total = (time.perf_counter() - t) * 1000
            data = r.json()
            passages = services.retriever.search(q, access_groups=["public"],
                                                 limit=settings.top_k)
            t = time.perf_counter()
            services.generator.complete_raw(build_messages(q, passages, settings.context_chars))
            bare = (time.perf_counter() - t) * 1000
            rows.append((q, data["status"], data["timings_ms"], total, bare))
        if args.compare_v1:
            compare_v1(services, settings, QUESTIONS[: args.questions])
    services.close()
    store.revoke(key.key_id)
    print(f"machine: {os.cpu_count()} CPUs; generator {services.generator.model} at "
          f"{services.generator.base_url}; start-up {startup:.1f} s")
    print(f"{'question':<58} {'status':<19} {'retr':>6} {'gen':>7} {'verify':>6} "
          f"{'total':>7} {'bare gen':>8} {'ratio':>5}")
    for q, status, tm, total, bare in rows:
        print(f"{q[:57]:<58} {status:<19} {tm.get('retrieval', 0):>6.0f} "
              f"{tm.get('generation', 0):>7.0f} {tm.get('verification', 0):>6.0f} "
              f"{total:>7.0f} {bare:>8.0f} {total / bare:>5.2f}")
    med = statistics.median
    print(f"median /ask {med(r[3] for r in rows) / 1000:.1f} s; median bare generation "
          f"{med(r[4] for r in rows) / 1000:.1f} s; verification "
          f"{med(r[2].get('verification', 0) for r in rows):.0f} ms")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def compare_v1(services, settings, questions: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Both citation modes on the same questions and generator, alternating."""
    from app.answering.models import AskRequest
    from app.security.api_keys import Principal

    who = Principal(key_id="bench", name="bench", role=Role.clinician, groups=["public"])
    v1 = dataclasses.replace(services.answers,
                             settings=settings.model_copy(update={"citations": "quotes"}))
    primary = services.generator.endpoints[0].generator
    figures: dict[str, dict[str, list[float]]] = {
        "units (default)": {"s": [], "tokens": []}, "v1 quotes": {"s": [], "tokens": []}}
    for q in questions:
        for name, answers in (("units (default)", services.answers), ("v1 quotes", v1)):
            primary.last_completion_tokens = None
            t = time.perf_counter()
            status = answers.ask(AskRequest(question=q), who).status.value
            figures[name]["s"].append(time.perf_counter() - t)
            if primary.last_completion_tokens is not None:
                figures[name]["tokens"].append(primary.last_completion_tokens)
            print(f"  {name:<16} {status:<19} {figures[name]['s'][-1]:6.1f} s  {q[:50]}")
    print(f"{'pipeline':<16} {'p50 s':>7} {'p95 s':>7} {'tokens (mean)':>14}")
    for name, f in figures.items():
        tokens = f"{statistics.mean(f['tokens']):.0f}" if f["tokens"] else "-"
        print(f"{name:<16} {statistics.median(f['s']):>7.1f} {_p95(f['s']):>7.1f} {tokens:>14}")


if __name__ == "__main__":
    main()
