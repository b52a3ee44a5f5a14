"""Real processes for the resilience and admission tests: a generator endpoint that
accepts connections and never answers, a process that holds an embedded Qdrant folder,
and `medcite serve` itself. Each is started, waited for and stopped by its pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.core.settings import REPO_ROOT

# Listens, accepts every connection and holds it open without a byte of reply: a model
# server that is up but stuck (or far too slow).
_STALLED = """
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(128)
print(s.getsockname()[1], flush=True)
held = []
while True:
    conn, _ = s.accept()
    held.append(conn)
"""

# Opens the embedded Qdrant folder (taking its lock) and keeps it open until killed.
_QDRANT_HOLDER = """
import sys, time
from qdrant_client import QdrantClient
client = QdrantClient(path=sys.argv[1])
print("ready", flush=True)
time.sleep(600)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def stalled_endpoint() -> Iterator[str]:
    """The base URL of an OpenAI-compatible address that never answers."""
    proc = subprocess.Popen([sys.executable, "-c", _STALLED], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc, signal.SIGKILL)


@contextmanager
def qdrant_holder(path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", _QDRANT_HOLDER, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "ready", proc.stderr.read() if proc.stderr else line
        yield proc
    finally:
        stop(proc, signal.SIGKILL)


def service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `medcite` process on its own data folder (no .env is read:
    the processes run in that folder)."""
    # The embedded store's engine is the test run's choice (MEDCITE_VECTOR_ENGINE=edge or
    # local): a service process opens the folder the tests wrote with the same engine.
    env = {k: v for k, v in os.environ.items()
           if k == "MEDCITE_VECTOR_ENGINE"
           or not k.startswith(("MEDCITE_", "LLM_", "QDRANT_", "DATABASE_URL"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DO_NOT_TRACK="1",
               MEDCITE_DATA_DIR=str(data_dir),
               MEDCITE_MODELS_DIR=str(REPO_ROOT / "data" / "models"), **extra)
    return env


def start_api(data_dir: Path, port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """`medcite serve` as its own process, on 127.0.0.1:port."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=data_dir, env={**service_env(data_dir, **env), "PYTHONPATH": str(REPO_ROOT)},
            stdout=out, stderr=subprocess.STDOUT,
        )


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path,
                 timeout_s: float = 240) -> dict[str, object]:
    """Poll /health until it answers; fail with the process's log if it died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"API exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            r = httpx.get(f"{url}/health", timeout=5)
            if r.status_code == 200:
                return r.json()  # type: ignore[no-any-return]
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"API not healthy within {timeout_s} s:\n{log.read_text()[-3000:]}")
