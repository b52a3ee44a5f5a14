"""A small typed client for the medcite HTTP API, used by the Streamlit page.

Every failure (network, HTTP status, malformed body) is turned into one `ApiError`
so the page has a single thing to catch and show.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from app.schemas import AskRequest, AskResponse, HealthResponse

# Answering runs retrieval, a CPU LLM and verification: 20-60 s is normal, so the
# timeout is set far above that rather than near it.
DEFAULT_ASK_TIMEOUT_S = 300.0
# /health also pings the generator, which can stall while it is busy answering; the
# page treats a timeout as "busy", so this only bounds how long a page load waits.
DEFAULT_HEALTH_TIMEOUT_S = 10.0

ModelT = TypeVar("ModelT", AskResponse, HealthResponse)


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
    if status in (401, 403):
        message = (
            "The API rejected the API key. Set MEDCITE_API_KEY or enter a key in the sidebar"
            + (f" ({detail})" if detail else "")
        )
    elif status == 422:
        message = f"The API rejected the request: {detail}"
    elif status == 413:
        message = f"The request is too large: {detail}"
    elif status == 503:
        message = f"The answer generator is unavailable, try again later: {detail}"
    else:
        message = f"The API returned an error: {detail}"
    return ApiError(status, message)


class MedciteClient:
    """Synchronous client; one short-lived HTTP connection per call (the page reruns often)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        ask_timeout_s: float = DEFAULT_ASK_TIMEOUT_S,
        health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.ask_timeout_s = ask_timeout_s
        self.health_timeout_s = health_timeout_s
        # Injectable so tests can use httpx.MockTransport instead of a server.
        self._transport = transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        timeout_s: float,
        auth: bool,
        json_body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if auth and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}{path}"
        try:
            with httpx.Client(timeout=timeout_s, transport=self._transport) as client:
                response = client.request(method, url, headers=headers, json=json_body)
        except httpx.ConnectTimeout as exc:
            raise ApiError(
                None, f"Cannot reach the medcite API at {self.base_url}: connection timed out"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ApiTimeout(
                None, f"The medcite API at {self.base_url} did not answer within {timeout_s:.0f} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise ApiError(None, f"Cannot reach the medcite API at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        return response

    def health(self) -> HealthResponse:
        # /health is the one unauthenticated endpoint, so no key is sent.
        response = self._request("GET", "/health", timeout_s=self.health_timeout_s, auth=False)
        return _parse(response, HealthResponse)

    def ask(self, request: AskRequest) -> AskResponse:
        body = request.model_dump(mode="json", exclude_none=True)
        response = self._request(
            "POST", "/ask", timeout_s=self.ask_timeout_s, auth=True, json_body=body
        )
        return _parse(response, AskResponse)


def _parse(response: httpx.Response, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ApiError(
            response.status_code,
            f"The API sent a response this UI does not understand ({exc.error_count()} errors)",
        ) from exc
