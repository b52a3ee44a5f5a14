"""The reranking stage: a real CrossEncoder saved to and loaded from a local folder, the
LLM reranker against an OpenAI-compatible HTTP endpoint (and its fallbacks), the
configuration that picks one, and the hook in the real hybrid retriever."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.core.settings import Settings
from retrieval.models import Passage, Provenance
from retrieval.rerank import (
    CrossEncoderReranker,
    LLMReranker,
    NoReranker,
    RerankerUnavailable,
    build_reranker,
    parse_ranking,
)
from tests.conftest import send_chat_completion


def _passage(i: int, text: str) -> Passage:
    return Passage(id=f"p{i}", text=text, score=0.5 - i / 100, provenance=Provenance(
        doc_id=f"d{i}", title=f"Doc {i}", source_file=f"f{i}.md", doc_type="label",
        char_start=0, char_end=len(text)))


PASSAGES = [
    _passage(0, "Store tablets at room temperature away from moisture."),
    _passage(1, "Rivaroxaban requires prior authorization after 30 days."),
    _passage(2, "The recommended starting dose of atorvastatin is 10 or 20 mg once daily."),
    _passage(3, "Apixaban is preferred for nonvalvular atrial fibrillation."),
]


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CrossEncoder built on the packaged MiniLM weights (a fresh one-logit head),
    saved to a local folder the way a hospital would ship its own."""
    from sentence_transformers import CrossEncoder

    base = Settings().embedding_model
    out = tmp_path_factory.mktemp("cross-encoder")
    CrossEncoder(base, num_labels=1, device="cpu", local_files_only=True).save(str(out))
    return out


def test_cross_encoder_loads_from_a_local_path_and_orders_by_its_scores(
    cross_encoder_dir: Path,
) -> None:
    reranker = CrossEncoderReranker(str(cross_encoder_dir))
    question = "What is the starting dose of atorvastatin?"
    scores = reranker.scores(question, PASSAGES)
    assert len(scores) == 4 and len(set(scores)) == 4
    # Hand it the candidates worst first: it must put them in its own score order.
    worst_first = [p for _, p in sorted(zip(scores, PASSAGES, strict=True), key=lambda x: x[0])]
    reranked = reranker.rerank(question, worst_first)
    assert reranked == worst_first[::-1]
    assert reranked != worst_first
    # Reordering only: the passages, their texts and their cosine scores are untouched.
    assert sorted(p.id for p in reranked) == sorted(p.id for p in PASSAGES)
    assert {p.id: p.score for p in reranked} == {p.id: p.score for p in PASSAGES}
    assert reranker.rerank(question, []) == []


def test_configuration_selects_the_reranker(cross_encoder_dir: Path, tmp_path: Path) -> None:
    assert build_reranker("auto") is None
    assert build_reranker("none", path=str(cross_encoder_dir)) is None
    assert isinstance(build_reranker("auto", path=str(cross_encoder_dir)), CrossEncoderReranker)
    assert isinstance(build_reranker("cross-encoder", path=str(cross_encoder_dir)),
                      CrossEncoderReranker)
    assert isinstance(build_reranker("llm", llm_base_url="http://127.0.0.1:9/v1"), LLMReranker)
    with pytest.raises(RerankerUnavailable, match="MEDCITE_RERANKER_PATH"):
        build_reranker("cross-encoder")
    with pytest.raises(RerankerUnavailable, match="not a folder"):
        build_reranker("auto", path=str(tmp_path / "missing"))
    with pytest.raises(RerankerUnavailable, match="choose from"):
        build_reranker("colbert")
    # The settings object carries the same names.
    s = Settings(MEDCITE_RERANKER="llm", MEDCITE_RERANKER_PATH=str(cross_encoder_dir),
                 MEDCITE_RERANK_CANDIDATES=12)
    assert (s.reranker, s.reranker_path, s.rerank_candidates) == (
        "llm", str(cross_encoder_dir), 12)


# --- the LLM reranker over HTTP -------------------------------------------------------------


