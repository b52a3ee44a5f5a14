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


# Audit rows hold questions and FHIR ids, and SQLAlchemy logs every fetched row at DEBUG
# (seen: an audit payload with a Patient id in a DEBUG log line). Its DEBUG records are
# dropped at the engine's logger, whatever level an operator opens it to; statements
# (INFO, parameters hidden below) still log when asked for. The level is left alone:
# SQLAlchemy keeps its loggers at WARNING, so nothing logs per query by default (pinning
# INFO had every statement in `medcite up`'s log).
_ENGINE_LOGGERS = ("sqlalchemy.engine", "sqlalchemy.engine.Engine")


class _NoRows(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def _drop_rows() -> None:
    for name in _ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoRows) for f in logger.filters):
            logger.addFilter(_NoRows())


def make_engine(url: str) -> Engine:
    url = engine_url(url)
    parsed = make_url(url)
    _drop_rows()
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
