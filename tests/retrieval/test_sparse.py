"""The lexical encoder under concurrency: the API encodes questions on its worker threads
while an upload's ingest encodes chunks on another. A Snowball stemmer keeps the word it
is working on in itself; one shared by all threads returned other words' stems
("rhabdomyolysis" -> "general") and raised IndexError mid-word, which failed an upload."""

from __future__ import annotations

import random
import threading

from retrieval.sparse import encode_query, tokens

WORDS = ("organization interval authorization hypertension rhabdomyolysis generalization "
         "relational conditional contraindications hepatotoxicity").split()


def test_tokens_are_the_same_on_every_thread_at_once() -> None:
    expected = {w: tokens(w) for w in WORDS}
    wrong: list[tuple[str, list[str]]] = []
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(5000):
            word = rng.choice(WORDS)
            try:
                got = tokens(word)
            except Exception as exc:  # noqa: BLE001 - the failure being tested for
                errors.append(repr(exc))
                continue
            if got != expected[word]:
                wrong.append((word, got))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and wrong == []
    assert encode_query("rhabdomyolysis").indices == encode_query("rhabdomyolysis").indices
