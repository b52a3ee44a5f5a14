"""A small typed client for the medcite HTTP API, used by the Streamlit page.

Every failure (network, HTTP status, malformed body) is turned into one `ApiError`
so the page has a single thing to catch and show.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.answering.models import AskRequest, AskResponse, HealthResponse
from app.audit.models import AuditPage
from app.operations.models import (
    AlarmState,
    FeedbackRequest,
    FeedbackResponse,
    ReviewQueue,
    ReviewRequest,
    ReviewResponse,
)
from app.security.api_keys import Principal
from ui.models import DocumentDiff, DocumentInfo, IngestJob, VersionInfo

# Answering runs retrieval, a CPU LLM and verification: 20-60 s is normal, so the
# timeout is set far above that rather than near it.
DEFAULT_ASK_TIMEOUT_S = 300.0
# /health also pings the generator, which can stall while it is busy answering; the
# page treats a timeout as "busy", so this only bounds how long a page load waits.
DEFAULT_HEALTH_TIMEOUT_S = 10.0
# Listing documents, diffs and the audit log: database reads, quick even on a busy CPU.
DEFAULT_READ_TIMEOUT_S = 60.0

ModelT = TypeVar("ModelT", bound=BaseModel)


class ApiError(Exception):
    """A failed API call. `status` is the HTTP status, or None if no response came back."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.message} (HTTP {self.status})"


class ApiTimeout(ApiError):
    """Connected, but no response in time: the API is up and busy, not down."""


def _format_detail(detail: Any) -> str:
    """Flatten FastAPI's `detail` (a string, or a list of pydantic errors) into one line."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts: list[str] = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                msg = str(item.get("msg", item))
                parts.append(f"{loc}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def _error_from_response(response: httpx.Response) -> ApiError:
    detail: str
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail = _format_detail(body["detail"])
    else:
        detail = response.text.strip()[:500] or response.reason_phrase

    status = response.status_code
    if status == 401:
        message = "The API rejected the API key or token" + (f" ({detail})" if detail else "")
    elif status == 403:
        message = "Your key's role may not do this" + (f": {detail}" if detail else "")
    elif status == 404:
        message = f"Not found: {detail}"
    elif status == 422:
        message = f"The API rejected the request: {detail}"
    elif status == 413:
        message = f"The request is too large: {detail}"
    elif status == 503:
        message = f"The answer generator is unavailable, try again later: {detail}"
    else:
        message = f"The API returned an error: {detail}"
    return ApiError(status, message)


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event of /ask/stream: `passages`, `token`, `answer` or `error`."""

    event: str
    data: dict[str, Any]


