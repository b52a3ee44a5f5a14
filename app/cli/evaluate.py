"""`medcite eval` and `medcite eval-answers`: the only way serving code reaches the
evaluation package (app/evaluation/), imported when the command runs."""

from __future__ import annotations

import argparse
from typing import Any

from app.core.settings import Settings


def cmd_eval_answers(args: argparse.Namespace, settings: Settings) -> int:
    from app.evaluation.answers import runner

    return runner.main(args, settings)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    if args.answers:
        from app.evaluation.answers.options import from_eval_args

        return cmd_eval_answers(from_eval_args(args), settings)
    from app.evaluation.retrieval import runner

    return runner.main(args, settings)


def register(sub: Any) -> None:
    p = sub.add_parser("eval", help="compare retrieval systems on question sets with gold")
    from app.evaluation.retrieval.options import add_arguments

    add_arguments(p)
    p.add_argument("--answers", action="store_true",
                   help="evaluate answers instead of retrieval (as `medcite eval-answers`)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("eval-answers", help="answer quality: medcite against LlamaIndex's "
                       "CitationQueryEngine on our questions, PubMedQA and rephrasings")
    from app.evaluation.answers.options import add_arguments as add_answer_arguments

    add_answer_arguments(p)
    p.set_defaults(func=cmd_eval_answers)
