"""The API under contention (issue #19): concurrent /ask beside the requests that must
stay answerable (health, the documents list, the audit log), with a CPU-bound process
beside the API, then with a slow generator. Nothing hangs; a request the API cannot take
is a 503 with Retry-After, never a 500; a slow generator makes answers slower, not 503s,
while the queue can hold them; and every /ask, answered or shed, has its audit record,
the answered ones under the id the response carries."""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

import httpx

from app.api.main import create_app
from app.audit.log import AuditQuery
from app.audit.models import AuditAction
from app.core.container import Services
from tests.conftest import Keys, StandInLLM, _StandInLLM, serve

QUESTIONS = (
    "What is the recommended starting dose of atorvastatin?",
    "Is atorvastatin a preferred drug on the Ohio Medicaid lipotropics list?",
    "How often does Medicare cover lipid testing?",
    "What are the contraindications of atorvastatin?",
)
REQUEST_TIMEOUT_S = 180  # "nothing hangs": every request returns within this


@dataclass
class Side:
    """What the other requests saw while the asks ran."""

    statuses: list[tuple[str, int]] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> str:
        return ", ".join(
            f"{path} n={len(v)} p50={statistics.median(v) * 1000:.0f} ms "
            f"max={max(v) * 1000:.0f} ms" for path, v in sorted(self.latencies.items()))


@contextmanager
def side_traffic(url: str, keys: Keys) -> Iterator[Side]:
    """Health, documents and audit requested in turn until the block ends."""
    side, stop = Side(), threading.Event()
    calls = (("/health", None), ("/documents", keys.clinician), ("/audit?limit=5", keys.auditor))

    def loop() -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
            while not stop.is_set():
                for path, key in calls:
                    headers = {"Authorization": f"Bearer {key}"} if key else {}
                    started = time.perf_counter()
                    resp = http.get(f"{url}{path}", headers=headers)
                    side.latencies.setdefault(path.split("?")[0], []).append(
                        time.perf_counter() - started)
                    side.statuses.append((path, resp.status_code))
                time.sleep(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield side
    finally:
        stop.set()
        thread.join(timeout=REQUEST_TIMEOUT_S)
        assert not thread.is_alive(), "a side request hung"


def _burst(url: str, key: str, n: int, clients: int) -> list[tuple[httpx.Response, float]]:
    def ask(i: int) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        resp = httpx.post(f"{url}/ask", json={"question": QUESTIONS[i % len(QUESTIONS)]},
                          headers={"Authorization": f"Bearer {key}"},
                          timeout=REQUEST_TIMEOUT_S)
        return resp, time.perf_counter() - started

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(ask, i) for i in range(n)]
        return [f.result(timeout=REQUEST_TIMEOUT_S * 2) for f in futures]


def _check(services: Services, results: list[tuple[httpx.Response, float]], side: Side,
           audit_from: int) -> tuple[int, int]:
    """The rules every run must keep; returns (answered, shed)."""
    answered = [r for r, _ in results if r.status_code == 200]
    shed = [r for r, _ in results if r.status_code == 503]
    assert len(answered) + len(shed) == len(results), [r.status_code for r, _ in results]
    for r in shed:
        assert int(r.headers["Retry-After"]) >= 1, r.headers
        assert "at capacity" in r.json()["detail"], r.text
    assert side.statuses and {s for _, s in side.statuses} == {200}, side.statuses
    # Every /ask has exactly one record; an answer's record is the one its id names.
    records = {
        rec.seq: rec for rec in services.audit.search(
            AuditQuery(action=AuditAction.ask, limit=1000)).records if rec.seq > audit_from}
    assert len(records) == len(results), (len(records), len(results))
    for r in answered:
        body = r.json()
        rec = records[body["answer_id"]]
        assert rec.http_status == 200 and rec.details.kind == "ask"
        assert rec.details.answer_status == body["status"]
        assert [p.doc_id for p in rec.details.passages] == [
            p["provenance"]["doc_id"] for p in body["passages"]]
    assert sorted(rec.http_status for rec in records.values()) == sorted(
        r.status_code for r, _ in results)
    assert services.audit.verify().ok
    return len(answered), len(shed)


def _last_seq(services: Services) -> int:
    page = services.audit.search(AuditQuery(limit=1))
    return page.records[0].seq if page.records else 0


