"""What the metrics cost per request (#18): /ask side by side with and without them, and
the metric calls alone.

One label ingested into an embedded Qdrant in a temporary folder, the real retrieval and
verification, generation by the tests' stand-in endpoint (it answers at once, so the
metrics' share is as large as it can be). Two apps share the services: one as shipped
(the metrics middleware, the per-answer observations, the generator observer), one with
all three removed. Requests alternate between them so drifts of a busy machine hit both.

    .venv/bin/python -m bench.metrics_overhead --rounds 60
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.settings import REPO_ROOT, Settings
from app.operations.metrics import MetricsMiddleware
from app.security.api_keys import KeyStore, Role
from tests.conftest import SMALL_CORPUS, _StandInLLM, write_corpus

QUESTION = "What is the recommended starting dose of atorvastatin?"


def _us(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1e6:.1f} µs, "
            f"mean {statistics.mean(values) * 1e6:.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()

    from app.core.container import build_services
    from ingest.pipeline import ingest_path

    handler = type("Handler", (_StandInLLM,), {"prompts": [], "bodies": [], "mode": "good"})
    llm = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=llm.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = write_corpus(root / "corpus", {
            k: v for k, v in SMALL_CORPUS.items() if k.startswith("drug-labels")})
        settings = Settings(
            MEDCITE_DATA_DIR=root / "data", MEDCITE_MODELS_DIR=REPO_ROOT / "data" / "models",
            LLM_BASE_URL=f"http://127.0.0.1:{llm.server_address[1]}/v1",
            MEDCITE_RATE_LIMIT_PER_MINUTE=0)
        t = time.perf_counter()
        ingest_path(corpus, settings, progress=False)
        print(f"ingested in {time.perf_counter() - t:.1f} s")
        services = build_services(settings)
        key = KeyStore(settings.keys_file).create("bench", Role.clinician, ["public"])[0]
        headers = {"Authorization": f"Bearer {key}"}

        shipped = create_app(settings, services)
        bare = create_app(settings, services)
        bare.user_middleware = [m for m in bare.user_middleware
                                if m.cls is not MetricsMiddleware]
        real_observe, real_observer = services.ops.observe_ask, services.generator.observer

        def metrics_on(on: bool) -> None:
            services.ops.observe_ask = real_observe if on else (  # type: ignore[method-assign]
                lambda *a, **k: None)
            services.generator.observer = real_observer if on else None

        timings: dict[str, list[float]] = {"with metrics": [], "without": []}
        with TestClient(shipped) as a, TestClient(bare) as b:
            for client, on in ((a, True), (b, False)):  # warm-up
                metrics_on(on)
                client.post("/ask", headers=headers, json={"question": QUESTION})
            for _ in range(args.rounds):
                for name, client, on in (("with metrics", a, True), ("without", b, False)):
                    metrics_on(on)
                    t = time.perf_counter()
                    r = client.post("/ask", headers=headers, json={"question": QUESTION})
                    timings[name].append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
            metrics_on(True)
            scraper = {"Authorization": "Bearer " + KeyStore(settings.keys_file).create(
                "prom", Role.metrics, [])[0]}
            scrape = []
            for _ in range(20):
                t = time.perf_counter()
                body = a.get("/metrics", headers=scraper).text
                scrape.append(time.perf_counter() - t)

        from app.answering.models import AskRequest
        from app.security.api_keys import Principal

        answer = services.answers.ask(AskRequest(question=QUESTION), Principal(
            key_id="b", name="b", role=Role.clinician))
        metrics = services.ops.metrics
        calls = []
        for _ in range(2000):
            t = time.perf_counter()
            services.ops.observe_ask(200, answer, None, 123.0)
            metrics.observe_request("POST", "/ask", 200, 0.1)
            calls.append(time.perf_counter() - t)
        services.close()
    llm.shutdown()

    print(f"/ask, {args.rounds} requests each, alternating (stand-in generator):")
    for name, values in timings.items():
        ms = sorted(v * 1000 for v in values)
        print(f"  {name:<13} median {statistics.median(ms):.1f} ms, mean "
              f"{statistics.mean(ms):.1f} ms, p90 {ms[int(0.9 * len(ms))]:.1f} ms")
    diff = statistics.median(timings["with metrics"]) - statistics.median(timings["without"])
    print(f"  difference of medians: {diff * 1000:+.2f} ms")
    print(f"metric calls per answered /ask (observe_ask + observe_request): {_us(calls)}")
    print(f"GET /metrics: {_us(scrape)}, {len(body)} bytes")


if __name__ == "__main__":
    main()
