"""Faults around re-ingest, with real processes: `medcite ingest` killed with SIGKILL in
the middle of writing a new version, then run again."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from app.core.settings import REPO_ROOT, Settings
from ingest.catalog import Catalog
from retrieval.embedder import Embedder
from retrieval.search import Retriever
from retrieval.store import open_client
from tests.ingest.test_versions import MANIFEST, PDL_2022, PDL_2024, first_categories

DOC = "ohio-medicaid:preferred_drug_list"


def _ingest(env: dict[str, str], corpus: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "ingest", str(corpus), "--quiet", "--workers", "1"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def _stored_points(data: Path, collection: str) -> int:
    """Points the embedded store has persisted, read without opening it (the running
    ingest holds its lock). Local mode: its SQLite file, read-only. Edge engine: the
    point slots of its segments' id trackers (8 bytes each; a slot is only ever added, so
    the figure grows with every new point flushed, at most 2 s after the write)."""
    edge = data / "qdrant" / "edge" / collection / "segments"
    if edge.is_dir():
        return sum(f.stat().st_size for f in edge.glob("*/*id_tracker.versions")) // 8
    db = data / "qdrant" / "collection" / collection / "storage.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("select count(*) from points").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_kill_9_mid_ingest_keeps_serving_the_old_version_and_rerun_completes(
    tmp_path: Path, embedder: Embedder
) -> None:
    data, corpus = tmp_path / "data", tmp_path / "corpus"
    (corpus / "ohio").mkdir(parents=True)
    (corpus / "manifest.toml").write_text(MANIFEST)
    first_categories(PDL_2022, corpus / "ohio" / PDL_2022.name)
    env = {**os.environ, "MEDCITE_DATA_DIR": str(data), "MEDCITE_COLLECTION": "faults",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1"}
    first = _ingest(env, corpus)
    out = first.communicate(timeout=600)[0].decode()
    assert first.returncode == 0, out
    settings = Settings(MEDCITE_DATA_DIR=data, MEDCITE_COLLECTION="faults")
    client = open_client(settings)
    try:
        v1_points = _count(client)
    finally:
        client.close()
    assert v1_points > 50
    stored_v1 = _stored_points(data, "faults")

    first_categories(PDL_2024, corpus / "ohio" / "preferred_drug_list.v2024-01-01.md")
    # Small write batches: the new version is written in many steps, so the kill lands
    # between two of them however fast the machine is.
    second = _ingest({**env, "MEDCITE_INGEST_WRITE_BATCH": "4"}, corpus)
    deadline = time.monotonic() + 600
    while _stored_points(data, "faults") < stored_v1 + 4:
        assert second.poll() is None, "the ingest ended before it could be interrupted"
        assert time.monotonic() < deadline, "no new chunks were written"
        time.sleep(0.2)
    second.send_signal(signal.SIGKILL)
    second.wait(timeout=30)
    assert second.returncode == -signal.SIGKILL

    catalog = Catalog(settings.catalog_url)
    client = open_client(settings)
    try:
        partial = _count(client)  # what the killed process wrote (the edge engine's log)
        versions = catalog.versions("faults", DOC)
        assert [(v.version, v.status) for v in versions] == [(None, "pending"), (1, "current")]
        retriever = Retriever(client, "faults", embedder, catalog=catalog)
        hits = retriever.search("Which gout drugs are preferred?", access_groups=["public"],
                                limit=10)
        assert hits and {p.provenance.version_number for p in hits} == {1}
        assert partial > v1_points  # half a version is stored, and invisible
    finally:
        client.close()

    third = _ingest(env, corpus)
    out = third.communicate(timeout=600)[0].decode()
    assert third.returncode == 0, out
    client = open_client(settings)
    try:
        versions = catalog.versions("faults", DOC)
        assert [(v.version, v.status) for v in versions] == [(2, "current"), (1, "superseded")]
        # No duplicates: exactly the chunks of the two versions, the interrupted
        # writes overwritten by the same point ids.
        assert _count(client) == versions[0].chunks + versions[1].chunks
        retriever = Retriever(client, "faults", embedder, catalog=catalog)
        hits = retriever.search("Which gout drugs are preferred?", access_groups=["public"])
        assert {p.provenance.version_number for p in hits} == {2}
    finally:
        client.close()
        catalog.close()


def _count(client) -> int:  # type: ignore[no-untyped-def]
    return int(client.count("faults", exact=True).count)