def parse_sse(lines: Iterator[str]) -> Iterator[StreamEvent]:
    """Server-sent events from text lines: `event:` and `data:` fields, blank-line ended."""
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield _sse_event(event, "\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        # Comments (":") and unknown fields are ignored, as the SSE spec says.
    if data:
        yield _sse_event(event, "\n".join(data))


def _sse_event(event: str, data: str) -> StreamEvent:
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise ApiError(200, f"The API sent a malformed {event!r} event") from exc
    if not isinstance(body, dict):
        raise ApiError(200, f"The API sent a malformed {event!r} event")
    return StreamEvent(event, body)


def ask_body(request: AskRequest) -> dict[str, Any]:
    # The as-of date travels inside `filters` (SearchFilters.as_of), as the API reads it.
    return request.model_dump(mode="json", exclude_none=True)


def _key_path(doc_key: str) -> str:
    # doc keys hold ":" and may hold "/"; one path segment each, so encode everything.
    return quote(doc_key, safe="")


class MedciteClient:
    """Synchronous client; one short-lived HTTP connection per call (the page reruns often).

    It holds exactly one credential, the signed-in user's, and sends it on every call but
    /health: the UI can never do more than its user may.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        ask_timeout_s: float = DEFAULT_ASK_TIMEOUT_S,
        health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.ask_timeout_s = ask_timeout_s
        self.health_timeout_s = health_timeout_s
        self.read_timeout_s = read_timeout_s
        # Injectable so tests can use httpx.MockTransport instead of a server.
        self._transport = transport

    def _headers(self, auth: bool, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept}
        if auth and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _failure(self, exc: httpx.HTTPError, timeout_s: float) -> ApiError:
        if isinstance(exc, httpx.ConnectTimeout):
            return ApiError(
                None, f"Cannot reach the medcite API at {self.base_url}: connection timed out"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ApiTimeout(
                None, f"The medcite API at {self.base_url} did not answer within {timeout_s:.0f} s"
            )
        return ApiError(None, f"Cannot reach the medcite API at {self.base_url}: {exc}")

    def _request(
        self,
        method: str,
        path: str,
        *,
        timeout_s: float,
        auth: bool = True,
        json_body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> httpx.Response:
        url = f"{self.base_url}{path}"
        clean = {k: v for k, v in (params or {}).items() if v is not None} or None
        try:
            with httpx.Client(timeout=timeout_s, transport=self._transport) as client:
                response = client.request(
                    method, url, headers=self._headers(auth), json=json_body, params=clean,
                    data=data, files=files,
                )
        except httpx.HTTPError as exc:
            raise self._failure(exc, timeout_s) from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        return response

    def health(self) -> HealthResponse:
        # /health is the one unauthenticated endpoint, so no key is sent.
        response = self._request("GET", "/health", timeout_s=self.health_timeout_s, auth=False)
        return _parse(response, HealthResponse)

    def me(self) -> Principal:
        """Who the key belongs to: its role decides which pages the UI offers."""
        return _parse(self._request("GET", "/me", timeout_s=self.health_timeout_s), Principal)

    def ask(self, request: AskRequest) -> AskResponse:
        response = self._request(
            "POST", "/ask", timeout_s=self.ask_timeout_s, json_body=ask_body(request)
        )
        return _parse(response, AskResponse)

    def ask_stream(self, request: AskRequest) -> Iterator[StreamEvent]:
        """The events of POST /ask/stream as they arrive; an `error` event raises ApiError."""
        url = f"{self.base_url}/ask/stream"
        try:
            with (
                httpx.Client(timeout=self.ask_timeout_s, transport=self._transport) as client,
                client.stream(
                    "POST", url, json=ask_body(request),
                    headers=self._headers(True, "text/event-stream"),
                ) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    raise _error_from_response(response)
                for event in parse_sse(response.iter_lines()):
                    if event.event == "error":
                        detail = str(event.data.get("detail", "unknown error"))
                        raise ApiError(response.status_code, f"The API stopped: {detail}")
                    yield event
        except httpx.HTTPError as exc:
            raise self._failure(exc, self.ask_timeout_s) from exc

    # -- documents (roles policy_admin and readers) ----------------------------------------

    def documents(self, include_retired: bool = False) -> list[DocumentInfo]:
        response = self._request(
            "GET", "/documents", timeout_s=self.read_timeout_s,
            params={"include_retired": str(include_retired).lower()},
        )
        return _parse_list(response, DocumentInfo)

    def versions(self, doc_key: str) -> list[VersionInfo]:
        response = self._request(
            "GET", f"/documents/{_key_path(doc_key)}/versions", timeout_s=self.read_timeout_s
        )
        return _parse_list(response, VersionInfo)

    def diff(
        self, doc_key: str, from_version: int | None = None, to_version: int | None = None
    ) -> DocumentDiff:
        response = self._request(
            "GET", f"/documents/{_key_path(doc_key)}/diff", timeout_s=self.read_timeout_s,
            params={"from": from_version, "to": to_version},
        )
        return _parse(response, DocumentDiff)

    def upload(
        self,
        filename: str,
        content: bytes,
        *,
        doc_type: str,
        payer: str | None = None,
        effective_date: date | None = None,
        access_groups: list[str] | None = None,
        doc_key: str | None = None,
    ) -> IngestJob:
        form = {
            "doc_type": doc_type,
            "payer": payer,
            "effective_date": effective_date.isoformat() if effective_date else None,
            "access_groups": ",".join(access_groups) if access_groups else None,
            "doc_key": doc_key,
        }
        response = self._request(
            "POST", "/documents/upload", timeout_s=self.read_timeout_s,
            data={k: v for k, v in form.items() if v}, files={"file": (filename, content)},
        )
        return _parse(response, IngestJob)

    def job(self, job_id: str) -> IngestJob:
        response = self._request(
            "GET", f"/ingest/jobs/{quote(job_id, safe='')}", timeout_s=self.read_timeout_s
        )
        return _parse(response, IngestJob)

    def retire(self, doc_key: str, reason: str | None = None) -> DocumentInfo:
        response = self._request(
            "POST", f"/documents/{_key_path(doc_key)}/retire", timeout_s=self.read_timeout_s,
            data={"reason": reason} if reason else None,
        )
        return _parse(response, DocumentInfo)

    # -- audit (role auditor) ----------------------------------------------------------------

    def audit(
        self,
        *,
        user: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        doc_id: str | None = None,
        action: str | None = None,
        limit: int = 50,
        cursor: int | None = None,
    ) -> AuditPage:
        params = {
            "user": user or None,
            "from": date_from.isoformat() if date_from else None,
            "to": date_to.isoformat() if date_to else None,
            "doc_id": doc_id or None,
            "action": action or None,
            "limit": limit,
            "cursor": cursor,
        }
        response = self._request("GET", "/audit", timeout_s=self.read_timeout_s, params=params)
        return _parse(response, AuditPage)


    # -- feedback, review (role reviewer) and alarms (auditor) ----------------------------

    def feedback(self, answer_id: int, request: FeedbackRequest) -> FeedbackResponse:
        response = self._request(
            "POST", f"/answers/{int(answer_id)}/feedback", timeout_s=self.read_timeout_s,
            json_body=request.model_dump(mode="json", exclude_none=True),
        )
        return _parse(response, FeedbackResponse)

    def review_queue(self, include_labelled: bool = False) -> ReviewQueue:
        response = self._request(
            "GET", "/review/queue", timeout_s=self.read_timeout_s,
            params={"include_labelled": str(include_labelled).lower()},
        )
        return _parse(response, ReviewQueue)

    def review(self, answer_id: int, request: ReviewRequest) -> ReviewResponse:
        response = self._request(
            "POST", f"/review/{int(answer_id)}", timeout_s=self.read_timeout_s,
            json_body=request.model_dump(mode="json", exclude_none=True),
        )
        return _parse(response, ReviewResponse)

    def alarms(self) -> list[AlarmState]:
        return _parse_list(self._request("GET", "/alarms", timeout_s=self.read_timeout_s),
                           AlarmState)


def _not_understood(status: int, exc: ValidationError) -> ApiError:
    return ApiError(
        status, f"The API sent a response this UI does not understand ({exc.error_count()} errors)"
    )


def _parse(response: httpx.Response, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise _not_understood(response.status_code, exc) from exc


def _parse_list(response: httpx.Response, model: type[ModelT]) -> list[ModelT]:
    try:
        return TypeAdapter(list[model]).validate_json(response.content)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise _not_understood(response.status_code, exc) from exc
