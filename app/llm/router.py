"""Routes generation over the configured OpenAI-compatible endpoints.

The local endpoint (vLLM on the hospital's GPU, or the embedded llama.cpp) comes first.
An optional second endpoint may take over when the first is down, but only for
questions without PHI unless it is marked `phi_allowed`: a request with FHIR context or
one the PHI detector flags never reaches an endpoint that may not see PHI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from app.answering.prompting import GenAnswer, GenUnitAnswer
from app.llm.client import ChatGenerator, GeneratorUnavailable, generation_timed_out

log = logging.getLogger("medcite.llm")


@dataclass
class Endpoint:
    name: str
    generator: ChatGenerator
    phi_allowed: bool


class NoEndpoint(GeneratorUnavailable):
    pass


class GeneratorObserver(Protocol):
    """Told of every generator call (app/operations/metrics.py counts them)."""

    def generator_completed(self, endpoint: str, seconds: float, tokens: int | None) -> None:
        ...

    def generator_failed(self, endpoint: str, timed_out: bool) -> None:
        ...


@dataclass
class GeneratorRouter:
    endpoints: list[Endpoint]
    observer: GeneratorObserver | None = None

    def _completed(self, endpoint: Endpoint, started: float, tokens: int | None) -> None:
        if self.observer is not None:
            self.observer.generator_completed(endpoint.name, time.perf_counter() - started,
                                              tokens)

    def _failed(self, endpoint: Endpoint, exc: GeneratorUnavailable) -> None:
        if self.observer is not None:
            self.observer.generator_failed(endpoint.name, generation_timed_out(exc))

    @property
    def model(self) -> str:
        return self.endpoints[0].generator.model

    @property
    def base_url(self) -> str:
        return self.endpoints[0].generator.base_url

    def eligible(self, phi: bool) -> list[Endpoint]:
        return [e for e in self.endpoints if e.phi_allowed or not phi]

    def generate(self, messages: list[dict[str, str]], phi: bool = True) -> GenAnswer:
        return self._first(phi, lambda g: g.generate(messages))

    def generate_units(
        self, messages: list[dict[str, str]], schema: dict[str, Any], allowed: set[str],
        phi: bool = True,
    ) -> GenUnitAnswer:
        return self._first(phi, lambda g: g.generate_units(messages, schema, allowed))

    def complete_raw(self, messages: list[dict[str, str]], phi: bool = True) -> str:
        return self._first(phi, lambda g: g.raw_completion(messages))

    def complete_json(
        self, messages: list[dict[str, str]], schema: dict[str, Any], name: str,
        max_tokens: int, phi: bool = True,
    ) -> str:
        """A schema-constrained completion (e.g. a judge's verdict), routed like answers:
        never to an endpoint that may not see PHI when `phi`."""
        return self._first(phi, lambda g: g.complete_json(messages, schema, name, max_tokens))

    def stream(
        self, messages: list[dict[str, str]], phi: bool = True,
        schema: dict[str, Any] | None = None,
    ) -> Iterator[str]:
        # Only the start can fail over: once tokens flowed, switching would mix answers.
        errors = []
        for endpoint in self.eligible(phi):
            started = time.perf_counter()
            tokens = endpoint.generator.stream(messages, schema)
            try:
                first = next(tokens)
            except StopIteration:
                return
            except GeneratorUnavailable as exc:
                self._failed(endpoint, exc)
                errors.append(f"{endpoint.name}: {exc}")
                continue
            yield first
            count = 1  # streamed chunks: one token each from vLLM and llama.cpp
            try:
                for token in tokens:
                    count += 1
                    yield token
            except GeneratorUnavailable as exc:
                self._failed(endpoint, exc)
                raise
            self._completed(endpoint, started, count)
            return
        raise NoEndpoint(self._why(phi, errors))

    def _first(self, phi: bool, call):  # type: ignore[no-untyped-def]
        errors = []
        last: GeneratorUnavailable | None = None
        for endpoint in self.eligible(phi):
            # One retry per endpoint, but not after a timeout: a slow model would only
            # double the wait.
            for attempt in (1, 2):
                started = time.perf_counter()
                try:
                    out = call(endpoint.generator)
                    # The endpoint's own count of the completion (None if not told); with
                    # concurrent calls on one endpoint it may be a neighbour's.
                    self._completed(endpoint, started,
                                    getattr(endpoint.generator, "last_completion_tokens", None))
                    return out
                except GeneratorUnavailable as exc:
                    self._failed(endpoint, exc)
                    last = exc
                    log.warning("endpoint unavailable",
                                extra={"endpoint": endpoint.name, "attempt": attempt})
                    if attempt == 2 or generation_timed_out(exc):
                        errors.append(f"{endpoint.name}: {exc}")
                        break
        raise NoEndpoint(self._why(phi, errors)) from last

    def _why(self, phi: bool, errors: list[str]) -> str:
        if not errors:
            return "no generation endpoint may receive this request (it carries PHI)"
        return "no generation endpoint could answer: " + "; ".join(errors)

    def warm_up(self, messages: list[dict[str, str]]) -> bool:
        """The primary endpoint reads the fixed instructions once, before any question:
        llama.cpp keeps the longest common prefix of its last prompt, so later prompts
        start after them, and the embedded server pages its weights in now (the first
        question on a fresh `medcite up` took ~20 s longer than the next ones). Best
        effort and not counted in the metrics: False when the endpoint did not answer."""
        try:
            self.endpoints[0].generator.warm_up(messages)
        except Exception:  # noqa: BLE001 - a warm-up never fails the service
            log.warning("generator warm-up failed", extra={"endpoint": self.endpoints[0].name})
            return False
        return True

    def ping(self) -> bool:
        return any(e.generator.ping() for e in self.endpoints)