@contextmanager
def cpu_hog() -> Iterator[None]:
    """A CPU-bound process beside the API, as an ingest's embedding is."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def _load() -> str:
    with open("/proc/loadavg") as handle:
        return handle.read().split()[0]


def test_concurrent_asks_beside_other_requests_and_a_busy_core(
    make_services: Callable[..., Services], keys: Keys, standin_llm: StandInLLM
) -> None:
    services = make_services(llm_base_url=standin_llm.url, rate_limit_per_minute=0,
                             max_concurrent_answers=2, answer_queue=4,
                             answer_queue_wait_s=5.0)
    with serve(create_app(services.settings, services)) as url, cpu_hog():
        audit_from = _last_seq(services)
        started = time.perf_counter()
        with side_traffic(url, keys) as side:
            results = _burst(url, keys.clinician, n=32, clients=16)
        elapsed = time.perf_counter() - started
        answered, shed = _check(services, results, side, audit_from)
    assert answered >= 1
    lat = sorted(t for r, t in results if r.status_code == 200)
    print(f"\ncontention: 32 /ask by 16 clients, 2 in flight, queue 4 (5 s), one busy core; "
          f"load average {_load()}: {answered} answered, {shed} shed, {elapsed:.1f} s; "
          f"answer p50 {statistics.median(lat):.2f} s max {lat[-1]:.2f} s; {side.summary()}")


class _Slow(_StandInLLM):
    delay_s = 2.0

    def do_POST(self) -> None:  # noqa: N802
        time.sleep(self.delay_s)
        super().do_POST()


@contextmanager
def slow_llm(delay_s: float) -> Iterator[str]:
    handler = type("Slow", (_Slow,), {"prompts": [], "bodies": [], "mode": "good",
                                      "delay_s": delay_s})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_slow_generator_slows_answers_down_and_sheds_only_past_the_queue(
    make_services: Callable[..., Services], keys: Keys
) -> None:
    """A generator taking 2 s per answer, one at a time. With room in the queue, six
    concurrent asks are all answered, one after another (time, not 503s); with a queue
    of one and a 1 s wait, the burst is shed at once with Retry-After. Health, documents
    and audit answer quickly throughout."""
    with slow_llm(2.0) as llm:
        # Every ask generates (a formulary lookup would skip the slow generator).
        roomy = make_services(llm_base_url=llm, rate_limit_per_minute=0,
                              max_concurrent_answers=1, answer_queue=8,
                              answer_queue_wait_s=60.0, record_answers=False)
        with serve(create_app(roomy.settings, roomy)) as url:
            audit_from = _last_seq(roomy)
            with side_traffic(url, keys) as side:
                results = _burst(url, keys.clinician, n=6, clients=6)
            answered, shed = _check(roomy, results, side, audit_from)
        assert (answered, shed) == (6, 0)
        times = sorted(t for _, t in results)
        assert times[-1] >= 6 * 2.0 * 0.9, times  # served one at a time, none dropped
        # Health is no answer: it must not wait for the generator.
        assert max(side.latencies["/health"]) < 5.0, side.summary()
        print(f"\nslow generator (2 s), 1 in flight, queue 8: 6 answered, slowest "
              f"{times[-1]:.1f} s; load average {_load()}; {side.summary()}")

        tight = make_services(llm_base_url=llm, rate_limit_per_minute=0,
                              max_concurrent_answers=1, answer_queue=1,
                              answer_queue_wait_s=1.0, record_answers=False)
        with serve(create_app(tight.settings, tight)) as url:
            audit_from = _last_seq(tight)
            with side_traffic(url, keys) as side:
                started = time.perf_counter()
                results = _burst(url, keys.clinician, n=8, clients=8)
                elapsed = time.perf_counter() - started
            answered, shed = _check(tight, results, side, audit_from)
        assert answered >= 1 and shed >= 5, (answered, shed)
        shed_times = [t for r, t in results if r.status_code == 503]
        assert max(shed_times) < 30, shed_times  # told at once or after the 1 s wait
        assert max(side.latencies["/health"]) < 5.0, side.summary()
        print(f"slow generator (2 s), 1 in flight, queue 1 (1 s): {answered} answered, "
              f"{shed} shed (slowest shed {max(shed_times):.1f} s) in {elapsed:.1f} s; "
              f"{side.summary()}")


def test_lookups_do_not_wait_for_the_generators_slot(
    make_services: Callable[..., Services], keys: Keys
) -> None:
    """Seen on a live API: two formulary lookups shed with 503 at_capacity while the
    one-slot CPU generator wrote a 50 s answer. A lookup needs no generator: with the
    only slot held by a slow generation and no queue, lookups on /ask and /ask/stream are
    answered at once, and a second model question is still shed."""
    with slow_llm(6.0) as llm:
        services = make_services(llm_base_url=llm, rate_limit_per_minute=0,
                                 max_concurrent_answers=1, answer_queue=0,
                                 answer_queue_wait_s=0.5)
        auth = {"Authorization": f"Bearer {keys.clinician}"}
        with serve(create_app(services.settings, services)) as url, \
                httpx.Client(timeout=REQUEST_TIMEOUT_S) as http, ThreadPoolExecutor(1) as pool:
            slow = pool.submit(http.post, f"{url}/ask", headers=auth,
                               json={"question": QUESTIONS[0]})
            deadline = time.monotonic() + 30
            while services.admission.stats().in_flight == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert services.admission.stats().in_flight == 1, "the model question holds the slot"
            lookup = "Is atorvastatin a preferred drug on the Ohio Medicaid lipotropics list?"
            started = time.perf_counter()
            asked = http.post(f"{url}/ask", headers=auth, json={"question": lookup})
            with http.stream("POST", f"{url}/ask/stream", headers=auth,
                             json={"question": lookup}) as streamed:
                events = [line.split(":", 1)[1].strip() for line in streamed.iter_lines()
                          if line.startswith("event:")]
                stream_status = streamed.status_code
            waited = time.perf_counter() - started
            shed = http.post(f"{url}/ask", headers=auth,
                             json={"question": QUESTIONS[3]})
            assert services.admission.stats().in_flight == 1 and not slow.done(), \
                "the lookups ran while the generation still held the slot"
            assert slow.result(timeout=REQUEST_TIMEOUT_S).status_code == 200
    assert asked.status_code == 200, asked.text
    assert asked.json()["answered_from"] == "records" and asked.json()["status"] == "verified"
    assert stream_status == 200 and events == ["passages", "answer"], events
    assert waited < 6.0, waited
    assert shed.status_code == 503 and "at capacity" in shed.json()["detail"], shed.text
