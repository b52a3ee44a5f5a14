"""The SQLAlchemy engine the catalog and the audit log share."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import text

from ingest.database import make_engine


def test_fetched_rows_never_reach_a_log_whatever_the_root_level(
    tmp_path: Path, caplog,  # type: ignore[no-untyped-def]
) -> None:
    """Audit rows hold questions and FHIR ids; SQLAlchemy logs fetched rows at DEBUG,
    statements at INFO (their parameters hidden)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")  # an operator's "everything at DEBUG"
    with engine.connect() as conn:
        conn.execute(text("SELECT :v AS payload"), {"v": "Patient/5654564d"}).all()
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy")]
    assert any("SELECT" in m for m in logged), "statements still log (parameters hidden)"
    assert not [m for m in logged if "5654564d" in m]
    engine.dispose()


def test_no_statement_logs_at_the_levels_medcite_runs_with(
    tmp_path: Path, caplog,  # type: ignore[no-untyped-def]
) -> None:
    """`medcite up` logs at INFO: SQLAlchemy's own WARNING level keeps one log line per
    query out of it (pinning its engine logger at INFO had put every statement there)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    caplog.set_level(logging.INFO)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).all()
    assert not [r for r in caplog.records if r.name.startswith("sqlalchemy")]
    engine.dispose()
