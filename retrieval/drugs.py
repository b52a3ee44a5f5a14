"""Drug names in free text, with their synonyms (brand ↔ generic), from a packaged
offline dictionary (drug-named-entity-recognition)."""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
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
    name = str(entry.get("name", ""))
    if not trees and " and " in name:
        # A product's ingredients, not a MeSH heading: "Bictegravir, Emtricitabine, and
        # Tenofovir" (Biktarvy), "Calcium, Magnesium, Potassium, and Sodium Oxybate"
        # (Xywav). MeSH's own comma names ("Cholesterol, LDL") stay what they were.
        name = name.replace(",", "")
    return is_class_name(name)


# MeSH's dosage forms and pharmaceutical solutions: "eye drops" is "Ophthalmic
# Solutions", "nasal spray" "Nasal Sprays" (seen abstained: "The retrieved sources do not
# mention Ophthalmic Solutions" for "brand TobraDex eye drops or generic …?").
_FORM_TREES = ("D26.255.", "D26.776.")


# Only those named by a form and a route, not a substance ("Saline Solution", "Ringer's
# Lactate" and "Lubricant Eye Drops" are what is given).
_FORM_NAME_WORDS = frozenset("ophthalmic nasal oral sprays solutions tablets enteric coated "
                             "drug implants aerosol propellants".split())


def _is_dosage_form(entry: dict) -> bool:  # type: ignore[type-arg]
    trees = [str(t) for t in entry.get("mesh_tree") or []]
    words = set(re.findall(r"[a-z]+", str(entry.get("name", "")).lower()))
    return (not entry.get("drugbank_id") and any(t.startswith(_FORM_TREES) for t in trees)
            and bool(words) and words <= _FORM_NAME_WORDS)


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


@lru_cache(maxsize=1)
def _variant_words() -> frozenset[str]:
    from drug_named_entity_recognition import drugs_finder

    return frozenset(w for v in drugs_finder.drug_variant_to_canonical
                     for w in re.findall(r"[a-z]+", v))


def is_known_drug_word(word: str) -> bool:
    """A word of any name the dictionary knows ("glargine" of "insulin glargine")."""
    return word.lower() in _variant_words()


# Synonyms in the packaged dictionary that are ordinary words where our documents use
# them ("...allergy to two or more *generics*" is not oxazepam; "Caps" is a capsule, not
# CAPS buffer): every single-word synonym that differs from its entry's name and is a
# word of a general English vocabulary (or its plural), less those whose everyday sense
# is the drug ("ecstasy", "marijuana", "antibiotics", "nitrates").
_ORDINARY_WORDS = frozenset(
    """generics generic caps sits indicators diamonds fargo kendrick dona hana armour
    angelica sulfate tris flours vals nads ches aldos dids fras""".split()
)


def _collect(
    matches: list, found: dict[str, DrugMention], tokens: list[str] | None = None,  # type: ignore[type-arg]
) -> None:
    for entry, *where in matches:
        name = str(entry.get("name", "")).strip()
        if not name or name.lower() in found or _is_dosage_form(entry):
            continue
        if tokens is not None and len(where) >= 2 and all(isinstance(w, int) for w in where[:2]):
            said = " ".join(tokens[where[0]:where[1]]).lower()
            if said in _ORDINARY_WORDS and said != name.lower():
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


# Words that end a product's name in a formulary cell: dosage forms, release and route.
_FORM_WORDS = frozenset(
    """tab tabs tablet tablets cap caps capsule capsules susp suspension sol soln solution
    inj injection pen pens kit pak pack er xr xl sr ir dr cr la odt patch cream gel oral
    powder granules syrup spray sprinkle chewable vial transdermal topical nasal
    ophthalmic vaginal otc""".split()
)
_NAME_WORD = re.compile(r"[A-Za-z][a-z]+(?:-[A-Za-z][a-z]+)?")
_NOT_NAME_WORDS = frozenset("in of and or with for the all other plus".split())


def product_key(name: str) -> str | None:
    """A product the packaged dictionary does not know ("Auvelity", "Gloperba Susp" as a
    formulary cell writes it) as a drug key: the words of its name before any strength,
    dosage form or route, lower-cased. None when the dictionary knows the name, or the
    name is not shaped like one product (a class, a phrase, a code)."""
    tokens = name.split()
    words: list[str] = []
    for word in tokens:
        if word.lower() in _FORM_WORDS or not _NAME_WORD.fullmatch(word) \
                or word.lower() in _NOT_NAME_WORDS:
            break
        words.append(word)
    rest = tokens[len(words):]
    # What may follow the name: a form, a strength, a short code ("Humulin N", "XR"),
    # a note; anything else ("Agents, Non-Steroidal") means this was not a name.
    if rest and not (rest[0].lower() in _FORM_WORDS or rest[0][0].isdigit()
                     or rest[0][0] in "(<" or (rest[0].isupper() and len(rest[0]) <= 3)):
        return None
    # A brand is capitalised; one or two words ("Pred Forte"), never a phrase.
    if not 1 <= len(words) <= 2 or not words[0][0].isupper():
        return None
    key = " ".join(words).lower()
    if len(key) < 4 or key in _NOT_BRANDS or is_class_name(key) or find_drug_mentions(key):
        return None
    return key


# Capitalised words that a formulary puts in parentheses or cells, which are not brands.
_NOT_BRANDS = frozenset(
    """preferred non-preferred nonpreferred optional generic brand required covered
    excluded none other tier""".split()
)


# "Dextromethorphan/Bupropion (Auvelity)", "Oxybate Salts (Xywav)": a brand in
# parentheses after words that name its ingredients.
_BRAND_AFTER_GENERIC = re.compile(
    r"((?:[A-Za-z][\w\-]*[ /,]+){1,4}?)\(([A-Z][a-z]{3,}(?: [A-Z][a-z]+)?)\)")


def branded_products(text: str) -> list[str]:
    """Keys (`product_key`) of the brands that `text` names in parentheses after their
    ingredients, where the dictionary knows the ingredients and not the brand: the way
    a payer's criteria name the product they are about."""
    keys: list[str] = []
    for match in _BRAND_AFTER_GENERIC.finditer(text):
        key = product_key(match.group(2))
        if key and key not in keys and drug_names(match.group(1)):
            keys.append(key)
    return keys


def products_in(text: str, products: AbstractSet[str]) -> list[str]:
    """The `products` (keys from `product_key`, e.g. the store's formulary rows) that
    `text` names, as whole words, case-insensitively."""
    if not products:
        return []
    words = re.findall(r"[a-z][a-z\-]*", text.lower())
    grams = set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}
    return sorted(grams & products)
