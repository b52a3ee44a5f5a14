"""The evaluation datasets, each materialised as a corpus folder with a manifest.

* corpora: our own question set (eval/corpora_questions.jsonl) over the shipped corpora.
* medquad: MedQuAD answers as one small document each; a question's gold is its answer.
* pubmedqa: PubMedQA PQA-L abstracts (contexts only, not the conclusion that answers the
  question); a question's gold is its own abstract.

The public sets are read at run time from MEDCITE_EVAL_DATA (default: shared/eval beside
the repository) and sampled with a fixed seed so runs are comparable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from app.core.settings import REPO_ROOT
from app.evaluation.relevance import EvalQuestion, Gold, normalise
from app.evaluation.retrieval.options import DEFAULT_SAMPLE, DEFAULT_SEED

QUESTIONS_FILE = REPO_ROOT / "eval" / "corpora_questions.jsonl"
DEFAULT_EVAL_DATA = REPO_ROOT.parent / "shared" / "eval"

_MANIFEST = """[[sources]]
glob = "{glob}"
doc_type = "{doc_type}"
access_groups = ["public"]
"""


class EvalDataMissing(FileNotFoundError):
    pass


@dataclass
class EvalDataset:
    name: str
    corpus: Path  # a folder with manifest.toml, ingested as it is
    questions: list[EvalQuestion]
    description: str


def eval_data_dir(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get("MEDCITE_EVAL_DATA") or DEFAULT_EVAL_DATA)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise EvalDataMissing(
            f"{what} not found at {path}. Point MEDCITE_EVAL_DATA (or --eval-data) at the "
            "folder holding medquad/ and pubmedqa/."
        )
    return path


# --- our question set over the shipped corpora ------------------------------------------


def load_corpora_questions(path: Path = QUESTIONS_FILE) -> list[EvalQuestion]:
    questions = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        try:
            gold = tuple(
                Gold(g["source_file"], g["contains"], float(g.get("grade", 1.0)))
                for g in row["gold"]
            )
            questions.append(EvalQuestion(
                row["id"], row["question"], gold, tuple(row.get("tags", [])),
                kind=row.get("kind", ""),
                key_facts=tuple(tuple(forms) for forms in row.get("key_facts", [])),
                bundle=row.get("bundle"), as_of=row.get("as_of"),
                is_list=bool(row.get("list", False)),
            ))
        except KeyError as exc:
            raise ValueError(f"{path}:{n}: missing field {exc}") from exc
    return questions


def corpora_dataset(
    corpora_dir: Path,
    workdir: Path,
    *,
    files: list[str] | None = None,
    limit: int | None = None,
    seed: int = DEFAULT_SEED,
) -> EvalDataset:
    """The shipped corpora (or a copy of just `files`, with the same manifest)."""
    questions = load_corpora_questions()
    corpus = corpora_dir
    if files is not None:
        corpus = workdir / "corpora"
        for rel in files:
            (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(corpora_dir / rel, corpus / rel)
        shutil.copy(corpora_dir / "manifest.toml", corpus / "manifest.toml")
        questions = restrict_to_files(questions, set(files))
    if limit is not None and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    return EvalDataset(
        "corpora", corpus, questions,
        "Hand-written clinician/pharmacist questions over the shipped corpora",
    )


def restrict_to_files(questions: list[EvalQuestion], files: set[str]) -> list[EvalQuestion]:
    """Keep unanswerable questions, and answerable ones with gold inside `files`."""
    out = []
    for q in questions:
        gold = tuple(g for g in q.gold if g.source_file in files)
        if not q.gold or gold:
            out.append(dataclasses.replace(q, gold=gold))
    return out


# --- MedQuAD ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _QAPair:
    qid: str  # "<subset folder>/<document>-<pair>": XML qids repeat across subsets
    group: str  # the MedQuAD document (one focus) the pair belongs to
    question: str
    answer: str


def medquad_pairs(root: Path) -> Iterator[_QAPair]:
    xml_files = sorted(root.glob("*_QA*/*.xml"))
    if not xml_files:
        yield from _medquad_jsonl(_require(root / "medquad_visible.jsonl", "MedQuAD"))
        return
    for path in xml_files:
        group = f"{path.parent.name}/{path.stem}"
        doc = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
        for pair in doc.iter("QAPair"):
            question, answer = pair.findtext("Question"), pair.findtext("Answer")
            # Three subsets ship without answers (MedlinePlus copyright).
            if question and answer and answer.strip():
                yield _QAPair(f"{group}-{pair.get('pid')}", group, question, answer)


def _medquad_jsonl(path: Path) -> Iterator[_QAPair]:
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("answer", "").strip():
            pid = row["qid"].rsplit("-", 1)[-1]
            yield _QAPair(f"{row['doc_id']}-{pid}", row["doc_id"], row["question"], row["answer"])


def medquad_dataset(
    eval_data: Path, workdir: Path, *, limit: int = DEFAULT_SAMPLE, seed: int = DEFAULT_SEED
) -> EvalDataset:
    """Sample whole MedQuAD documents (all pairs about one focus) until `limit` pairs.

    Sampling by document keeps a disease's symptoms, causes and treatment answers in the
    corpus together, so a system must find the answer to *this* question about the
    disease, not merely a passage about the disease.
    """
    root = _require(eval_data / "medquad", "MedQuAD")
    groups: dict[str, list[_QAPair]] = defaultdict(list)
    for pair in medquad_pairs(root):
        groups[pair.group].append(pair)
    if not groups:
        raise EvalDataMissing(f"no MedQuAD question-answer pairs with answers under {root}")
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    chosen: list[_QAPair] = []
    for name in order:
        if len(chosen) >= limit:
            break
        chosen.extend(groups[name])
    corpus = _fresh(workdir / "medquad")
    (corpus / "manifest.toml").write_text(_MANIFEST.format(glob="*.md", doc_type="guideline"))
    files = {}
    for pair in chosen:
        # One flat name per answer: a document's identity is its file name, and MedQuAD's
        # subsets reuse document numbers (8_NHLBI_QA_XML/0000127 is not 7_SeniorHealth's).
        rel = f"{pair.qid.replace('/', '__')}.md"
        (corpus / rel).write_text(pair.answer.strip() + "\n", encoding="utf-8")
        files[pair.qid] = rel
    questions = _medquad_questions(chosen[:limit], chosen, files)
    return EvalDataset(
        "medquad", corpus, questions,
        f"MedQuAD: {len(questions)} questions, {len(chosen)} answer documents "
        f"from {len({p.group for p in chosen})} topics (seed {seed})",
    )


def _medquad_questions(
    asked: list[_QAPair], indexed: list[_QAPair], files: dict[str, str]
) -> list[EvalQuestion]:
    # MedQuAD repeats questions ("What is (are) Diabetes ?") across sources and answers
    # across pairs; every indexed answer to the same question text, and every copy of
    # the same answer text, is equally right.
    by_question: dict[str, set[str]] = defaultdict(set)
    by_answer: dict[str, set[str]] = defaultdict(set)
    for p in indexed:
        by_question[normalise(p.question)].add(files[p.qid])
        by_answer[normalise(p.answer)].add(files[p.qid])
    out = []
    for p in asked:
        same = by_question[normalise(p.question)] | by_answer[normalise(p.answer)]
        rels = {files[p.qid]} | same
        out.append(EvalQuestion(p.qid, p.question, tuple(Gold(r) for r in sorted(rels))))
    return out


# --- PubMedQA ---------------------------------------------------------------------------


def pubmedqa_dataset(
    eval_data: Path, workdir: Path, *, limit: int = DEFAULT_SAMPLE, seed: int = DEFAULT_SEED
) -> EvalDataset:
    path = _require(eval_data / "pubmedqa" / "data" / "ori_pqal.json", "PubMedQA PQA-L")
    records: dict[str, dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))
    pmids = sorted(records)
    if limit < len(pmids):
        pmids = sorted(random.Random(seed).sample(pmids, limit))
    corpus = _fresh(workdir / "pubmedqa")
    (corpus / "manifest.toml").write_text(_MANIFEST.format(glob="*.md", doc_type="guideline"))
    questions = []
    for pmid in pmids:
        rec = records[pmid]
        labels = [str(x) for x in rec.get("LABELS") or []]  # type: ignore[union-attr]
        contexts = [str(x) for x in rec["CONTEXTS"]]  # type: ignore[union-attr]
        # A neutral title: PQA-L has no article titles, and a section label as the
        # title would be the same for every abstract.
        parts = [f"# PubMed {pmid}"]
        for i, text in enumerate(contexts):
            label = labels[i].title() if i < len(labels) else "Abstract"
            parts.append(f"## {label}\n\n{text.strip()}")
        (corpus / f"{pmid}.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
        questions.append(EvalQuestion(pmid, str(rec["QUESTION"]), (Gold(f"{pmid}.md"),)))
    return EvalDataset(
        "pubmedqa", corpus, questions,
        f"PubMedQA PQA-L: {len(questions)} questions over their {len(pmids)} abstracts' "
        f"contexts (seed {seed})",
    )


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder
