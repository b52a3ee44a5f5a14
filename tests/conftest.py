"""Shared fixtures: one real stack per test session.

The embedding model, the embedded Qdrant (in a temporary folder), the llama.cpp CPU
generator and the FastAPI app are all real. A small corpus with one file of every
format is ingested once and shared by the answer, CLI and UI tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

from app.auth import KeyStore, Role  # noqa: E402
from app.settings import REPO_ROOT, Settings  # noqa: E402

CORPORA = REPO_ROOT / "corpora"
# One file of every format the product ingests, plus a patient bundle.
SMALL_CORPUS = {
    "drug-labels/fda-spl/lipitor-orig.xml": ("label", None),
    "guidelines/ngc/ngc-10403.xml": ("guideline", None),
    "guidelines/cdc/cdc-guide-infection-prevention-outpatient-settings-v2.3-2016.pdf": (
        "guideline", None),
    "formularies/ohio-medicaid-updl/current-2024/lipotropics.md": ("formulary", "Ohio Medicaid"),
    "formularies/cms-qhp/drugs-1.json": ("formulary", "CMS QHP example"),
    "formularies/cms-qhp/plans.json": (None, None),
    "coverage/cms-ncd/LipidTesting.md": ("coverage", "Medicare"),
    "fhir/synthea/Reuben_Lind_1d03714f-4851-44d9-a6b6-8a2752bbe178.json": ("patient", None),
}


def write_corpus(root: Path, files: dict[str, tuple[str | None, str | None]]) -> Path:
    lines = []
    for rel, (doc_type, payer) in files.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPORA / rel, dest)
        if doc_type is None:
            continue
        lines += ["[[sources]]", f'glob = "{rel}"', f'doc_type = "{doc_type}"']
        if payer:
            lines.append(f'payer = "{payer}"')
        groups = "[]" if doc_type == "patient" else '["public"]'
        lines += [f"access_groups = {groups}", ""]
    (root / "manifest.toml").write_text("\n".join(lines))
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("data")
    return Settings(
        MEDCITE_DATA_DIR=data,
        # The assembled generator weights are shared with the product's own data folder.
        MEDCITE_MODELS_DIR=REPO_ROOT / "data" / "models",
        MEDCITE_COLLECTION="test_passages",
        # Its own generator process: never answer tests with a server someone else runs.
        MEDCITE_LOCAL_LLM_PORT=_free_port(),
    )


@pytest.fixture(scope="session")
def embedder(settings: Settings):  # type: ignore[no-untyped-def]
    from retrieval.embedder import Embedder

    return Embedder(settings.embedding_model, "cpu", settings.embedding_batch_size)


@pytest.fixture(scope="session")
def qdrant(settings: Settings):  # type: ignore[no-untyped-def]
    from retrieval.store import open_client

    client = open_client(settings)
    yield client
    client.close()


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), SMALL_CORPUS)


@pytest.fixture(scope="session")
def first_ingest(settings: Settings, qdrant, embedder, small_corpus: Path):  # type: ignore[no-untyped-def]
    from ingest.pipeline import ingest_path

    return ingest_path(small_corpus, settings, client=qdrant, embedder=embedder, progress=False)


@pytest.fixture(scope="session")
def services(settings: Settings, qdrant, embedder, first_ingest):  # type: ignore[no-untyped-def]
    from app.services import build_services

    built = build_services(settings, client=qdrant, embedder=embedder)
    yield built
    from app import local_llm

    local_llm.stop_server(built.llm_process)


@dataclass
class Keys:
    clinician: str
    integration: str
    auditor: str
    restricted: str  # a clinician whose groups hold no document


@pytest.fixture(scope="session")
def keys(settings: Settings) -> Keys:
    store = KeyStore(settings.keys_file)
    return Keys(
        clinician=store.create("dr-test", Role.clinician, ["public"])[0],
        integration=store.create("ehr-test", Role.integration, ["public"])[0],
        auditor=store.create("audit-test", Role.auditor, ["public"])[0],
        restricted=store.create("other-org", Role.clinician, ["other-org"])[0],
    )


@pytest.fixture(scope="session")
def api(settings: Settings, services):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(settings, services)) as client:
        yield client


@dataclass
class LiveAPI:
    url: str
    api_key: str


@pytest.fixture(scope="session")
def live_api(settings: Settings, services, keys: Keys) -> Iterator[LiveAPI]:  # type: ignore[no-untyped-def]
    """A real uvicorn server on 127.0.0.1, sharing the session's services (the embedded
    Qdrant folder can be opened by one client only)."""
    import uvicorn

    from app.main import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, services), host="127.0.0.1", port=port,
                       log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.started, "uvicorn did not start"
    yield LiveAPI(url=f"http://127.0.0.1:{port}", api_key=keys.clinician)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def make_services(settings: Settings, qdrant, embedder, first_ingest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Services of their own on the shared store and embedder, with a fresh audit database
    and no local generator: LLM_BASE_URL points at a closed port unless a test overrides
    it. For API tests that never reach generation (or want it to fail)."""
    from app.services import Services, build_services

    built: list[Services] = []

    def make(**overrides: object) -> Services:
        values = {
            "llm_base_url": f"http://127.0.0.1:{_free_port()}/v1",
            "database_url": f"sqlite:///{tmp_path / f'audit-{len(built)}.db'}",
            **overrides,
        }
        made = build_services(settings.model_copy(update=values), client=qdrant, embedder=embedder)
        built.append(made)
        return made

    yield make
    for made in built:  # not close(): the Qdrant client is the session's
        made.audit.close()
