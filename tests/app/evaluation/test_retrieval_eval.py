"""Retrieval evaluation: metrics by hand, the question set's gold against the documents,
dataset loaders, and a regression guard on the product's default retrieval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from app.core.settings import REPO_ROOT, Settings
from app.evaluation.datasets import (
    EvalDataMissing,
    corpora_dataset,
    eval_data_dir,
    load_corpora_questions,
    medquad_dataset,
    pubmedqa_dataset,
)
from app.evaluation.relevance import EvalQuestion, Gold, Hit, judge
from app.evaluation.retrieval.metrics import (
    dcg_at_k,
    ndcg_at_k,
    percentile,
    recall_at_k,
    reciprocal_rank,
)

CORPORA = REPO_ROOT / "corpora"

# --- metrics, computed by hand ------------------------------------------------------------


def test_recall_counts_relevant_items_in_the_top_k() -> None:
    gains = [0, 1, 0, 1, 0]
    ideal = [1, 1, 1]
    assert recall_at_k(gains, ideal, 1) == 0.0
    assert recall_at_k(gains, ideal, 2) == pytest.approx(1 / 3)
    assert recall_at_k(gains, ideal, 5) == pytest.approx(2 / 3)
    assert recall_at_k([1], [1], 10) == 1.0
    with pytest.raises(ValueError):
        recall_at_k([0], [], 5)


def test_reciprocal_rank_is_one_over_the_first_relevant_rank() -> None:
    assert reciprocal_rank([0, 0, 1, 1]) == pytest.approx(1 / 3)
    assert reciprocal_rank([2, 0]) == 1.0
    assert reciprocal_rank([0, 0, 0]) == 0.0
    assert reciprocal_rank([]) == 0.0


def test_ndcg_binary() -> None:
    # One relevant item at rank 3: DCG = 1/log2(4) = 0.5; ideal DCG = 1.
    assert ndcg_at_k([0, 0, 1], [1], 10) == pytest.approx(0.5)
    # Two relevant at ranks 1 and 3 of two: (1 + 0.5) / (1 + 1/log2(3)).
    assert ndcg_at_k([1, 0, 1], [1, 1], 10) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    # Beyond the cut-off counts nothing.
    assert ndcg_at_k([0, 0, 1], [1], 2) == 0.0


def test_ndcg_graded_uses_exponential_gain() -> None:
    # Grades 1 then 2; ideal order is 2 then 1.
    # DCG = (2^1-1)/1 + (2^2-1)/log2(3) = 1 + 3/1.58496 = 2.89279
    # IDCG = 3/1 + 1/log2(3) = 3.63093
    assert dcg_at_k([1, 2], 10) == pytest.approx(1 + 3 / math.log2(3))
    assert ndcg_at_k([1, 2], [2, 1], 10) == pytest.approx(2.89279 / 3.63093, rel=1e-4)
    assert ndcg_at_k([2, 1], [2, 1], 10) == pytest.approx(1.0)


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20, 30, 40, 50], 95) == pytest.approx(48.0)
    assert math.isnan(percentile([], 50))


# --- relevance judging --------------------------------------------------------------------


def test_judge_credits_the_first_matching_alternative_once() -> None:
    q = EvalQuestion("q", "?", (Gold("a.xml", "Starting dose  is 10 MG"),
                                Gold("b.xml", "starting dose is 10 mg", grade=2)))
    hits = [
        Hit("a.xml", "nothing here", 0.9),
        Hit("a.xml", "The starting\ndose is 10 mg daily.", 0.8),  # whitespace and case differ
        Hit("b.xml", "starting dose is 10 mg", 0.7),  # a second alternative: already answered
        Hit("c.xml", "starting dose is 10 mg", 0.6),  # right words, wrong document
    ]
    gains, ideal = judge(hits, q)
    assert gains == [0, 1, 0, 0]
    assert ideal == [2]


def test_judge_unanswerable_has_no_ideal() -> None:
    gains, ideal = judge([Hit("a", "x", 1.0)], EvalQuestion("q", "?"))
    assert gains == [0] and ideal == []


# --- our question set over the shipped corpora ----------------------------------------


def test_question_set_covers_every_document_kind() -> None:
    questions = load_corpora_questions()
    assert len(questions) >= 60
    assert len({q.qid for q in questions}) == len(questions)
    assert sum(1 for q in questions if not q.answerable) >= 8
    files = {g.source_file for q in questions for g in q.gold}
    for prefix in ("drug-labels/fda-spl/", "guidelines/ngc/", "guidelines/cdc/",
                   "formularies/ohio-medicaid-updl/current-2024/UPDL_criteria.md",
                   "formularies/ohio-medicaid-updl/current-2024/lipotropics.md",
                   "formularies/cms-qhp/", "coverage/cms-ncd/"):
        assert any(f.startswith(prefix) for f in files), f"no question about {prefix}"


def test_every_gold_substring_is_in_its_parsed_document_and_one_chunk() -> None:
    """Keeps the question set from rotting when parsers or documents change. A substring
    split across two chunks can never be retrieved whole, so that is checked too."""
    from app.evaluation.relevance import normalise
    from ingest.chunking import chunk_document
    from ingest.manifest import discover
    from ingest.parsers import parse_file

    settings = Settings()
    questions = load_corpora_questions()
    wanted = {g.source_file for q in questions for g in q.gold}
    texts: dict[str, str] = {}
    chunks: dict[str, list[str]] = {}
    for source in discover(CORPORA):
        if source.relpath in wanted:
            doc = parse_file(source, settings.max_file_bytes)
            texts[source.relpath] = normalise(doc.text)
            chunks[source.relpath] = [
                normalise(c.text)
                for c in chunk_document(doc, settings.chunk_chars, settings.chunk_overlap_chars)
            ]
    problems = []
    for q in questions:
        for g in q.gold:
            needle = normalise(g.contains)
            if g.source_file not in texts:
                problems.append(f"{q.qid}: {g.source_file} is not an ingested corpus file")
            elif needle not in texts[g.source_file]:
                problems.append(f"{q.qid}: {g.contains!r} not in {g.source_file}")
            elif not any(needle in c for c in chunks[g.source_file]):
                problems.append(f"{q.qid}: {g.contains!r} is split across chunks")
    assert not problems, "\n".join(problems)


def test_every_question_about_the_current_lists_names_a_version_in_force() -> None:
    """A gold that names only a superseded version can never be retrieved (search sees the
    versions in force) and made five questions unanswerable by construction: such a
    question must also name the version in force that states the same text."""
    from collections import defaultdict

    from ingest.manifest import discover
    from ingest.parsers import parse_file

    settings = Settings()
    family: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for source in discover(CORPORA):
        if source.doc_type.value == "formulary" and source.doc_key:
            effective = source.effective_date
            if effective is None:
                effective = parse_file(source, settings.max_file_bytes).effective_date
            family[source.doc_key].append((effective or "", source.relpath))
    key_of = {f: k for k, files in family.items() for _, f in files}
    in_force = {max(files)[1] for files in family.values()}
    problems = [
        q.qid for q in load_corpora_questions()
        if q.gold and not q.as_of
        and all(g.source_file in key_of and g.source_file not in in_force for g in q.gold)
    ]
    assert not problems, problems


# --- loaders on tiny stand-ins for the public sets ---------------------------------------


def _fake_eval_data(root: Path) -> Path:
    mq = root / "medquad" / "9_CDC_QA"
    mq.mkdir(parents=True)
    pairs = "".join(
        f'<QAPair pid="{i}"><Question qid="0000001-{i}">{q}</Question>'
        f"<Answer>{a}</Answer></QAPair>"
        for i, (q, a) in enumerate([
            ("What is (are) Flu ?", "Flu is a viral infection."),
            ("What are the symptoms of Flu ?", "Fever and cough."),
            ("What is (are) Flu ?", "Influenza is caused by a virus."),  # repeated question
            ("How to prevent Flu ?", ""),  # answer removed, as MedlinePlus subsets ship
        ], start=1)
    )
    (mq / "0000001.xml").write_text(
        f'<?xml version="1.0"?><Document id="0000001"><Focus>Flu</Focus>'
        f"<QAPairs>{pairs}</QAPairs></Document>"
    )
    pq = root / "pubmedqa" / "data"
    pq.mkdir(parents=True)
    (pq / "ori_pqal.json").write_text(json.dumps({
        "111": {"QUESTION": "Does A help?", "CONTEXTS": ["Bg text.", "Res text."],
                "LABELS": ["BACKGROUND", "RESULTS"]},
        "222": {"QUESTION": "Does B hurt?", "CONTEXTS": ["Only text."], "LABELS": ["METHODS"]},
    }))
    return root


def test_medquad_loader_writes_answers_and_accepts_repeated_questions(tmp_path: Path) -> None:
    data = _fake_eval_data(tmp_path / "eval")
    ds = medquad_dataset(data, tmp_path / "work", limit=10)
    texts = [q.text for q in ds.questions]
    assert texts[:2] == ["What is (are) Flu ?", "What are the symptoms of Flu ?"]
    assert len(ds.questions) == 3  # the pair without an answer is dropped
    first = ds.questions[0]
    assert {g.source_file for g in first.gold} == {"9_CDC_QA__0000001-1.md",
                                                   "9_CDC_QA__0000001-3.md"}
    assert (ds.corpus / "9_CDC_QA__0000001-2.md").read_text().startswith("Fever and cough.")
    assert (ds.corpus / "manifest.toml").exists()


def test_pubmedqa_loader_indexes_contexts_not_questions(tmp_path: Path) -> None:
    data = _fake_eval_data(tmp_path / "eval")
    ds = pubmedqa_dataset(data, tmp_path / "work", limit=1, seed=1)
    assert len(ds.questions) == 1
    q = ds.questions[0]
    text = (ds.corpus / f"{q.qid}.md").read_text()
    assert q.gold == (Gold(f"{q.qid}.md"),)
    assert q.text not in text and "## " in text


def test_missing_eval_data_says_where_to_point(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MEDCITE_EVAL_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(EvalDataMissing, match="MEDCITE_EVAL_DATA"):
        medquad_dataset(eval_data_dir(), tmp_path / "work")


def test_eval_subcommand_parses() -> None:
    from app.cli import build_parser

    args = build_parser().parse_args(
        ["eval", "--dataset", "corpora", "--limit", "5", "--systems", "bm25", "medcite-dense"]
    )
    assert (args.dataset, args.limit) == ("corpora", 5)
    assert args.systems == ["bm25", "medcite-dense"]


# --- regression guard ---------------------------------------------------------------------

# A corpus subset with one file of most kinds; the questions whose gold lies in it.
GUARD_FILES = [
    "drug-labels/fda-spl/lipitor-orig.xml",
    "drug-labels/fda-spl/cough.xml",
    "guidelines/ngc/ngc-10403.xml",
    "formularies/ohio-medicaid-updl/current-2024/lipotropics.md",
    "formularies/ohio-medicaid-updl/current-2024/oral_anticoagulants.md",
    "formularies/cms-qhp/drugs-1.json",
    "formularies/cms-qhp/drugs-2.json",
    "coverage/cms-ncd/LipidTesting.md",
    "coverage/cms-ncd/ProstateCancerScreeningTests.md",
    "coverage/cms-ncd/ThyroidTesting.md",
    "coverage/cms-ncd/VentricularAssistDevices.md",
    "coverage/cms-ncd/HomeBloodGlucoseMonitors.md",
]
GUARD_MEDQUAD_PAIRS = 100
# Measured 2026-12-04 with medcite-hybrid (structure-aware, PIPELINE_VERSION 6; 2 CPU
# cores, packaged all-MiniLM-L6-v2), questions asked as /ask asks them (bundle, as_of):
# recall@5 0.852 (46 of 54 answerable) and nDCG@10 0.743 on our questions over
# GUARD_FILES, and recall@5 0.810, nDCG@10 0.603 on MedQuAD's first 100 pairs (seed 13;
# the structure stage leaves MedQuAD unchanged, bench/RESULTS-retrieval.md). Tolerance:
# the recall floors leave three more misses on ours and six on MedQuAD, the nDCG floors
# sit 0.05 below the measured values, so a real regression fails the build and noise
# from a re-chunk does not.
CORPORA_RECALL5_FLOOR = 0.79
MEDQUAD_RECALL5_FLOOR = 0.75
CORPORA_NDCG10_FLOOR = 0.69
MEDQUAD_NDCG10_FLOOR = 0.55


def _default_system() -> str:
    from app.evaluation.retrieval.options import DEFAULT_SYSTEM
    from app.evaluation.retrieval.systems import supports_mode
    from retrieval.search import Retriever

    # Before hybrid search landed, the product's only retrieval was dense.
    return DEFAULT_SYSTEM if supports_mode(Retriever) else "medcite-dense"


@pytest.fixture(scope="module")
def eval_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(MEDCITE_DATA_DIR=tmp_path_factory.mktemp("eval-data"))


def _measure(dataset, settings: Settings, embedder) -> tuple[str, float, float]:  # type: ignore[no-untyped-def]
    from app.evaluation.retrieval.runner import run_dataset

    system = _default_system()
    result = run_dataset(dataset, settings, embedder, [system])
    print(result.table(settings.min_relevance))
    return system, result.systems[0].recall(5), result.systems[0].ndcg


def test_default_retrieval_recall_on_our_questions(
    eval_settings: Settings, embedder, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    dataset = corpora_dataset(CORPORA, tmp_path, files=GUARD_FILES)
    assert sum(q.answerable for q in dataset.questions) >= 25
    # The harness asks as /ask does: a question's bundle and as_of date travel with it.
    assert any(q.bundle for q in dataset.questions) or any(q.as_of for q in dataset.questions)
    system, recall, ndcg = _measure(dataset, eval_settings, embedder)
    assert recall >= CORPORA_RECALL5_FLOOR, f"{system} recall@5 {recall:.3f} fell below the floor"
    assert ndcg >= CORPORA_NDCG10_FLOOR, f"{system} nDCG@10 {ndcg:.3f} fell below the floor"


def test_default_retrieval_recall_on_medquad(
    eval_settings: Settings, embedder, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    try:
        dataset = medquad_dataset(eval_data_dir(), tmp_path, limit=GUARD_MEDQUAD_PAIRS)
    except EvalDataMissing as exc:
        pytest.skip(str(exc))
    system, recall, ndcg = _measure(dataset, eval_settings, embedder)
    assert recall >= MEDQUAD_RECALL5_FLOOR, f"{system} recall@5 {recall:.3f} fell below the floor"
    assert ndcg >= MEDQUAD_NDCG10_FLOOR, f"{system} nDCG@10 {ndcg:.3f} fell below the floor"


def test_search_query_is_built_as_ask_builds_it() -> None:
    """A question with a FHIR bundle searches with the patient's medications added, as
    /ask does (parse_bundle + retrieval_query); one with as_of searches that day."""
    from datetime import date

    from app.evaluation.retrieval.runner import as_of, search_query

    questions = load_corpora_questions()
    patient = next(q for q in questions if q.bundle and "statin" in q.text)
    assert "Simvastatin" in search_query(patient)
    dated = next(q for q in questions if q.as_of)
    assert as_of(dated) == date.fromisoformat(dated.as_of)
    plain = next(q for q in questions if not q.bundle)
    assert search_query(plain) == plain.text


def test_baselines_index_only_the_versions_in_force() -> None:
    from qdrant_client import QdrantClient, models

    from app.evaluation.retrieval.systems import load_chunks
    from retrieval.store import DENSE, ensure_collection

    client = QdrantClient(location=":memory:")
    ensure_collection(client, "c", 4)
    client.upsert("c", points=[
        models.PointStruct(id=i, vector={DENSE: [1.0, 0.0, 0.0, float(i)]}, payload={
            "text": f"{version} text", "source_file": "f.md", "chunk_index": i,
            "version_id": version,
        })
        for i, version in enumerate(["old", "old", "new", "new", "new"])
    ])
    assert [c.text for c in load_chunks(client, "c", ["new"])] == ["new text"] * 3
    assert load_chunks(client, "c", []) == []
    assert len(load_chunks(client, "c")) == 5
    client.close()
