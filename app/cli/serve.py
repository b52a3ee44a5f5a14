"""`medcite serve` (the API) and `medcite up` (ingest, then API and UI until Ctrl-C)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx

from app.cli.ingest import IngestOptions, run_ingest
from app.core.settings import REPO_ROOT, Settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.api.main import create_app
    from app.audit import records as audit_records
    from app.core.logging import configure
    from app.security.api_keys import KeyStore, ensure_local_key

    configure()
    audit_records.ensure_available(settings)
    store = KeyStore(settings.keys_file)
    before = {k.key_id for k in store.list()}
    ensure_local_key(store, settings.local_key_file)
    audit_records.record_new_keys(settings, store, before)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None)
    return 0


def wait_for(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """Ingest the bundled corpora, then run the API and the UI until interrupted."""
    code = run_ingest(IngestOptions(), settings)
    if code not in (0, 1):
        return code
    env = dict(os.environ, MEDCITE_API_URL=f"http://{args.host}:{args.port}")
    api = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", args.host, "--port", str(args.port)],
        env=env,
    )
    if not wait_for(f"http://{args.host}:{args.port}/health", 600):
        api.terminate()
        print("API did not start; see its log above", file=sys.stderr)
        return 1
    # `serve` created the local key on start; the UI acts with it unless one is set.
    key = settings.resolved_api_key()
    if key:
        env.setdefault("MEDCITE_API_KEY", key)
    ui = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "ui" / "main.py"),
         "--server.address", args.host, "--server.port", str(args.ui_port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false",
         # Clinicians get no "Deploy" button or developer menu.
         "--client.toolbarMode", "viewer"],
        env=env,
    )
    print(f"medcite is up: API http://{args.host}:{args.port}/docs  "
          f"UI http://{args.host}:{args.ui_port}  (Ctrl-C stops both)")
    stop_children_on_exit([ui, api])
    return 0


def stop_children_on_exit(children: list[subprocess.Popen[bytes]]) -> None:
    """Wait until a child exits or we are told to stop (Ctrl-C or SIGTERM), then stop
    all children, politely first."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Also SIGINT explicitly: a process started in the background by a non-interactive
    # shell inherits SIGINT ignored, and Python then installs no Ctrl-C handler; `up`
    # went on running after Ctrl-C there (seen twice in the release checks).
    signal.signal(signal.SIGINT, on_term)
    try:
        while all(c.poll() is None for c in children):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def register(sub: Any) -> None:
    for name, func, help_text in (
        ("serve", cmd_serve, "run the API"),
        ("up", cmd_up, "ingest the bundled corpora, then run the API and the UI"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        p.add_argument("--ui-port", type=int, default=8501)
        p.set_defaults(func=func)
