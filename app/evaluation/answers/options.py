"""`medcite eval-answers`' options, importable without the answering stack so
`medcite --help` stays fast."""

from __future__ import annotations

import argparse

from app.evaluation.retrieval.options import DEFAULT_SAMPLE, DEFAULT_SEED

SYSTEMS = ("medcite", "medcite-v1", "llamaindex-citation")
# `--subset`: one or more files of every document type and of the question kinds that
# need them (boxed warnings, versioned pages, plans), so an evaluation on a 2-core CPU
# ingests minutes of documents, not the whole corpus; the questions are those whose gold
# lies in these files, and every unanswerable one.
SUBSET_FILES = (
    "drug-labels/fda-spl/humira.xml",
    "drug-labels/fda-spl/lipitor-orig.xml",
    "drug-labels/fda-spl/no-title.xml",
    "drug-labels/fda-spl/cough.xml",
    "formularies/ohio-medicaid-updl/current-2024/preferred_drug_list.md",
    "formularies/ohio-medicaid-updl/current-2024/lipotropics.md",
    "formularies/ohio-medicaid-updl/current-2024/UPDL_criteria.md",
    "formularies/ohio-medicaid-updl/current-2024/oral_anticoagulants.md",
    "formularies/ohio-medicaid-updl/versions/preferred_drug_list.v2022-10-26.d9042dc7.md",
    "formularies/ohio-medicaid-updl/versions/lipotropics.v2023-04-04.b8c269cd.md",
    "formularies/cms-qhp/drugs-1.json",
    "formularies/cms-qhp/plans.json",
    "guidelines/ngc/ngc-10598.xml",
    "guidelines/ngc/ngc-10403.xml",
    "guidelines/ngc/ngc-10627.xml",
    "coverage/cms-ncd/LipidTesting.md",
    "coverage/cms-ncd/VentricularAssistDevices.md",
    "coverage/cms-ncd/HomeBloodGlucoseMonitors.md",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=16,
                   help="questions from eval/corpora_questions.jsonl, round-robin over kinds")
    p.add_argument("--subset", action="store_true",
                   help="ingest only SUBSET_FILES and ask the questions whose gold is there")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS,
                   help="systems to compare on our question set")
    p.add_argument("--pubmedqa", type=int, default=10, help="PubMedQA PQA-L questions (0: none)")
    p.add_argument("--pubmedqa-corpus", type=int, default=DEFAULT_SAMPLE,
                   help="abstracts indexed for PubMedQA (the questions' own among them)")
    p.add_argument("--consistency", type=int, default=5,
                   help="question groups from eval/rephrasings.jsonl (0: none)")
    p.add_argument("--json", help="write per-question results and the tables here")
    p.add_argument("--partial", help="append each graded answer here as JSON lines, as it "
                                     "comes (kept when a long run is stopped)")
    p.add_argument("--questions", help="question file in eval/corpora_questions.jsonl's "
                                       "format (default: that file); e.g. the output of "
                                       "`medcite review export`")
    p.add_argument("--data-dir", help="the evaluation's data folder, kept and reused "
                                      "(default: a temporary one)")
    p.add_argument("--eval-data", help="folder with pubmedqa/ (default: shared/eval)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)


def from_eval_args(args: argparse.Namespace) -> argparse.Namespace:
    """`medcite eval --answers` takes `eval`'s options; map them onto ours."""
    ours = argparse.ArgumentParser()
    add_arguments(ours)
    out = ours.parse_args([])
    out.limit = args.limit or out.limit
    out.json = getattr(args, "json_out", None)
    out.data_dir, out.eval_data, out.seed = args.data_dir, args.eval_data, args.seed
    out.systems = list(SYSTEMS)
    out.subset = False
    return out
