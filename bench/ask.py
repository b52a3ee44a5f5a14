"""Time `/ask` end to end on this machine, stage by stage, against its own baseline.

Runs the real API (TestClient) over an already ingested Qdrant (default: the product's
`data/`, filled by `medcite ingest`), asks a fixed question set, and prints per-question
and median timings of retrieval, generation and verification. The baseline in the same
run is the bare generator call with the same prompt (no retrieval, no verification),
so the ratio shows what grounding and checking cost on top of generation.

    .venv/bin/python -m bench.ask [--questions N]
"""

from __future__ import annotations

import argparse
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


if __name__ == "__main__":
    main()
