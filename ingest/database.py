"""SQLAlchemy engines for the product's relational stores (audit log, document catalog).

SQLite by default (one file under the data folder), PostgreSQL when a URL says so; the
same code runs on both.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url

# Execution option that makes a SQLite transaction take the write lock when it begins.
WRITE_LOCK = "write_lock"


def engine_url(url: str) -> str:
    """psycopg 3 is the driver we ship; accept the plain postgres:// spellings too."""
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


# Rows hold questions, answers and FHIR resource ids (audit payloads): SQLAlchemy logs
# every fetched row at DEBUG, so its engine logger stays at INFO whatever the root level
# (seen: an audit payload with a Patient id in a DEBUG log line). Statements still log at
# INFO, their parameters hidden (hide_parameters below).
_ENGINE_LOGGER = "sqlalchemy.engine"


def make_engine(url: str) -> Engine:
    url = engine_url(url)
    parsed = make_url(url)
    logging.getLogger(_ENGINE_LOGGER).setLevel(logging.INFO)
    # Parameters hold questions: keep them out of SQLAlchemy's logs and error messages.
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, hide_parameters=True, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created private before SQLite opens it; SQLite gives its journal the same mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    engine = create_engine(
        url, hide_parameters=True, connect_args={"timeout": 30, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        for pragma in ("journal_mode=WAL", "synchronous=FULL"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so a second writer (another process)
        # waits before reading the head instead of both writing after it.
        write = conn.get_execution_options().get(WRITE_LOCK, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
