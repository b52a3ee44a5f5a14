"""Structured generation through any OpenAI-compatible chat endpoint (vLLM, llama.cpp)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from app.answering.prompting import ANSWER_SCHEMA, GenAnswer, GenUnitAnswer

T = TypeVar("T", bound=BaseModel)
# How long a health check waits for the endpoint's model list before calling it busy.
PING_TIMEOUT_S = 2.0


class GeneratorUnavailable(RuntimeError):
    """The endpoint could not be reached or timed out: the API answers 503."""


class MalformedOutput(ValueError):
    """The model's output is not the JSON we asked for, even after a retry."""


def generation_timed_out(exc: BaseException) -> bool:
    """Whether an unavailable generator was in fact a slow one (the timeout is somewhere
    in the exception's chain)."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        if isinstance(seen, openai.APITimeoutError):
            return True
        visited.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    return False


def response_format(
    mode: str, schema: dict[str, Any] = ANSWER_SCHEMA, name: str = "cited_answer"
) -> dict[str, Any] | None:
    # vLLM takes OpenAI's json_schema form; llama.cpp's server takes json_object + schema.
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


def parse_answer(content: str) -> GenAnswer:
    return _parse(content, GenAnswer)


def parse_unit_answer(content: str, allowed: set[str] | None = None) -> GenUnitAnswer:
    """The model's unit-cited answer. An id outside `allowed` (possible only where the
    endpoint ignores the schema's enum) makes the output malformed, never a citation."""
    answer = _parse(content, GenUnitAnswer)
    if allowed is not None:
        stray = {u for s in answer.sentences for u in s.units} - allowed
        if stray:
            raise MalformedOutput("cited unit ids that were not in the prompt: "
                                  + ", ".join(sorted(stray)[:5]))
    return answer


def _parse(content: str, model: type[T]) -> T:
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text[text.find("{"):]
    try:
        return model.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise MalformedOutput(str(exc)[:300]) from exc


@dataclass
class ChatGenerator:
    base_url: str
    model: str
    api_key: str
    timeout_s: float
    max_tokens: int
    structured_mode: str  # json_schema | json_object | none

    def __post_init__(self) -> None:
        # Tokens the last non-streamed completion generated (the endpoint's own count),
        # for the evaluation's figures; None when the endpoint did not say.
        self.last_completion_tokens: int | None = None
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=self.api_key, timeout=self.timeout_s, max_retries=0
        )

    def _request(
        self, messages: list[dict[str, str]], stream: bool,
        fmt: dict[str, Any] | None | bool = True, max_tokens: int | None = None,
    ) -> Any:
        kwargs: dict[str, Any] = {}
        # True: the answer schema; a dict: that response format; None: free text.
        fmt = response_format(self.structured_mode) if fmt is True else fmt
        if fmt:
            kwargs["response_format"] = fmt
        try:
            return self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=0.0,
                max_tokens=max_tokens or self.max_tokens,
                stream=stream,
                **kwargs,
            )
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise GeneratorUnavailable(f"generator at {self.base_url} unreachable: {exc}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise GeneratorUnavailable(
                    f"generator at {self.base_url} failed with HTTP {exc.status_code}"
                ) from exc
            raise

    def raw_completion(
        self, messages: list[dict[str, str]], schema: dict[str, Any] | None = None
    ) -> str:
        fmt: dict[str, Any] | None | bool = (
            True if schema is None else response_format(self.structured_mode, schema,
                                                         "cited_answer"))
        out = self._request(messages, stream=False, fmt=fmt)
        usage = getattr(out, "usage", None)
        self.last_completion_tokens = getattr(usage, "completion_tokens", None)
        return out.choices[0].message.content or ""

    def warm_up(self, messages: list[dict[str, str]]) -> None:
        """One token after `messages`: the server reads them into its prompt cache."""
        self._request(messages, stream=False, fmt=None, max_tokens=1)

    @property
    def constrained(self) -> bool:
        """Whether the endpoint enforces the schema (then a repair retry cannot help)."""
        return self.structured_mode in ("json_schema", "json_object")

    def generate_units(
        self, messages: list[dict[str, str]], schema: dict[str, Any], allowed: set[str]
    ) -> GenUnitAnswer:
        """A unit-cited answer, constrained by `schema`; retried once only where the
        endpoint does not enforce the schema."""
        try:
            return parse_unit_answer(self.raw_completion(messages, schema), allowed)
        except MalformedOutput:
            if self.constrained:
                raise
            return parse_unit_answer(self.raw_completion(messages, schema), allowed)

    def complete_json(
        self, messages: list[dict[str, str]], schema: dict[str, Any], name: str,
        max_tokens: int,
    ) -> str:
        """One completion constrained to another schema than the answer's (a verdict)."""
        fmt = response_format(self.structured_mode, schema, name)
        out = self._request(messages, stream=False, fmt=fmt, max_tokens=max_tokens)
        return out.choices[0].message.content or ""

    def stream(
        self, messages: list[dict[str, str]], schema: dict[str, Any] | None = None
    ) -> Iterator[str]:
        """The model's output as it is generated (raw JSON text)."""
        fmt: dict[str, Any] | None | bool = (
            True if schema is None else response_format(self.structured_mode, schema,
                                                         "cited_answer"))
        try:
            for chunk in self._request(messages, stream=True, fmt=fmt):
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise GeneratorUnavailable(f"generator at {self.base_url} unreachable: {exc}") from exc

    def generate(self, messages: list[dict[str, str]]) -> GenAnswer:
        """One retry on malformed output, then MalformedOutput."""
        try:
            return parse_answer(self.raw_completion(messages))
        except MalformedOutput:
            return parse_answer(self.raw_completion(messages))

    def ping(self) -> bool:
        """Whether the endpoint is up: it accepts a connection. llama.cpp's server answers
        `/v1/models` only between generations, so a health check waited for a whole answer
        (`bench/load.py`: /health p95 9.9 s at one client); an endpoint that accepts and is
        slow to reply is busy, not down."""
        try:
            self._client.with_options(timeout=PING_TIMEOUT_S, max_retries=0).models.list()
            return True
        except openai.APITimeoutError:
            return True
        except openai.OpenAIError:
            return False
