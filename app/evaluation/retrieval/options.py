"""`medcite eval`'s options, importable without the search stack so `medcite --help`
stays fast."""

from __future__ import annotations

import argparse

DATASETS = ("corpora", "medquad", "pubmedqa")
MEDCITE_MODES = ("dense", "sparse", "hybrid")
ALL_SYSTEMS = (*(f"medcite-{m}" for m in MEDCITE_MODES), "bm25", "llamaindex")
# Hybrid with one option changed, to measure it against medcite-hybrid: DBSF instead of
# RRF fusion, RRF with the dense arm weighted 1.5 or 2 to the lexical arm's 1, RRF with
# ranking constant k 10 or 60 (Qdrant's default is 2; 60 is Cormack et al.'s), query
# expansion on the lexical arm or both arms, and the reranker MEDCITE_RERANKER /
# MEDCITE_RERANKER_PATH configure. Run on request (--systems), not by default.
VARIANT_SYSTEMS = (
    "medcite-hybrid-expand-off", "medcite-hybrid-expand-abbreviations",
    "medcite-hybrid-expand-lexical", "medcite-hybrid-expand-both", "medcite-hybrid-rerank",
    "medcite-hybrid-dbsf", "medcite-hybrid-rrf-dense1.5", "medcite-hybrid-rrf-dense2",
    "medcite-hybrid-rrf-k10", "medcite-hybrid-rrf-k60",
    # Structure-aware ranking (retrieval/intent.py, retrieval/search.py): off (plain
    # hybrid search as before), label sections filtered rather than boosted, and
    # without the drug-filtered arms.
    "medcite-hybrid-plain", "medcite-hybrid-section-filter", "medcite-hybrid-no-drug-arms",
)
# What the product's /ask uses: Retriever.search's default mode.
DEFAULT_SYSTEM = "medcite-hybrid"
DEFAULT_SAMPLE = 300
DEFAULT_SEED = 13


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=[*DATASETS, "all"], default="all")
    p.add_argument("--limit", type=int, default=None,
                   help=f"questions per dataset (default: all of ours, {DEFAULT_SAMPLE} "
                        "sampled from each public set)")
    p.add_argument("--systems", nargs="+", choices=[*ALL_SYSTEMS, *VARIANT_SYSTEMS],
                   default=list(ALL_SYSTEMS))
    p.add_argument("--json", dest="json_out", help="also write full results to this file")
    p.add_argument("--eval-data", help="folder with medquad/ and pubmedqa/ "
                                       "(default: $MEDCITE_EVAL_DATA or shared/eval)")
    p.add_argument("--data-dir", help="keep the evaluation index here and reuse it "
                                      "(default: a temporary folder)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--quiet", action="store_true", help="no ingest progress bars")