class _Endpoint(BaseHTTPRequestHandler):
    reply: str = ""
    prompts: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.prompts.append(body["messages"][-1]["content"])
        send_chat_completion(self, body["model"], self.reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[_Endpoint]]]:
    handler = type("Handler", (_Endpoint,), {"prompts": [], "reply": ""})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler
    server.shutdown()
    server.server_close()


def test_llm_reranker_follows_the_models_ranking(endpoint) -> None:  # type: ignore[no-untyped-def]
    url, handler = endpoint
    handler.reply = '{"ranking": [3, 4]}'
    out = LLMReranker(url, "stand-in").rerank("atorvastatin starting dose?", PASSAGES)
    # Ranked ones first, the ones it left out after them in fused order.
    assert [p.id for p in out] == ["p2", "p3", "p0", "p1"]
    prompt = handler.prompts[0]
    assert "[3] Doc 2" in prompt and "Question: atorvastatin starting dose?" in prompt


def test_llm_reranker_keeps_the_fused_order_when_it_fails(endpoint) -> None:  # type: ignore[no-untyped-def]
    url, handler = endpoint
    handler.reply = "I am sorry, I cannot rank medical documents."
    garbled = LLMReranker(url, "stand-in")
    assert garbled.rerank("q", PASSAGES) == PASSAGES
    assert garbled.failures == 1
    # An endpoint that is down: a closed port.
    with ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint) as s:
        port = s.server_address[1]
    down = LLMReranker(f"http://127.0.0.1:{port}/v1", "stand-in", timeout_s=2)
    assert down.rerank("q", PASSAGES) == PASSAGES
    assert down.failures == 1


def test_parse_ranking_tolerates_prose_and_drops_bad_numbers() -> None:
    assert parse_ranking('{"ranking": [2, "1", 9, 2, "x"]}', 3) == [1, 0]
    assert parse_ranking("Best: 3, then 1.", 3) == [2, 0]
    assert parse_ranking("```json\n[2, 3]\n```", 3) == [1, 2]
    assert parse_ranking("none", 3) == []


# --- the hook in the real retriever ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory, embedder):  # type: ignore[no-untyped-def]
    from ingest.pipeline import ingest_path
    from retrieval.store import open_client

    root = tmp_path_factory.mktemp("rerank-corpus")
    for p in PASSAGES:
        (root / p.provenance.source_file).write_text(f"# {p.provenance.title}\n\n{p.text}\n")
    (root / "manifest.toml").write_text(
        '[[sources]]\nglob = "*.md"\ndoc_type = "label"\naccess_groups = ["public"]\n'
    )
    settings = Settings(MEDCITE_DATA_DIR=tmp_path_factory.mktemp("rerank-data"),
                        MEDCITE_COLLECTION="rerank")
    client = open_client(settings)
    ingest_path(root, settings, client=client, embedder=embedder, progress=False)
    yield settings, client
    client.close()


def test_retriever_reranks_its_fused_candidates(
    tiny_index, embedder, cross_encoder_dir: Path  # type: ignore[no-untyped-def]
) -> None:
    from retrieval.search import Retriever

    settings, client = tiny_index
    question = "starting dose of atorvastatin"
    plain = Retriever(client, settings.collection, embedder)
    reranker = CrossEncoderReranker(str(cross_encoder_dir))
    reranked = dataclasses.replace(plain, reranker=reranker, rerank_candidates=4)
    candidates = plain.search(question, access_groups=["public"], limit=4)
    expected = reranker.rerank(question, candidates)[:2]
    got = reranked.search(question, access_groups=["public"], limit=2)
    assert [p.id for p in got] == [p.id for p in expected]
    # The cosine stays the score (abstention's scale), whatever the reranker's logits.
    cosine = {p.id: p.score for p in candidates}
    assert all(p.score == pytest.approx(cosine[p.id]) for p in got)
    # NoReranker is the fused order itself.
    same = dataclasses.replace(plain, reranker=NoReranker(), rerank_candidates=4)
    assert [p.id for p in same.search(question, access_groups=["public"], limit=2)] == [
        p.id for p in candidates[:2]]
