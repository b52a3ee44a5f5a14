"""Text normalisation and stop words shared by the citation checks and the relevance test."""

from __future__ import annotations

import unicodedata

STOPWORDS = frozenset(
    """a an and are as at be been being but by can could did do does for from had has have
    how if in into is it its may might more most must of on or our per should such than that
    the their them then there these they this those to was were what when where which while
    who whom why will with would you your also any each other only same so very about after
    before between during over under up down out off again further once here both few some
    own just now patient patients recommended recommend""".split()
)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"')
    text = text.replace("\u201d", '"').replace("\u2013", "-").replace("\u2014", "-")
    return text.casefold()


def stem(word: str) -> str:
    """A word without its commonest inflection, so that a claim's words match its
    source's ("reported" ~ "reports"): shared by the coverage check and the list check."""
    for suffix in ("ations", "ation", "ing", "ies", "es", "ed", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word
