"""`medcite eval`: ingest each dataset into its own collection, run every system on every
question, print one table per dataset.

Every dataset goes through the product's real ingest pipeline and embedder into an
embedded Qdrant under the evaluation's own data folder (a temporary one unless
--data-dir is given), never into the product's collection.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from qdrant_client import models

from app.core.settings import REPO_ROOT, Settings
from app.evaluation.datasets import (
    EvalDataMissing,
    EvalDataset,
    corpora_dataset,
    eval_data_dir,
    medquad_dataset,
    pubmedqa_dataset,
)
from app.evaluation.relevance import EvalQuestion, judge
from app.evaluation.retrieval.options import DATASETS, DEFAULT_SAMPLE
from app.evaluation.retrieval.report import DatasetResult, QuestionResult, SystemResult
from app.evaluation.retrieval.systems import (
    IndexedChunk,
    System,
    SystemUnavailable,
    build_system,
    configured_reranker,
    load_chunks,
)
from ingest.catalog import Catalog
from ingest.pipeline import ingest_path
from retrieval.embedder import Embedder
from retrieval.search import Retriever
from retrieval.store import match_any, open_client

TOP_K = 10
ACCESS_GROUPS = ["public"]


def search_query(question: EvalQuestion) -> str:
    """What /ask searches for: the question, plus the patient's medications, allergies
    and conditions when it refers to the patient of its FHIR bundle (the answering
    pipeline's own `parse_bundle` + `retrieval_query`)."""
    if not question.bundle:
        return question.text
    from app.answering.fhir_context import parse_bundle, retrieval_query

    raw = json.loads((REPO_ROOT / question.bundle).read_text(encoding="utf-8"))
    return retrieval_query(question.text, parse_bundle(raw))


def as_of(question: EvalQuestion) -> date | None:
    return date.fromisoformat(question.as_of) if question.as_of else None


def evaluate(system: System, dataset: EvalDataset, k: int = TOP_K) -> SystemResult:
    result = SystemResult(system.name)
    queries = [search_query(q) for q in dataset.questions]
    if dataset.questions:
        # One untimed query first: lazy model and index set-up is not per-query latency.
        system.search(queries[0], k)
    for q, query in zip(dataset.questions, queries, strict=True):
        started = time.perf_counter()
        hits = system.search(query, k, as_of=as_of(q))
        latency_ms = (time.perf_counter() - started) * 1000
        gains, ideal = judge(hits, q)
        result.questions.append(QuestionResult(
            q.qid, q.answerable, gains, ideal, hits[0].score if hits else None, latency_ms,
            [h.source_file for h in hits[:3]], kind=q.kind,
        ))
    return result


def run_dataset(
    dataset: EvalDataset,
    settings: Settings,
    embedder: Embedder,
    systems: list[str],
    *,
    progress: bool = False,
) -> DatasetResult:
    """Ingest `dataset.corpus` into the collection `eval_<name>` and evaluate `systems`."""
    settings = settings.model_copy(update={"collection": f"eval_{dataset.name}"})
    client = open_client(settings)
    try:
        started = time.perf_counter()
        catalog = Catalog(settings.catalog_url)
        # A reused --data-dir must not keep serving documents an earlier sample held.
        report = ingest_path(dataset.corpus, settings, client=client, embedder=embedder,
                             catalog=catalog, progress=progress, retire_missing=True,
                             retired_by="medcite eval")
        ingest_s = time.perf_counter() - started
        for failed in report.failed:
            print(f"  ingest FAILED {failed.relpath}: {failed.reason}", file=sys.stderr)
        # medcite-hybrid is what /ask runs: the same ranking settings.
        retriever = Retriever(client, settings.collection, embedder, catalog=catalog,
                              **settings.ranking_options())
        cached: list[IndexedChunk] = []

        def chunks() -> list[IndexedChunk]:
            if not cached:
                in_force = catalog.in_force_versions(settings.collection)
                cached.extend(load_chunks(client, settings.collection, list(in_force)))
            return cached

        results = [
            _run_system(name, dataset, retriever, chunks, embedder, settings)
            for name in systems
        ]
        # The chunks every system searched: those of the versions in force.
        in_force = list(catalog.in_force_versions(settings.collection))
        searched = client.count(settings.collection, exact=True, count_filter=models.Filter(
            must=[match_any("version_id", in_force or ["\0none"])])).count
        return DatasetResult(dataset.name, dataset.description, searched, ingest_s, results)
    finally:
        client.close()


def _run_system(
    name: str,
    dataset: EvalDataset,
    retriever: Retriever,
    chunks: Callable[[], list[IndexedChunk]],
    embedder: Embedder,
    settings: Settings,
) -> SystemResult:
    started = time.perf_counter()
    try:
        system = build_system(name, retriever=retriever, chunks=chunks, embedder=embedder,
                              model_path=settings.embedding_model, access_groups=ACCESS_GROUPS,
                              reranker=lambda: configured_reranker(settings))
    except SystemUnavailable as exc:
        print(f"  {name} skipped: {exc}", file=sys.stderr)
        return SystemResult(name, unavailable=str(exc))
    build_s = time.perf_counter() - started
    result = evaluate(system, dataset)
    result.build_s = build_s
    return result


def load_dataset(
    name: str, settings: Settings, workdir: Path, eval_data: Path, limit: int | None, seed: int
) -> EvalDataset:
    if name == "corpora":
        return corpora_dataset(settings.corpora_dir, workdir, limit=limit, seed=seed)
    sample = limit if limit is not None else DEFAULT_SAMPLE
    if name == "medquad":
        return medquad_dataset(eval_data, workdir, limit=sample, seed=seed)
    return pubmedqa_dataset(eval_data, workdir, limit=sample, seed=seed)


def main(args: argparse.Namespace, settings: Settings) -> int:
    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    eval_data = eval_data_dir(args.eval_data)
    embedder = Embedder(
        settings.embedding_model, settings.embedding_device, settings.embedding_batch_size
    )
    with tempfile.TemporaryDirectory(prefix="medcite-eval-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp)
        # Embedded Qdrant in the evaluation's folder, even when QDRANT_URL points at the
        # product's server: an evaluation must never write into the product's index.
        eval_settings = settings.isolated(data_dir)
        results = []
        for name in names:
            try:
                dataset = load_dataset(name, settings, data_dir / "corpus", eval_data,
                                       args.limit, args.seed)
            except EvalDataMissing as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                return 2
            print(f"{name}: {len(dataset.questions)} questions; ingesting {dataset.corpus}",
                  file=sys.stderr)
            result = run_dataset(dataset, eval_settings, embedder, args.systems,
                                 progress=not args.quiet)
            print(result.table(settings.min_relevance) + "\n", flush=True)
            results.append(result)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "embedding_model": settings.embedding_model,
            "device": embedder.device,
            "datasets": [r.to_json() for r in results],
        }, indent=1))
    return 0
