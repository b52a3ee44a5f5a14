"""Drug names in free text, with their synonyms (brand ↔ generic), from a packaged
offline dictionary (drug-named-entity-recognition)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

from retrieval.drug_classes import classes_in

_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9\-]*|\S")


@dataclass(frozen=True)
class DrugMention:
    name: str
    synonyms: frozenset[str]  # lower-case, includes the name itself
    # A drug class ("statin" is "Hydroxymethylglutaryl-CoA Reductase Inhibitors"), not a
    # drug: its members are not listed, so a passage naming simvastatin does not name it.
    is_class: bool = False


# A class's name says so: "Lipotropic Agents", "PCSK9 Inhibitors", "Calcium Channel
# Blockers", "Glucagon-Like Peptide-1 Receptor", MeSH's inverted "Analgesics, Opioid".
_CLASS_WORDS = frozenset(
    "agent agents inhibitor inhibitors blocker blockers agonist agonists antagonist "
    "antagonists receptor receptors analog analogs analogue analogues derivatives drugs "
    "class classes sequestrants modulators activators stimulants".split()
)
# MeSH trees of what a drug acts on, not drugs: enzymes (D08) and proteins such as
# receptors and pumps (D12.776): "Proton Pumps" in "proton pump inhibitors".
_TARGET_TREES = ("D08.", "D12.776.")


def _is_class(entry: dict) -> bool:  # type: ignore[type-arg]
    # MeSH D27 is "Chemical Actions and Uses" (pharmacologic actions): classes, whereas
    # drugs sit under the chemical trees (D02, D03, D04...) and usually have a DrugBank id.
    trees = [str(t) for t in entry.get("mesh_tree") or []]
    if entry.get("drugbank_id"):
        return False
    if trees and all(t.startswith("D27.") for t in trees):
        return True
    if trees and all(t.startswith(_TARGET_TREES) for t in trees):
        return True
    return is_class_name(str(entry.get("name", "")))


def is_class_name(name: str) -> bool:
    """A name shaped like a drug class rather than a drug."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    return bool(words) and (words[-1] in _CLASS_WORDS or "," in name)


def _followed_by_class_word(tokens: list[str], end: int) -> bool:
    """"Glucagon-Like Peptide-1 *Receptor* agonists", "proton pump *inhibitors*": the
    words after a match make it a class."""
    after = [t.lower() for t in tokens[end:end + 2] if t.isalpha()]
    return any(w in _CLASS_WORDS for w in after[:2])


# Dose words some dictionary entries carry in their names ("Low-dose aspirin").
_DOSE_PREFIX = re.compile(r"^(?:low|high|standard|full)[- ]dose (.{4,})$")


@lru_cache(maxsize=1)
def _finder():  # type: ignore[no-untyped-def]
    from drug_named_entity_recognition import find_drugs

    return find_drugs


def find_drug_mentions(text: str, fuzzy: bool = False) -> list[DrugMention]:
    """Drugs named in `text`. With `fuzzy`, when nothing matches exactly, single words of
    six letters or more may match a near-miss ("Simvistatin", as Synthea spells it): for
    reading EHR data, never for verifying an answer."""
    # The dictionary matches whole tokens, so punctuation must be split off first.
    tokens = _TOKEN.findall(text)
    found: dict[str, DrugMention] = {}
    _collect(_finder()(tokens, is_ignore_case=True), found, tokens)
    if fuzzy and not found:
        # One word at a time, six letters or more: short words fuzzy-match unrelated
        # entries. (The library's own fuzzy mode is unreliable after an exact lookup.)
        for token in tokens:
            if len(token) >= 6 and token.isalpha():
                hit = process.extractOne(token.lower(), _variants(), scorer=fuzz.ratio,
                                         score_cutoff=90)
                if hit:
                    _collect(_finder()([hit[0]], is_ignore_case=True), found)
    return list(found.values())


@lru_cache(maxsize=1)
def _variants() -> list[str]:
    from drug_named_entity_recognition import drugs_finder

    return sorted(v for v in drugs_finder.drug_variant_to_canonical
                  if len(v) >= 6 and v.isalpha())


def _collect(
    matches: list, found: dict[str, DrugMention], tokens: list[str] | None = None,  # type: ignore[type-arg]
) -> None:
    for entry, *where in matches:
        name = str(entry.get("name", "")).strip()
        if not name or name.lower() in found:
            continue
        synonyms = {s.lower() for s in entry.get("synonyms", ()) if len(s) <= 40}
        synonyms.add(name.lower())
        # "Low-dose aspirin" is aspirin: a passage saying "aspirin 81 mg" names it.
        synonyms |= {m.group(1) for s in synonyms if (m := _DOSE_PREFIX.match(s))}
        end = where[1] if len(where) >= 2 and isinstance(where[1], int) else None
        is_class = _is_class(entry) or (
            tokens is not None and end is not None and _followed_by_class_word(tokens, end)
        ) or any(classes_in(s) for s in synonyms)
        found[name.lower()] = DrugMention(name=name, synonyms=frozenset(synonyms),
                                          is_class=is_class)


def drug_names(text: str, fuzzy: bool = False) -> list[str]:
    """The drugs (never classes) named in `text`, as normalised keys: the dictionary's
    canonical name in lower case, so "Lipitor", "atorvastatin calcium" and "ATORVASTATIN"
    are one key ("atorvastatin"). What ingest stores in the payload's `drugs` field and
    what drug-aware search matches against."""
    return sorted({m.name.lower() for m in find_drug_mentions(text, fuzzy=fuzzy)
                   if not m.is_class})


def mentioned_in(drug: DrugMention, text: str) -> bool:
    lowered = text.lower()
    return any(
        re.search(rf"(?<![a-z0-9]){re.escape(s)}(?![a-z0-9])", lowered) for s in drug.synonyms
    )
