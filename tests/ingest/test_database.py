"""The SQLAlchemy engine the catalog and the audit log share."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import text

from ingest.database import make_engine


def test_fetched_rows_never_reach_a_log_whatever_the_root_level(
    tmp_path: Path, caplog,  # type: ignore[no-untyped-def]
) -> None:
    """Audit rows hold questions and FHIR ids; SQLAlchemy logs fetched rows at DEBUG."""
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")  # an operator's "everything at DEBUG"
    with engine.connect() as conn:
        conn.execute(text("SELECT 'Patient/5654564d' AS payload")).all()
    assert not [r for r in caplog.records if "5654564d" in r.getMessage()]
    engine.dispose()
