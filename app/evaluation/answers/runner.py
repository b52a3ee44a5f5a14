"""Answer-quality evaluation: the real answering pipeline against a plain LlamaIndex
`CitationQueryEngine` with the same generator, corpus and embedding model, in one run.

    medcite eval-answers [--limit 12] [--pubmedqa 10] [--consistency 5] [--json out.json]
    medcite eval --answers ...           (the same)

Datasets: our question set over the shipped corpora (eval/corpora_questions.jsonl, gold
documents and key facts written from the documents; questions taken round-robin over
their kinds; FHIR questions with their bundle, versioned ones with their date), graded
by app/evaluation/answers/grading.py (correctness, completeness, wrong-but-verified,
false abstention, evidence-only, abstention on unanswerable, latency, tokens) for each
of `medcite` (citations by selection, the default), `medcite-v1` (the v1 pipeline:
copied quotes, no relevance gate) and `llamaindex-citation`; a PubMedQA PQA-L sample
(yes/no/maybe with the question's own abstract as context: retrieval is restricted to
that abstract for both systems) and eval/rephrasings.jsonl (one question asked three
ways: do the answers cite the same documents?). PubMedQA and consistency metrics:
app/evaluation/answers/metrics.py, over these systems:

* medcite: `AnswerService.ask`, as /ask answers (unverified sentences flagged, kept);
* medcite strict: the same answers with unverified sentences removed (strict=true);
* llamaindex-citation: LlamaIndex's `CitationQueryEngine`
  (app/evaluation/answers/citation_baseline.py).

Everything runs in the evaluation's own data folder (a temporary one unless --data-dir):
its own embedded Qdrant, audit database and generator process, never the product's.
On this 2-core CPU an answer takes 10-100 s, so the defaults are small.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import openai

from app.answering.fhir_context import describe, parse_bundle
from app.answering.models import AskRequest, AskResponse, CitationStatus
from app.core.container import Services, build_services
from app.core.settings import REPO_ROOT, Settings
from app.evaluation.answers import grading
from app.evaluation.answers.citation_baseline import CitationBaseline
from app.evaluation.answers.metrics import (
    Scored,
    consistency,
    decision_of,
    looks_like_declining,
    summarise,
)
from app.evaluation.answers.options import SUBSET_FILES
from app.evaluation.datasets import (
    QUESTIONS_FILE,
    EvalDataset,
    corpora_dataset,
    eval_data_dir,
    load_corpora_questions,
    pubmedqa_dataset,
    restrict_to_files,
)
from app.evaluation.relevance import EvalQuestion
from app.llm.client import GeneratorUnavailable
from app.security.api_keys import Principal, Role
from ingest.parsers.builder import relpath_stem
from retrieval.embedder import Embedder
from retrieval.models import Passage, SearchFilters

REPHRASINGS = REPO_ROOT / "eval" / "rephrasings.jsonl"
SYSTEMS = ("medcite", "medcite strict", "llamaindex-citation")
YES_NO_MAYBE = " Answer yes, no or maybe first, then give the reason."
WHO = Principal(key_id="eval", name="eval", role=Role.clinician, groups=["public"])
_OK = (CitationStatus.supported, CitationStatus.partial)


@dataclass
class Run:
    services: Services
    baseline: CitationBaseline


def _cited(response: AskResponse, verified_only: bool) -> list[tuple[str, list[Passage]]]:
    by_id = {p.id: p for p in response.passages}
    out = []
    for s in response.sentences:
        if verified_only and s.status not in _OK:
            continue
        cited: list[Passage] = []
        for c in s.citations:
            p = by_id.get(c.passage_id)
            if p is not None and p not in cited:
                cited.append(p)
        out.append((s.text, cited))
    return out


def ask_medcite(
    run: Run, q: EvalQuestion, text: str, doc_id: str | None, label: str | None
) -> tuple[Scored, Scored, AskResponse]:
    filters = SearchFilters(doc_ids=[doc_id]) if doc_id else None
    started = time.perf_counter()
    response = run.services.answers.ask(AskRequest(question=text, filters=filters), WHO)
    latency = time.perf_counter() - started
    both = []
    for strict in (False, True):
        sentences = [] if response.abstained else _cited(response, strict)
        # The verdict may open the answer as a bare "Yes." (no claim, so no citation).
        decision = decision_of(" ".join(t for t, _ in sentences)) if sentences and label \
            else None
        both.append(Scored(q.qid, q.answerable, response.abstained or not sentences, latency,
                           sentences, decision, label, q.gold, response.abstain_reason))
    return both[0], both[1], response


def ask_baseline(
    run: Run, q: EvalQuestion, text: str, doc_id: str | None, label: str | None
) -> Scored:
    started = time.perf_counter()
    answer = run.baseline.ask(text, doc_id)
    latency = time.perf_counter() - started
    declined = looks_like_declining(answer.text)
    return Scored(q.qid, q.answerable, declined, latency, [] if declined else answer.sentences,
                  decision_of(answer.text) if label else None, label, q.gold)


def run_questions(
    run: Run, questions: list[EvalQuestion], labels: dict[str, str] | None = None,
    doc_ids: dict[str, str] | None = None,
) -> dict[str, list[Scored]]:
    results: dict[str, list[Scored]] = {name: [] for name in SYSTEMS}
    for q in questions:
        label = (labels or {}).get(q.qid)
        doc_id = (doc_ids or {}).get(q.qid)
        text = q.text + YES_NO_MAYBE if label else q.text
        try:
            plain, strict, response = ask_medcite(run, q, text, doc_id, label)
            status = response.status.value
        except (GeneratorUnavailable, openai.OpenAIError) as exc:
            # A generator timeout on a busy CPU counts as no answer, not as a crash.
            plain = strict = Scored(q.qid, q.answerable, True, run.services.settings
                                    .llm_timeout_s, [], None, label, q.gold)
            status = f"error {type(exc).__name__}"
        try:
            base = ask_baseline(run, q, text, doc_id, label)
        except openai.OpenAIError as exc:
            base = Scored(q.qid, q.answerable, True, run.services.settings.llm_timeout_s, [],
                          None, label, q.gold)
            print(f"  baseline error {type(exc).__name__}", file=sys.stderr)
        for name, r in zip(SYSTEMS, (plain, strict, base), strict=True):
            results[name].append(r)
        extra = f" decision={plain.decision}/{base.decision} gold={label}" if label else ""
        print(f"  {q.qid:<28} medcite {status:<18} {plain.latency_s:5.1f}s | "
              f"baseline {'declined' if base.abstained else 'answered'} {base.latency_s:5.1f}s"
              f"{extra}", file=sys.stderr, flush=True)
    return results


def _request(q: EvalQuestion) -> AskRequest:
    bundle = json.loads((REPO_ROOT / q.bundle).read_text()) if q.bundle else None
    filters = SearchFilters(as_of=q.as_of) if q.as_of else None
    return AskRequest(question=q.text, filters=filters, fhir_bundle=bundle)


def graded_medcite(services: Services, q: EvalQuestion) -> grading.Graded:
    primary = services.generator.endpoints[0].generator
    primary.last_completion_tokens = None
    started = time.perf_counter()
    try:
        response = services.answers.ask(_request(q), WHO)
    except (GeneratorUnavailable, openai.OpenAIError) as exc:
        # A generator timeout on a busy CPU counts as no answer, not as a crash.
        return grading.grade(q, f"error {type(exc).__name__}", "", [],
                             time.perf_counter() - started)
    latency = time.perf_counter() - started
    sources = {p.id: p.provenance.source_file for p in response.passages}
    if response.status.value == grading.EVIDENCE_ONLY:
        text = " ".join(e.text for e in response.evidence)
        cited = [sources[e.passage_id] for e in response.evidence if e.passage_id in sources]
    else:
        text = " ".join(s.text for s in response.sentences)
        cited = [sources[c.passage_id] for s in response.sentences for c in s.citations
                 if c.passage_id in sources]
    return grading.grade(q, response.status.value, text, list(dict.fromkeys(cited)), latency,
                         primary.last_completion_tokens,
                         withheld=" ".join(s.text for s in response.removed_sentences),
                         reason=response.status_reason or response.abstain_reason or "")


def graded_baseline(run: Run, q: EvalQuestion) -> grading.Graded:
    text = q.text
    if q.bundle:
        # The baseline knows nothing of FHIR: it gets the same patient facts as text.
        patient = parse_bundle(json.loads((REPO_ROOT / q.bundle).read_text()))
        text = f"{q.text}\nPatient: {describe(patient)}"
    started = time.perf_counter()
    try:
        answer = run.baseline.ask(text)
    except openai.OpenAIError as exc:
        return grading.grade(q, f"error {type(exc).__name__}", "", [],
                             time.perf_counter() - started)
    latency = time.perf_counter() - started
    status = "abstained" if looks_like_declining(answer.text) else "answered"
    cited = [p.provenance.source_file for _, ps in answer.sentences for p in ps]
    return grading.grade(q, status, answer.text, list(dict.fromkeys(cited)), latency)


def run_graded(
    run: Run, v1: Services, questions: list[EvalQuestion], systems: list[str],
    partial: Path | None = None,
) -> dict[str, list[grading.Graded]]:
    """Every question through each system in turn, same corpus and generator (the
    generator's prompt cache keeps each system's instructions). With `partial`, each
    graded answer is appended there as it comes: a CPU run takes hours, and one stopped
    early keeps what it measured."""
    out: dict[str, list[grading.Graded]] = {name: [] for name in systems}
    for q in questions:
        for name in systems:
            if name == "medcite":
                r = graded_medcite(run.services, q)
            elif name == "medcite-v1":
                r = graded_medcite(v1, q)
            else:
                r = graded_baseline(run, q)
            out[name].append(r)
            if partial is not None:
                with partial.open("a") as f:
                    f.write(json.dumps({"system": name, **asdict(r)}) + "\n")
            mark = "correct" if r.correct else ("WRONG-VERIFIED" if r.wrong_but_verified
                                                else "-")
            print(f"  {name:<20} {q.qid:<34} {q.kind:<24} {r.status:<18} {mark:<14} "
                  f"{r.latency_s:5.0f}s {r.tokens or '-'} tokens {r.facts_stated}/"
                  f"{r.facts_total} facts", file=sys.stderr, flush=True)
    return out


def run_consistency(run: Run, groups: list[dict[str, object]]) -> dict[str, object]:
    cited: dict[str, list[set[str]]] = {}
    latencies: list[float] = []
    for group in groups:
        docs = []
        for text in group["questions"]:  # type: ignore[attr-defined]
            started = time.perf_counter()
            try:
                response = run.services.answers.ask(AskRequest(question=str(text)), WHO)
            except (GeneratorUnavailable, openai.OpenAIError) as exc:
                print(f"  error {type(exc).__name__}", file=sys.stderr)
                docs.append(set())
                continue
            latencies.append(time.perf_counter() - started)
            docs.append({p.provenance.source_file for _, c in _cited(response, True) for p in c})
        cited[str(group["id"])] = docs
        print(f"  {group['id']:<28} {[sorted(d) for d in docs]}", file=sys.stderr, flush=True)
    return {**consistency(cited), "groups": len(cited),
            "cited documents": {k: [sorted(d) for d in v] for k, v in cited.items()}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ingest(dataset_root: Path, settings: Settings, services_client, embedder: Embedder) -> None:  # type: ignore[no-untyped-def]
    from ingest.pipeline import ingest_path

    started = time.perf_counter()
    report = ingest_path(dataset_root, settings, client=services_client, embedder=embedder,
                         progress=False)
    for failed in report.failed:
        print(f"  ingest FAILED {failed.relpath}: {failed.reason}", file=sys.stderr)
    print(f"  {report.summary()} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)


def _table(columns: dict[str, dict[str, object]]) -> str:
    names = list(columns)
    keys: list[str] = []
    for summary in columns.values():
        keys += [k for k in summary if k not in keys]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for k in keys:
        cells = [columns[n].get(k) for n in names]
        lines.append(f"| {k} | " + " | ".join("–" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.store import open_client

    # A stopped run (SIGTERM) unwinds like Ctrl-C, so its generator process is stopped
    # too instead of being left running on the CPU.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="medcite-answers-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp)
        # Our own embedded Qdrant, audit database and generator port; the generator
        # weights already assembled for the product are shared (read only).
        base = settings.isolated(
            data_dir, collection="eval_corpora",
            local_llm_port=settings.local_llm_port if settings.llm_base_url else _free_port(),
        )
        embedder = Embedder(base.embedding_model, base.embedding_device, base.embedding_batch_size)
        client = open_client(base)
        try:
            return _evaluate(args, base, client, embedder, data_dir)
        finally:
            client.close()


def _evaluate(args, base: Settings, client, embedder: Embedder, data_dir: Path) -> int:  # type: ignore[no-untyped-def]
    tables: dict[str, dict[str, dict[str, object]]] = {}
    per_question: dict[str, dict[str, list[dict[str, object]]]] = {}
    corpus, questions = base.corpora_dir, load_corpora_questions(
        Path(args.questions) if args.questions else QUESTIONS_FILE)
    if args.subset:
        subset = corpora_dataset(base.corpora_dir, data_dir, files=list(SUBSET_FILES))
        corpus = subset.corpus
        questions = (restrict_to_files(questions, set(SUBSET_FILES)) if args.questions
                     else subset.questions)
    print(f"corpora: ingesting {corpus}", file=sys.stderr)
    _ingest(corpus, base, client, embedder)
    services = build_services(base, client=client, embedder=embedder)
    primary = services.generator.endpoints[0].generator
    try:
        def make_run(svc: Services, collection: str) -> Run:
            return Run(svc, CitationBaseline(
                client, collection, base.embedding_model, base_url=primary.base_url,
                model=primary.model, api_key=base.llm_api_key, timeout_s=base.llm_timeout_s,
                max_tokens=base.llm_max_tokens, top_k=base.top_k,
            ))

        run = make_run(services, "eval_corpora")
        questions = grading.stratified(questions, args.limit)
        print(f"corpora: {len(questions)} questions", file=sys.stderr)
        v1 = build_services(base.model_copy(update={
            "citations": "quotes", "llm_base_url": primary.base_url,
            "llm_structured_output": primary.structured_mode,
        }), client=client, embedder=embedder)
        try:
            graded = run_graded(run, v1, questions, list(args.systems),
                                Path(args.partial) if args.partial else None)
        finally:
            v1.audit.close()
        tables["corpora"] = {n: grading.summarise(r) for n, r in graded.items()}
        _print_table("corpora", tables["corpora"])
        for name, rows in graded.items():
            _print_table(f"corpora by kind ({name})", grading.by_kind(rows))
        per_question["corpora"] = {n: [asdict(x) for x in r] for n, r in graded.items()}
        if args.pubmedqa:
            dataset = pubmedqa_dataset(eval_data_dir(args.eval_data), data_dir / "corpus",
                                       limit=args.pubmedqa_corpus, seed=args.seed)
            pub = base.model_copy(update={
                "collection": "eval_pubmedqa", "llm_base_url": primary.base_url,
                "llm_structured_output": primary.structured_mode,
            })
            print(f"pubmedqa: ingesting {dataset.corpus}", file=sys.stderr)
            _ingest(dataset.corpus, pub, client, embedder)
            pub_services = build_services(pub, client=client, embedder=embedder)
            try:
                results = _pubmedqa(make_run(pub_services, "eval_pubmedqa"), dataset, args)
            finally:
                pub_services.audit.close()
            tables["pubmedqa"] = {n: summarise(r) for n, r in results.items()}
            _print_table("pubmedqa", tables["pubmedqa"])
            per_question["pubmedqa"] = {n: [asdict(x) | {"sentences": _plain(x)} for x in r]
                                        for n, r in results.items()}
        if args.consistency:
            groups = [json.loads(line) for line in REPHRASINGS.read_text().splitlines()
                      if line.strip()][: args.consistency]
            print(f"consistency: {len(groups)} questions x 3 phrasings", file=sys.stderr)
            tables["consistency (medcite)"] = {"medcite": run_consistency(run, groups)}
            _print_table("consistency (medcite)", tables["consistency (medcite)"])
    finally:
        _stop(services)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv), "model": primary.model,
            "tables": tables, "results": per_question,
        }, indent=1, default=str))
    return 0


def _print_table(name: str, columns: dict[str, dict[str, object]]) -> None:
    print(f"### {name}\n\n{_table(columns)}\n", flush=True)


def _pubmedqa(run: Run, dataset: EvalDataset, args: argparse.Namespace) -> dict[str, list[Scored]]:
    records = json.loads((eval_data_dir(args.eval_data) / "pubmedqa" / "data" / "ori_pqal.json")
                         .read_text(encoding="utf-8"))
    chosen = random.Random(args.seed).sample(dataset.questions, min(args.pubmedqa,
                                                                    len(dataset.questions)))
    labels = {q.qid: str(records[q.qid]["final_decision"]) for q in chosen}
    doc_ids = {q.qid: f"md:{relpath_stem(q.gold[0].source_file)}" for q in chosen}
    print(f"pubmedqa: {len(chosen)} questions", file=sys.stderr)
    return run_questions(run, chosen, labels, doc_ids)


def _plain(r: Scored) -> list[dict[str, object]]:
    return [{"text": s, "cited": [p.provenance.source_file for p in c]} for s, c in r.sentences]


def _stop(services: Services) -> None:
    # Not services.close(): the Qdrant client is the evaluation's and closes after.
    from app.llm import local_server as local_llm

    local_llm.stop_server(services.llm_process)
    services.audit.close()
