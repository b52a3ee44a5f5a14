"""Admission control for generation: a bounded number of answers in flight, a bounded
queue with a maximum wait, and shedding (503 + Retry-After) beyond that.

A generator serves a few requests at a time (llama.cpp one, vLLM a batch). Without a
gate every extra request would pile up inside the model server until all of them pass
LLM_TIMEOUT_S together; with it, the API keeps `max_in_flight` requests at the model,
lets `max_queue` wait their turn, and tells the rest at once when to come back.

Waiting costs no worker thread: waiters are futures on the event loop. A slot may be
released from a worker thread (a streamed answer finishes in one), so the state is
guarded by a threading lock and handed over with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


class Overloaded(RuntimeError):
    """No slot now and none expected within the maximum wait: the API answers 503."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class AdmissionStats:
    in_flight: int
    queued: int
    admitted: int
    shed: int


_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


def _grant(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AdmissionGate:
    def __init__(self, max_in_flight: int, max_queue: int, max_wait_s: float) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if max_queue < 0 or max_wait_s < 0:
            raise ValueError("max_queue and max_wait_s must not be negative")
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiters: deque[_Waiter] = deque()
        self._admitted = 0
        self._shed = 0
        # How long a slot is held, smoothed: what Retry-After is estimated from.
        self._hold_s = 0.0

    def stats(self) -> AdmissionStats:
        with self._lock:
            return AdmissionStats(self._in_flight, len(self._waiters), self._admitted,
                                  self._shed)

    def retry_after_s(self) -> int:
        """Seconds until a slot is likely free for a newcomer; at least 1."""
        with self._lock:
            return self._retry_after_locked()

    def _retry_after_locked(self) -> int:
        ahead = len(self._waiters) + 1
        rounds = math.ceil(ahead / self.max_in_flight)
        return max(1, math.ceil(rounds * (self._hold_s or 1.0)))

    async def acquire(self) -> float:
        """Take a slot, waiting at most `max_wait_s`; returns the seconds waited.
        Raises Overloaded when the queue is full or the wait runs out."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        with self._lock:
            if self._in_flight < self.max_in_flight and not self._waiters:
                self._in_flight += 1
                self._admitted += 1
                return 0.0
            if len(self._waiters) >= self.max_queue:
                self._shed += 1
                raise Overloaded(
                    f"{self._in_flight} answers in progress and {len(self._waiters)} "
                    "waiting (the queue is full)", self._retry_after_locked())
            waiter: _Waiter = (loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter[1]), self.max_wait_s)
        except BaseException as exc:
            with self._lock:
                still_waiting = waiter in self._waiters
                if still_waiting:
                    self._waiters.remove(waiter)
                    if isinstance(exc, TimeoutError):
                        self._shed += 1
                        raise Overloaded(
                            f"no answer slot came free within {self.max_wait_s:g} s",
                            self._retry_after_locked()) from None
            if not still_waiting:
                # The slot was handed over just as the wait ended: it is ours.
                if not isinstance(exc, TimeoutError):
                    self.release()
                    raise
                with self._lock:
                    self._admitted += 1
                return time.perf_counter() - started
            raise
        with self._lock:
            self._admitted += 1
        return time.perf_counter() - started

    def release(self, held_s: float | None = None) -> None:
        """Give a slot back (from any thread); the longest waiter gets it."""
        with self._lock:
            if held_s is not None:
                self._hold_s = held_s if not self._hold_s else 0.8 * self._hold_s + 0.2 * held_s
            while self._waiters:
                loop, future = self._waiters.popleft()
                try:
                    # The slot passes straight to the waiter: in_flight stays as it is.
                    loop.call_soon_threadsafe(_grant, future)
                    return
                except RuntimeError:
                    continue  # its event loop is closed: nobody is waiting there
            self._in_flight -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """`async with gate.slot() as waited_s:` around one generation."""
        waited = await self.acquire()
        started = time.perf_counter()
        try:
            yield waited
        finally:
            self.release(time.perf_counter() - started)
