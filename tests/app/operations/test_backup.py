"""`medcite backup` / `medcite restore` (issue #18, item 6): a backup taken while the API
answers restores into a fresh data folder that answers the same question with the same
citations and whose audit chain verifies; a damaged archive is refused and the target
left as it was."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import REPO_ROOT, Settings
from app.operations.backup import (
    AUDIT,
    CATALOG,
    MANIFEST,
    RestoreRefused,
    create_backup,
    restore_backup,
)
from app.security.api_keys import KeyStore, Role
from tests.conftest import StandInLLM, serve, write_corpus

CORPUS = {
    "formularies/ohio-medicaid-updl/current-2024/lipotropics.md": ("formulary", "Ohio Medicaid"),
    "coverage/cms-ncd/LipidTesting.md": ("coverage", "Medicare"),
}
QUESTIONS = (
    "Is atorvastatin a preferred drug on the Ohio Medicaid lipotropics list?",
    "How often does Medicare cover a lipid panel for a patient on lipid-lowering therapy?",
)
MEDCITE = [sys.executable, "-m", "app.cli"]


@dataclass
class Live:
    settings: Settings
    client: Any
    key: str
    admin: str


@pytest.fixture(scope="module")
def live(settings: Settings, embedder, tmp_path_factory: pytest.TempPathFactory  # type: ignore[no-untyped-def]
         ) -> Iterator[Live]:
    """A data folder of its own (store, catalog, audit log, keys, corpus manifest), its
    store held open by this process as a running API holds it."""
    from ingest.pipeline import ingest_path
    from retrieval.store import open_client

    corpus = write_corpus(tmp_path_factory.mktemp("backup-corpus"), CORPUS)
    own = settings.isolated(tmp_path_factory.mktemp("live"), collection="backup_passages",
                            corpora_dir=corpus, rate_limit_per_minute=0)
    client = open_client(own)
    report = ingest_path(corpus, own, client=client, embedder=embedder, progress=False)
    assert not report.failed, report.summary()
    from app.audit.records import record_new_keys

    store = KeyStore(own.keys_file)
    key = store.create("dr-backup", Role.clinician, ["public"])[0]
    admin = store.create("ops-backup", Role.admin, ["public"])[0]
    record_new_keys(own, store, set())  # as `medcite keys create` does: the chain starts
    yield Live(own, client, key, admin)
    client.close()


def _ask(url: str, key: str, question: str) -> dict[str, Any]:
    resp = httpx.post(f"{url}/ask", json={"question": question}, timeout=300,
                      headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def _citations(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What an answer cites, independent of where it was served: each sentence with the
    document, version, chunk and span of each citation."""
    passages = {p["id"]: p for p in answer["passages"]}
    out = []
    for sentence in answer["sentences"]:
        for c in sentence["citations"]:
            p = passages[c["passage_id"]]
            prov = p["provenance"]
            out.append((sentence["text"], prov["doc_id"], prov["version_number"],
                        prov.get("version_id"), p["text"][c["span_start"]:c["span_end"]],
                        c["status"]))
    return out


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_backup_while_answering_restores_to_the_same_citations_and_a_verified_chain(
    live: Live, embedder, standin_llm: StandInLLM, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from app.api.main import create_app
    from app.core.container import build_services
    from retrieval.store import open_client

    settings = live.settings.model_copy(update={"llm_base_url": standin_llm.url})
    services = build_services(settings, client=live.client, embedder=embedder)
    archive = tmp_path / "medcite.tar.gz"
    try:
        with serve(create_app(settings, services)) as url:
            before = [_ask(url, live.key, q) for q in QUESTIONS]
            assert all(_citations(a) for a in before), [a["status"] for a in before]
            # Backed up while a client keeps asking: answers and audit appends go on
            # through the same store client and audit database the backup reads.
            stop = threading.Event()
            answered: list[int] = []

            def keep_asking() -> None:
                while not stop.is_set():
                    _ask(url, live.key, QUESTIONS[len(answered) % 2])
                    answered.append(1)

            with ThreadPoolExecutor(2) as pool:
                asking = [pool.submit(keep_asking) for _ in range(2)]
                # Taken by the serving process itself (POST /backup), as the edge engine
                # requires; `medcite backup` from another process is the next test.
                taken = httpx.post(f"{url}/backup", timeout=600,
                                   headers={"Authorization": f"Bearer {live.admin}"})
                stop.set()
                for f in asking:
                    f.result()  # no request failed
            assert taken.status_code == 200, taken.text
            assert answered, "no answer ran beside the backup"
            refused = httpx.post(f"{url}/backup", timeout=60,
                                 headers={"Authorization": f"Bearer {live.key}"})
            assert refused.status_code == 403
        from app.audit.log import AuditQuery
        from app.audit.models import AuditAction

        (record,) = services.audit.search(AuditQuery(action=AuditAction.backup)).records
        assert record.actor.role == "admin"
        assert record.details.path == taken.json()["path"]  # type: ignore[union-attr]
        assert record.details.audit_records == taken.json()["audit_records"]  # type: ignore[union-attr]
    finally:
        services.jobs.close()
        services.audit.close()
        services.catalog.close()

    archive = Path(taken.json()["path"])
    assert archive.parent == settings.data_dir / "backups"
    manifest = json.loads(tarfile.open(archive).extractfile(MANIFEST).read())  # type: ignore[union-attr]
    names = {p["name"] for p in manifest["parts"]}
    assert {AUDIT, CATALOG, "keys/api_keys.json", "ingest/manifest.toml"} <= names
    assert any(n.startswith("store/") for n in names), names  # the engine's own layout
    assert manifest["audit"]["records"] == taken.json()["audit_records"] >= len(QUESTIONS)
    assert os.stat(archive).st_mode & 0o077 == 0  # it holds the keys

    fresh = settings.isolated(tmp_path / "restored", llm_base_url=standin_llm.url)
    restored = restore_backup(archive, fresh)
    assert restored.set_aside is None
    client = open_client(fresh)
    services = build_services(fresh, client=client, embedder=embedder)
    try:
        with serve(create_app(fresh, services)) as url:
            # The key in the backup authenticates against the restored folder.
            after = [_ask(url, live.key, q) for q in QUESTIONS]
    finally:
        services.close()
    assert [_citations(a) for a in after] == [_citations(a) for a in before]

    verify = subprocess.run(
        [*MEDCITE, "audit", "verify"], capture_output=True, text=True, timeout=300,
        cwd=REPO_ROOT, env={**os.environ, "MEDCITE_DATA_DIR": str(fresh.data_dir),
                            "DATABASE_URL": "", "MEDCITE_CATALOG_URL": ""})
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # The records up to the backup, plus the two asks just made on the restored copy.
    assert f"OK: {manifest['audit']['records'] + len(QUESTIONS)} records" in verify.stdout


def _repack(archive: Path, dest: Path, change: Any) -> Path:
    """A copy of `archive` with `change(name, bytes) -> bytes | None` applied to each
    member (None drops it)."""
    with tarfile.open(archive) as src, tarfile.open(dest, "w:gz") as out:
        for member in src:
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            new = change(member.name, data)
            if new is None:
                continue
            member.size = len(new)
            out.addfile(member, io.BytesIO(new))
    return dest


def _tamper_audit(data: bytes, tmp: Path) -> bytes:
    path = tmp / "edit.db"
    path.write_bytes(data)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE audit_records SET http_status = 500 WHERE seq = 1")
    return path.read_bytes()


def test_damaged_archives_are_refused_and_the_target_is_untouched(
    live: Live, tmp_path: Path
) -> None:
    """`medcite backup` from another process while this one holds the store (as a
    running API does), then `medcite restore` of damaged copies into a data folder that
    already holds data: every one is refused with the reason, and not a byte changes."""
    env = {**os.environ, "MEDCITE_DATA_DIR": str(live.settings.data_dir), "DATABASE_URL": "",
           "MEDCITE_CATALOG_URL": "", "MEDCITE_CORPORA_DIR": str(live.settings.corpora_dir),
           "MEDCITE_COLLECTION": live.settings.collection}
    from retrieval.store import engine_name

    archive = tmp_path / "good.tar.gz"
    made = subprocess.run([*MEDCITE, "backup", str(archive)], capture_output=True, text=True,
                          timeout=600, cwd=REPO_ROOT, env=env)
    if engine_name(live.settings) == "local":
        assert made.returncode == 0, made.stderr
        assert "wrote" in made.stdout
    else:
        # The edge engine's files can be copied only by the process holding them: the
        # command says so and how to back up through the API instead.
        assert made.returncode == 1 and "POST /backup" in made.stderr, made.stderr
        assert not archive.exists()
        create_backup(live.settings, archive, client=live.client)

    target = tmp_path / "target"
    (target / "qdrant").mkdir(parents=True)
    (target / "audit.db").write_bytes(b"the audit log in use here")
    (target / "api_keys.json").write_text('{"keys": []}')
    untouched = _tree(target)

    raw = archive.read_bytes()
    flipped = tmp_path / "flipped.tar.gz"
    flipped.write_bytes(raw[:len(raw) // 2] + bytes([raw[len(raw) // 2] ^ 0xFF])
                        + raw[len(raw) // 2 + 1:])
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(raw[: len(raw) * 2 // 3])
    inner = gzip.decompress(raw)  # a byte flipped inside a part, the gzip stream intact
    at = inner.index(b"SQLite format 3", 600) + 4096
    part_flipped = tmp_path / "part-flipped.tar"
    part_flipped.write_bytes(inner[:at] + bytes([inner[at] ^ 0x01]) + inner[at + 1:])
    dropped = _repack(archive, tmp_path / "dropped.tar.gz",
                      lambda name, data: None if name == CATALOG else data)

    def fix_manifest(name: str, data: bytes, edited: dict[str, bytes]) -> bytes:
        if name in edited:
            return edited[name]
        if name != MANIFEST:
            return data
        manifest = json.loads(data)
        for part in manifest["parts"]:
            if part["name"] in edited:
                part["sha256"] = hashlib.sha256(edited[part["name"]]).hexdigest()
                part["bytes"] = len(edited[part["name"]])
        return json.dumps(manifest).encode()

    with tarfile.open(archive) as tar:
        audit = tar.extractfile(AUDIT).read()  # type: ignore[union-attr]
    edited = {AUDIT: _tamper_audit(audit, tmp_path)}
    rechained = _repack(archive, tmp_path / "audit-edited.tar.gz",
                        lambda name, data: fix_manifest(name, data, edited))

    cases = {
        flipped: "damaged or not a medcite backup (BadGzipFile: CRC check failed",
        truncated: "damaged or not a medcite backup",
        part_flipped: "checksum does not match",
        dropped: f"{CATALOG}: listed in the manifest but not in the archive",
        rechained: "audit log in the archive does not verify: EDITED at seq 1",
        archive: "already holds data",  # a good archive, but the target is not empty
    }
    for bad, reason in cases.items():
        out = subprocess.run(
            [*MEDCITE, "restore", str(bad), "--data-dir", str(target)], capture_output=True,
            text=True, timeout=300, cwd=REPO_ROOT, env=env)
        assert out.returncode == 1, (bad.name, out.stdout, out.stderr)
        assert "restore refused, nothing was changed" in out.stderr, out.stderr
        assert reason in out.stderr, (bad.name, out.stderr)
        assert _tree(target) == untouched, bad.name
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".target")) == []

    # The good archive with --force: the old files are set aside, not deleted, and the
    # restored audit log records the restore (who, from which archive) after its chain.
    out = subprocess.run(
        [*MEDCITE, "restore", str(archive), "--data-dir", str(target), "--force"],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    set_aside = Path(out.stdout.split("what they replaced is in ")[1].splitlines()[0].strip())
    assert (set_aside / "audit.db").read_bytes() == b"the audit log in use here"
    assert json.loads((target / "api_keys.json").read_text())["keys"]
    from app.audit.log import AuditLog, AuditQuery
    from app.audit.models import AuditAction

    log = AuditLog(f"sqlite:///{target / 'audit.db'}")
    try:
        assert log.verify().ok
        (record,) = log.search(AuditQuery(action=AuditAction.restore)).records
        assert record.details.archive == str(archive.resolve())  # type: ignore[union-attr]
        assert record.actor.role == "operator" and record.details.set_aside == str(set_aside)  # type: ignore[union-attr]
    finally:
        log.close()
    settings = live.settings.isolated(target)
    with pytest.raises(RestoreRefused, match="already holds data"):
        restore_backup(archive, settings)


def test_a_folder_without_an_audit_log_and_a_postgresql_one_say_so(
    settings: Settings, tmp_path: Path
) -> None:
    """Nothing served yet (no audit database): the archive says there is none and
    restores; an audit log in PostgreSQL is not copied, and the command says how to back
    it up instead."""
    from retrieval.store import ensure_collection, open_client

    own = settings.isolated(tmp_path / "new", collection="empty_passages",
                            corpora_dir=tmp_path / "no-corpus")
    client = open_client(own)
    ensure_collection(client, own.collection, 384)
    client.close()
    from ingest.catalog import Catalog

    Catalog(own.catalog_url).close()  # an empty catalog, as a first start leaves
    report = create_backup(own, tmp_path / "a.tar.gz")
    manifest = json.loads(tarfile.open(report.path).extractfile(MANIFEST).read())  # type: ignore[union-attr]
    assert manifest["audit"] == {"kind": "none", "records": None, "last_seq": None,
                                 "head": None}
    assert any("audit log: none" in n for n in report.notes)
    restored = restore_backup(report.path, settings.isolated(tmp_path / "back"))
    assert not (tmp_path / "back" / "audit.db").exists() and restored.notes == []

    pg = own.model_copy(update={"database_url": "postgresql://medcite@db.internal/medcite"})
    report = create_backup(pg, tmp_path / "b.tar.gz")
    assert any("pg_dump" in n for n in report.notes), report.notes
    with pytest.raises(RestoreRefused, match="holds a SQLite"):
        restore_backup(create_backup(own, tmp_path / "c.tar.gz").path, settings.isolated(
            tmp_path / "pg-target", catalog_url="postgresql://x@db/medcite"))
    assert not (tmp_path / "pg-target").exists()
