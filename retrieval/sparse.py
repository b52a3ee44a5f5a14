"""Offline lexical (BM25-style) sparse vectors for Qdrant.

Documents get BM25's saturated term frequency per token; Qdrant's IDF modifier supplies
the inverse document frequency at query time, so together they score like BM25 without
a fitted model or a download. Exact drug names, NDC-like codes, doses and abbreviations
("HTN", "MME") match here even when the dense model blurs them.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

K1 = 1.2
B = 0.75
AVG_DOC_TOKENS = 150.0  # typical chunk length in tokens; BM25's length normalisation

_TOKEN = re.compile(r"[a-z0-9]+(?:[.\-/][a-z0-9]+)*")
STOPWORDS = frozenset(
    """a an and are as at be but by for from has have how i if in into is it its of on or
    s such t that the their then there these they this to was what when where which who
    will with would does do can should may""".split()
)


@dataclass(frozen=True)
class SparseVec:
    indices: list[int]
    values: list[float]


_local = threading.local()


def _stemmer() -> snowballstemmer.stemmer:
    # The Snowball project's own English stemmer: NLTK's copy cost every process
    # (API, CLI, ingest worker) ~10 s of start-up importing all of NLTK, and it stemmed
    # "organization" and "organism" to "organ", "interval" to "interv".
    # One per thread: a stemmer keeps the word it is working on in itself, and one shared
    # by an upload's ingest and three /ask threads raised IndexError mid-word
    # (tests/app/api/test_ingest_while_serving.py), failing the upload.
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = snowballstemmer.stemmer("english")
    return stemmer


@lru_cache(maxsize=200_000)
def term_id(term: str) -> int:
    # A stable hash: the same term maps to the same dimension in every process.
    return zlib.crc32(term.encode()) & 0x7FFFFFFF


def tokens(text: str) -> list[str]:
    stem = _stemmer().stemWord
    out = []
    for raw in _TOKEN.findall(text.lower()):
        if raw in STOPWORDS:
            continue
        out.append(raw if any(c.isdigit() for c in raw) else stem(raw))
        # "10-mg" and "0071-0155-23" also match their parts.
        if any(sep in raw for sep in ".-/") and not raw.replace(".", "").isdigit():
            out.extend(p for p in re.split(r"[.\-/]", raw) if p and p not in STOPWORDS)
    return out


def _vector(weights: dict[int, float]) -> SparseVec:
    indices = sorted(weights)
    return SparseVec(indices=indices, values=[weights[i] for i in indices])


def encode_document(text: str) -> SparseVec:
    counts = Counter(term_id(t) for t in tokens(text))
    length = sum(counts.values()) or 1
    norm = K1 * (1 - B + B * length / AVG_DOC_TOKENS)
    return _vector({i: tf * (K1 + 1) / (tf + norm) for i, tf in counts.items()})


def encode_query(text: str) -> SparseVec:
    return _vector({term_id(t): 1.0 for t in set(tokens(text))})
