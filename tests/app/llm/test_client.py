"""The chat client's health check: an endpoint busy generating is up, one that refuses
connections is down, and neither keeps `/health` waiting for an answer's length."""

from __future__ import annotations

import socket
import threading
import time

from app.llm.client import PING_TIMEOUT_S, ChatGenerator


def _generator(port: int) -> ChatGenerator:
    return ChatGenerator(base_url=f"http://127.0.0.1:{port}/v1", model="local",
                         api_key="not-needed", timeout_s=120, max_tokens=64,
                         structured_mode="json_object")


def test_an_endpoint_that_accepts_and_does_not_answer_is_busy_not_down() -> None:
    # llama.cpp's server holds /v1/models until its current generation ends.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        held: list[socket.socket] = []
        accept = threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True)
        accept.start()
        started = time.monotonic()
        assert _generator(server.getsockname()[1]).ping() is True
        assert time.monotonic() - started < PING_TIMEOUT_S + 3
        for conn in held:
            conn.close()


def test_an_endpoint_that_refuses_connections_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    assert _generator(port).ping() is False
    assert time.monotonic() - started < PING_TIMEOUT_S + 3
