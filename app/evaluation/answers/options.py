"""`medcite eval-answers`' options, importable without the answering stack so
`medcite --help` stays fast."""

from __future__ import annotations

import argparse

from app.evaluation.retrieval.options import DEFAULT_SAMPLE, DEFAULT_SEED

SYSTEMS = ("medcite", "medcite-v1", "llamaindex-citation")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=16,
                   help="questions from eval/corpora_questions.jsonl, round-robin over kinds")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS,
                   help="systems to compare on our question set")
    p.add_argument("--pubmedqa", type=int, default=10, help="PubMedQA PQA-L questions (0: none)")
    p.add_argument("--pubmedqa-corpus", type=int, default=DEFAULT_SAMPLE,
                   help="abstracts indexed for PubMedQA (the questions' own among them)")
    p.add_argument("--consistency", type=int, default=5,
                   help="question groups from eval/rephrasings.jsonl (0: none)")
    p.add_argument("--json", help="write per-question results and the tables here")
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
    return out
