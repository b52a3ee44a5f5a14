"""Whether a word is ordinary English, from the word list unstructured ships
(`unstructured/nlp/english-words.txt`, 427k words: nltk's words corpus and
jeremy-rifkin/Wordlist), read from its file so that the serving process does not
import unstructured, which starts its telemetry on import."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _english() -> frozenset[str]:
    spec = importlib.util.find_spec("unstructured")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("unstructured is not installed: its English word list is needed")
    path = Path(next(iter(spec.submodule_search_locations))) / "nlp" / "english-words.txt"
    return frozenset(w.lower() for w in path.read_text(encoding="utf-8").split())


def is_english(word: str) -> bool:
    return word.lower() in _english()
