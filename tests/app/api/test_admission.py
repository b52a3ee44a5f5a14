"""Admission control: a bounded number of answers at the generator, a bounded queue with
a maximum wait, and a 503 with Retry-After beyond that, on /ask and /ask/stream."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.api.admission import AdmissionGate, Overloaded
from app.api.main import create_app
from app.audit.log import AuditQuery
from app.core.container import Services
from tests.conftest import Keys, serve
from tests.processes import stalled_endpoint

ATORVASTATIN = "What is the recommended starting dose of atorvastatin?"


def test_gate_admits_queues_then_sheds() -> None:
    async def scenario() -> None:
        gate = AdmissionGate(max_in_flight=1, max_queue=1, max_wait_s=5)
        assert await gate.acquire() == 0.0
        waiting = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0.05)
        assert gate.stats().queued == 1
        with pytest.raises(Overloaded, match="queue is full") as full:
            await gate.acquire()
        assert full.value.retry_after_s >= 1
        # Released from another thread, as a finished stream does: the waiter gets it.
        threading.Timer(0.1, gate.release, kwargs={"held_s": 3.0}).start()
        waited = await waiting
        assert waited >= 0.09
        stats = gate.stats()
        assert (stats.in_flight, stats.queued, stats.admitted, stats.shed) == (1, 0, 2, 1)
        gate.release(held_s=3.0)
        assert gate.stats().in_flight == 0

    asyncio.run(scenario())


def test_gate_sheds_a_waiter_after_the_maximum_wait() -> None:
    async def scenario() -> None:
        gate = AdmissionGate(max_in_flight=1, max_queue=4, max_wait_s=0.2)
        await gate.acquire()
        started = time.perf_counter()
        with pytest.raises(Overloaded, match="within 0.2 s"):
            await gate.acquire()
        assert time.perf_counter() - started < 2
        assert gate.stats().queued == 0  # the timed-out waiter left the queue
        gate.release()
        assert await gate.acquire() == 0.0  # and the slot is free again

    asyncio.run(scenario())


def test_gate_cancelled_waiter_gives_no_slot_away() -> None:
    async def scenario() -> None:
        gate = AdmissionGate(max_in_flight=1, max_queue=4, max_wait_s=5)
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.release()
        assert gate.stats().in_flight == 0 and gate.stats().queued == 0

    asyncio.run(scenario())


def test_gate_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        AdmissionGate(0, 1, 1)
    with pytest.raises(ValueError, match="negative"):
        AdmissionGate(1, -1, 1)


def _wait_for(check: Callable[[], bool], timeout_s: float = 300) -> None:
    # Generous: retrieval runs before the gate, and a busy CI machine makes it slow.
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_api_queues_then_sheds_with_retry_after_when_every_slot_is_taken(
    make_services: Callable[..., Services], keys: Keys
) -> None:
    """The one slot is taken (as by an answer in progress); the next request waits in
    the queue, the ones after it are shed at once on /ask and /ask/stream. When the slot
    comes back the queued request gets it and reaches the generator: a real process that
    accepts and never answers, so it ends in the generator's own clear 503."""
    auth = {"Authorization": f"Bearer {keys.clinician}"}
    with stalled_endpoint() as llm:
        services = make_services(llm_base_url=llm, llm_timeout_s=3.0,
                                 max_concurrent_answers=1, answer_queue=1,
                                 answer_queue_wait_s=600.0, rate_limit_per_minute=0)
        gate = services.admission
        asyncio.run(gate.acquire())  # the answer in progress
        with serve(create_app(services.settings, services)) as url, \
                ThreadPoolExecutor(1) as pool:
            def ask() -> httpx.Response:
                return httpx.post(f"{url}/ask", headers=auth, json={"question": ATORVASTATIN},
                                  timeout=900)

            queued = pool.submit(ask)
            _wait_for(lambda: gate.stats().queued == 1)
            shed = ask()
            streamed = httpx.post(f"{url}/ask/stream", headers=auth,
                                  json={"question": ATORVASTATIN}, timeout=900)
            # Both came back while the slot was still taken: nothing waited for it.
            assert gate.stats().in_flight == 1 and gate.stats().queued == 1
            gate.release(held_s=5.0)  # from this thread, as a finished stream does
            reached = queued.result()
        stats = gate.stats()
    assert shed.status_code == 503 and int(shed.headers["Retry-After"]) >= 1
    assert "at capacity" in shed.json()["detail"] and "queue is full" in shed.json()["detail"]
    assert streamed.status_code == 503 and int(streamed.headers["Retry-After"]) >= 1
    assert reached.status_code == 503
    assert "did not answer within 3 s" in reached.json()["detail"]
    assert reached.headers.get("Retry-After") is None  # a timeout, not a shed
    assert (stats.in_flight, stats.queued, stats.admitted, stats.shed) == (0, 0, 2, 2)
    records = services.audit.search(AuditQuery()).records
    assert sorted(rec.http_status for rec in records) == [503, 503, 503]
    assert sum("at capacity" in (rec.details.error or "") for rec in records) == 2


def test_abstentions_skip_the_gate(
    make_services: Callable[..., Services], keys: Keys
) -> None:
    """A question the sources can't answer never needs the generator, so it is answered
    even while every slot is taken."""
    services = make_services(max_concurrent_answers=1, answer_queue=0,
                             rate_limit_per_minute=0)

    async def take_slot() -> None:
        await services.admission.acquire()

    asyncio.run(take_slot())
    with serve(create_app(services.settings, services)) as url:
        r = httpx.post(f"{url}/ask", headers={"Authorization": f"Bearer {keys.restricted}"},
                       json={"question": ATORVASTATIN}, timeout=60)
    assert r.status_code == 200 and r.json()["abstained"], r.text
    assert services.admission.stats().shed == 0
