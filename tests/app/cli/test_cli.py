"""The `medcite` console script, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.core.settings import REPO_ROOT
from tests.conftest import LiveAPI

MEDCITE = [sys.executable, "-m", "app.cli"]


def _run(
    args: list[str], env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEDCITE, *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO_ROOT)


def test_ask_prints_a_verified_answer_citing_the_label(live_api: LiveAPI) -> None:
    out = _run(["ask", "What is the recommended starting dose of atorvastatin?"],
               {"MEDCITE_API_URL": live_api.url, "MEDCITE_API_KEY": live_api.api_key})
    assert out.returncode == 0, out.stderr
    assert "supported]" in out.stdout
    assert "LIPITOR" in out.stdout.upper() and "mg" in out.stdout


def test_ask_without_key_or_api_is_a_clear_error(tmp_path: Path) -> None:
    out = _run(["ask", "anything"], {"MEDCITE_API_URL": "http://127.0.0.1:9",
                                     "MEDCITE_API_KEY": "k", "MEDCITE_DATA_DIR": str(tmp_path)})
    assert out.returncode == 2 and "unreachable" in out.stderr


def test_ingest_reports_bad_files_and_exits_nonzero(tmp_path: Path) -> None:
    corpus = tmp_path / "coverage"
    corpus.mkdir()
    (corpus / "policy.md").write_text("# Walkers\n\nWalkers are covered after a fall.\n")
    (corpus / "broken.xml").write_text("<Version><Section>")
    out = _run(["ingest", str(corpus), "--quiet"], {"MEDCITE_DATA_DIR": str(tmp_path / "data")})
    assert out.returncode == 1
    assert "broken.xml" in out.stderr and "invalid XML" in out.stderr
    assert "1 ingested" in out.stdout and "1 failed" in out.stdout
