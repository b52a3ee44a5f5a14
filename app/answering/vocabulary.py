"""Whether a word is ordinary English, from the word list unstructured ships
(`unstructured/nlp/english-words.txt`, 427k words: nltk's words corpus and
jeremy-rifkin/Wordlist), read from its file so that the serving process does not
import unstructured, which starts its telemetry on import."""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np


def _digest(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.lower().encode(), digest_size=8).digest(),
                          "little")


@lru_cache(maxsize=1)
def _english() -> np.ndarray:
    """The words' 64-bit digests, sorted: 3.3 MiB, where a set of the strings added 54 MiB
    to the process's resident memory (29 MiB now, most of it what the allocator keeps
    from reading the file once). A false match is one chance in ~4e13 per word."""
    spec = importlib.util.find_spec("unstructured")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("unstructured is not installed: its English word list is needed")
    path = Path(next(iter(spec.submodule_search_locations))) / "nlp" / "english-words.txt"
    words = path.read_text(encoding="utf-8").split()
    return np.unique(np.fromiter((_digest(w) for w in words), dtype=np.uint64,
                                 count=len(words)))


def is_english(word: str) -> bool:
    digests = _english()
    key = np.uint64(_digest(word))
    at = int(np.searchsorted(digests, key))
    return at < len(digests) and bool(digests[at] == key)


# Clinical words are built from ordinary ones with a Latin or Greek prefix
# ("intraoperative", "subfoveal", "periprocedural"); the word list lacks many of them.
# Such a word is no unknown substance: "Does Medicare pay for intraoperative EEG
# monitoring …?" abstained before generation because the NCD says "during surgical
# procedures". A prefix with a short remainder proves nothing ("pre" + "dnisone").
_PREFIXES = ("intra", "inter", "peri", "post", "pre", "sub", "supra", "trans", "non",
             "anti", "hyper", "hypo", "extra", "endo", "epi", "multi", "poly", "semi")
_MIN_REMAINDER = 5


def is_ordinary_word(word: str) -> bool:
    """An English word, or one made of a clinical prefix and an English word."""
    word = word.lower()
    if is_english(word):
        return True
    return any(word.startswith(p) and len(word) - len(p) >= _MIN_REMAINDER
               and is_english(word[len(p):]) for p in _PREFIXES)
