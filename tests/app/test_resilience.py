"""The API against the failures of the processes around it, with real processes started
and stopped: the llama.cpp generator killed and restarted, a generator that accepts and
never answers, the embedded Qdrant folder locked by another process (and released when
that process dies), and the API process itself killed and restarted on its data."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.api.main import create_app
from app.audit.log import AuditLog
from app.core.container import Services
from app.core.settings import Settings
from app.llm import local_server as local_llm
from app.security.api_keys import KeyStore, Role
from retrieval.store import StoreUnavailable, open_client
from tests.conftest import Keys, serve, write_corpus
from tests.processes import (
    free_port,
    qdrant_holder,
    stalled_endpoint,
    start_api,
    stop,
    wait_healthy,
)

ATORVASTATIN = "What is the recommended starting dose of atorvastatin?"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_generator_killed_is_a_503_and_recovers_when_it_returns(
    settings: Settings, make_services: Callable[..., Services], keys: Keys, tmp_path: Path
) -> None:
    # The default packaged model (the one every install has) on one thread, a short
    # context: this test is about the process going away, and on a busy 2-core machine
    # llama.cpp's threads would only contend with the test's own.
    llm_settings = settings.model_copy(update={
        "local_llm_port": free_port(),
        "local_llm_threads": 1, "data_dir": tmp_path,
    })
    proc = local_llm.start_server(llm_settings)
    assert proc is not None, "a generator already answered on a fresh port"
    try:
        services = make_services(
            llm_base_url=local_llm.server_url(llm_settings), llm_structured_output="json_object",
            llm_max_tokens=200, context_chars=800, top_k=2, llm_timeout_s=300.0,
            rate_limit_per_minute=0,
        )
        with serve(create_app(services.settings, services)) as url:
            def ask() -> httpx.Response:
                return httpx.post(f"{url}/ask", headers=_auth(keys.clinician),
                                  json={"question": ATORVASTATIN}, timeout=900)

            def health() -> str:
                return str(httpx.get(f"{url}/health", timeout=30).json()["status"])

            assert health() == "ok"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            t = time.perf_counter()
            down = ask()
            assert down.status_code == 503
            assert "generator is unavailable" in down.json()["detail"]
            assert time.perf_counter() - t < 30  # refused, not hung
            assert health() == "degraded"

            proc = local_llm.start_server(llm_settings)
            assert proc is not None
            assert health() == "ok"
            after = ask()
            assert after.status_code == 200, after.text
            # The answer went through the restarted generator (not an early abstention).
            assert "generation" in after.json()["timings_ms"]
    finally:
        local_llm.stop_server(proc)


def test_stuck_generator_times_out_on_ask_and_stream_and_frees_the_slot(
    make_services: Callable[..., Services], keys: Keys
) -> None:
    with stalled_endpoint() as llm:
        services = make_services(llm_base_url=llm, llm_timeout_s=2.0,
                                 rate_limit_per_minute=0)
        with serve(create_app(services.settings, services)) as url:
            t = time.perf_counter()
            r = httpx.post(f"{url}/ask", headers=_auth(keys.clinician),
                           json={"question": ATORVASTATIN}, timeout=60)
            ask_s = time.perf_counter() - t
            t = time.perf_counter()
            with httpx.stream("POST", f"{url}/ask/stream", headers=_auth(keys.clinician),
                              json={"question": ATORVASTATIN}, timeout=60) as s:
                events = [line.removeprefix("event: ") for line in s.iter_lines()
                          if line.startswith("event: ")]
            stream_s = time.perf_counter() - t
    assert r.status_code == 503 and "did not answer within 2 s" in r.json()["detail"]
    # One attempt: a timeout is not retried, so the wait is bounded by LLM_TIMEOUT_S.
    assert ask_s < 10, ask_s
    assert events[0] == "passages" and events[-1] == "error", events
    assert stream_s < 10, stream_s
    stats = services.admission.stats()
    assert stats.in_flight == 0 and stats.queued == 0  # both slots were given back


def test_embedded_qdrant_locked_by_another_process_is_a_clear_error_until_it_exits(
    settings: Settings, tmp_path: Path
) -> None:
    own = settings.model_copy(update={"data_dir": tmp_path, "qdrant_path": None})
    with qdrant_holder(own.resolved_qdrant_path) as holder:
        with pytest.raises(StoreUnavailable, match="in use by another process") as err:
            open_client(own)
        assert "QDRANT_URL" in str(err.value)  # says what to do about it
        # The holder dies without closing anything, as a crashed process would.
        stop(holder, signal.SIGKILL)
        client = open_client(own)  # the lock went with the process
        client.close()


def test_api_process_killed_and_restarted_keeps_its_data_and_audit_chain(
    settings: Settings, embedder, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    from ingest.pipeline import ingest_path

    data = tmp_path / "data"
    # Built afresh, not copied: the audit and catalog databases follow the data folder.
    own = Settings(MEDCITE_DATA_DIR=data, MEDCITE_MODELS_DIR=settings.models_dir,
                   MEDCITE_COLLECTION=settings.collection)
    corpus = write_corpus(tmp_path / "corpus", {
        "coverage/cms-ncd/LipidTesting.md": ("coverage", "Medicare")})
    client = open_client(own)
    report = ingest_path(corpus, own, client=client, embedder=embedder, progress=False)
    client.close()
    assert not report.failed
    key = KeyStore(own.keys_file).create("dr-restart", Role.clinician, ["public"])[0]
    # The question names a drug the sources don't mention: answered (an abstention, with
    # the retrieved passages) without a generator, which this test does not need.
    question = {"question": "Does Medicare cover warfarin monitoring with lipid testing?"}
    port, log = free_port(), tmp_path / "api.log"
    url = f"http://127.0.0.1:{port}"
    # Points the generator at a closed port: /health reports it, /ask never reaches it.
    env = {"LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
           "MEDCITE_COLLECTION": own.collection}

    def ask() -> dict[str, object]:
        r = httpx.post(f"{url}/ask", headers=_auth(key), json=question, timeout=120)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    api = start_api(data, port, log, **env)
    try:
        health = wait_healthy(url, api, log)
        first = ask()
        assert first["abstained"] and first["passages"]
        api.send_signal(signal.SIGKILL)  # a crash: no shutdown, locks left as they were
        api.wait(timeout=10)

        api = start_api(data, port, log, **env)
        again = wait_healthy(url, api, log)
        assert again["passages"] == health["passages"] > 0
        second = ask()
    finally:
        stop(api)
    ids = [[p["id"] for p in r["passages"]] for r in (first, second)]  # type: ignore[union-attr]
    assert ids[0] == ids[1]
    audit = AuditLog(own.database_url)
    try:
        verified = audit.verify()
    finally:
        audit.close()
    # Both asks and the local key `serve` created, in one unbroken chain.
    assert verified.ok and verified.records >= 3, verified.problems
