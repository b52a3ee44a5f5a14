"""`medcite local-llm`: the embedded CPU generator in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

from app.core.settings import Settings


def cmd_local_llm(args: argparse.Namespace, settings: Settings) -> int:
    from app.llm import local_server as local_llm

    proc = local_llm.start_server(settings)
    print(f"local generator at {local_llm.server_url(settings)}")
    if proc is None:
        return 0
    try:
        proc.wait()
    except KeyboardInterrupt:
        local_llm.stop_server(proc)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("local-llm", help="run the embedded CPU generator in the foreground")
    p.set_defaults(func=cmd_local_llm)
