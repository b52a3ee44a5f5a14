"""Citation verification without an NLI model.

`verify_units` (the default) checks a sentence against the units it cites by id
(app/answering/units.py): the units' text is the evidence, so it is present by
construction, and `check_claim` asks whether it carries the sentence: content-word
coverage, the same polarity, every number, dose, unit, frequency and date exactly, every
drug under a brand or generic name, and every condition, population and route
(app/answering/relevance.py). `verify_sentence` is v1 (MEDCITE_CITATIONS=quotes): the
model copies a quote, aligned in the passage by a bounded fuzzy match, then checked the
same way. Optional model-based verifiers (app/answering/model_verifiers.py) may lower,
never raise, what these checks decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz

from app.answering.altered_copy import swapped_words
from app.answering.list_items import left_out
from app.answering.models import AnswerSentence, Citation, CitationStatus
from app.answering.relevance import APPLIES_TO, missing_entities, populations_in
from app.answering.text import STOPWORDS, normalise, stem
from app.answering.units import Unit, split_passage
from retrieval.drugs import DrugMention, find_drug_mentions, mentioned_in
from retrieval.models import Passage

# The reason given to a sentence that copies a cited unit with a word changed.
SWAP_REASON = "changes the cited text: "
MIN_ALIGN = 90.0  # rapidfuzz partial ratio for a quote to count as present
MIN_QUOTE_CHARS = 12
SUPPORTED_COVERAGE = 0.75
PARTIAL_COVERAGE = 0.5

NEGATIONS = frozenset(
    {"not", "no", "never", "without", "none", "neither", "nor", "cannot", "avoid",
     "contraindicated"}
)
# Frequency words change a dose as much as its number does.
FREQUENCIES = frozenset(
    {"once", "twice", "thrice", "daily", "weekly", "monthly", "hourly", "nightly", "bid",
     "tid", "qid", "qd", "qhs", "prn", "biweekly", "annually", "yearly"}
)
_WORD = re.compile(r"[a-z][a-z\-]+")
# A number with an optional unit; "10 or 20 mg" and "10 to 80 mg" give the unit to each.
_UNIT = (
    r"(?:micrograms?|milligrams?|grams?|milli(?:liter|litre)s?|"
    r"mg/kg/day|mg/kg|mg/day|mg/dl|mcg/day|mcg|µg|ug|mg|g|kg|ml|l|meq|mmol|units?|iu|"
    r"mmhg|%|percent|days?|weeks?|months?|years?|hours?|hrs?|minutes?|min|tablets?|capsules?|"
    r"doses?|times)"
)
_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
_QUANTITY_RUN = re.compile(
    rf"(?<![\w.])({_NUMBER}(?:\s*(?:,|or|and|to|-|–|/)\s*{_NUMBER})*)\s*({_UNIT})?(?![a-z])",
    re.IGNORECASE,
)
_MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(),
    start=1)}
_DATE_WORDS = re.compile(
    r"\b(" + "|".join(_MONTHS) + r")\s+(\d{1,2}),?\s+(\d{4})\b", re.IGNORECASE
)
_DATE_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_DATE_US = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")


@dataclass(frozen=True)
class Quantity:
    value: str
    unit: str | None


def _normalise_with_map(text: str) -> tuple[str, list[int]]:
    """Normalised, whitespace-collapsed text plus, for each of its characters, the
    offset of the original character it came from."""
    out: list[str] = []
    index: list[int] = []
    previous_space = True
    for i, ch in enumerate(text):
        for n in normalise(ch):
            if n.isspace():
                if previous_space:
                    continue
                n, previous_space = " ", True
            else:
                previous_space = False
            out.append(n)
            index.append(i)
    return "".join(out), index


def align_quote(quote: str, passage: str) -> tuple[float, int, int] | None:
    """Where `quote` sits in `passage`: (score 0..100, start, end) in passage offsets."""
    q, _ = _normalise_with_map(quote)
    q = q.strip(" .\"'")
    if len(q) < MIN_QUOTE_CHARS:
        return None
    p, index = _normalise_with_map(passage)
    at = p.find(q)
    if at >= 0:
        return 100.0, index[at], index[at + len(q) - 1] + 1
    result = fuzz.partial_ratio_alignment(q, p, score_cutoff=MIN_ALIGN)
    if result is None or result.dest_end <= result.dest_start:
        return None
    return float(result.score), index[result.dest_start], index[result.dest_end - 1] + 1


def _without_dates(text: str) -> str:
    for pattern in (_DATE_WORDS, _DATE_ISO, _DATE_US):
        text = pattern.sub(" ", text)
    return text


def _canonical_number(value: str) -> str:
    value = value.replace(",", "")
    if "." in value:
        whole, frac = value.split(".", 1)
        frac = frac.rstrip("0")
        return f"{int(whole)}.{frac}" if frac else str(int(whole))
    return str(int(value))


# Spelled out or abbreviated, a unit is the same unit ("400 micrograms daily").
_SAME_UNIT = {"ug": "mcg", "µg": "mcg", "percent": "%", "hr": "hour", "microgram": "mcg",
              "milligram": "mg", "gram": "g", "milliliter": "ml", "millilitre": "ml"}


def quantities(text: str) -> list[Quantity]:
    """Numbers with their units; dates are compared separately, so they are taken out."""
    found: list[Quantity] = []
    for m in _QUANTITY_RUN.finditer(normalise(_without_dates(text))):
        unit = m.group(2)
        unit = unit.rstrip("s") if unit and unit not in ("%",) else unit
        unit = _SAME_UNIT.get(unit or "", unit)
        for value in re.findall(_NUMBER, m.group(1)):
            found.append(Quantity(_canonical_number(value), unit))
    return found


def dates(text: str) -> set[str]:
    out = set()
    for month, day, year in _DATE_WORDS.findall(text):
        out.add(f"{year}-{_MONTHS[month.lower()]:02d}-{int(day):02d}")
    for year, month, day in _DATE_ISO.findall(text):
        out.add(f"{year}-{month}-{day}")
    for month, day, year in _DATE_US.findall(text):
        out.add(f"{year}-{int(month):02d}-{int(day):02d}")
    return out


def missing_quantities(sentence: str, source: str) -> list[str]:
    """Numbers (with units) and dates of `sentence` that `source` does not state."""
    have = quantities(source)
    missing = []
    for q in quantities(sentence):
        ok = any(
            h.value == q.value and (q.unit is None or h.unit is None or h.unit == q.unit)
            for h in have
        )
        if not ok:
            missing.append(f"{q.value} {q.unit}".strip() if q.unit else q.value)
    source_dates = dates(source)
    missing.extend(d for d in dates(sentence) if d not in source_dates)
    source_words = set(_WORD.findall(normalise(source)))
    missing.extend(w for w in _WORD.findall(normalise(sentence))
                   if w in FREQUENCIES and w not in source_words)
    return missing


def missing_drugs(sentence: str, source: str) -> list[str]:
    """Drugs the sentence names that `source` does not mention under any of their names
    (brand or generic): a dose quoted from the atorvastatin label does not support a
    sentence about rosuvastatin, however many other words the two share."""
    # Classes ("a preferred statin") are left to the content-word coverage: the
    # dictionary does not list a class's members.
    return [d.name for d in find_drug_mentions(sentence)
            if not d.is_class and not mentioned_in(d, source)]


def content_words(text: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(normalise(text)) if w not in STOPWORDS and len(w) > 2}


def has_negation(text: str) -> bool:
    return bool(NEGATIONS & set(_WORD.findall(normalise(text))))


def coverage(sentence: str, evidence: str, context: str) -> tuple[float, list[str]]:
    """Share of the sentence's content words found in the quote, counting the passage's
    title/section words and drug synonyms (a quote says "LIPITOR", the sentence says
    "atorvastatin")."""
    words = content_words(sentence)
    if not words:
        return 1.0, []
    have = content_words(evidence) | content_words(context)
    uncovered = sorted(words - have)
    if uncovered:
        for drug in find_drug_mentions(" ".join(uncovered)):
            if mentioned_in(drug, evidence + " " + context):
                uncovered = [w for w in uncovered if w not in {stem(s) for s in drug.synonyms}]
    return 1.0 - len(uncovered) / len(words), uncovered


def _context(passage: Passage) -> str:
    """A passage's title and section path, and the drugs its section governs without
    naming them (a formulary's "Clinical PA" criteria are those of the page's rows
    flagged PA: Repatha's, though they say only "lipid lowering medications")."""
    prov = passage.provenance
    applies = f" [{APPLIES_TO}{', '.join(prov.applies_to)}]" if prov.applies_to else ""
    return prov.title + " " + " ".join(prov.section_path) + applies


_SENTENCE_END = re.compile(r"(?<=[.;!?])\s+|\n+")


def best_sentence(claim: str, passage: Passage) -> tuple[float, int, int] | None:
    """The passage sentence that covers the claim best: (coverage, start, end)."""
    best: tuple[float, int, int] | None = None
    start = 0
    context = _context(passage)
    for m in [*_SENTENCE_END.finditer(passage.text), None]:
        end = m.start() if m else len(passage.text)
        piece = passage.text[start:end]
        if piece.strip():
            cover, _ = coverage(claim, piece, context)
            if best is None or cover > best[0]:
                lead = len(piece) - len(piece.lstrip())
                best = (cover, start + lead, start + len(piece.rstrip()))
        start = m.end() if m else start
    return best


def locate_evidence(
    sentence: str, label: str, quote: str, passages: dict[str, Passage]
) -> tuple[str, tuple[float, int, int], list[str], bool] | None:
    """Find what the citation rests on: (passage label, (score, start, end), notes,
    exact). Tries the quote in the cited passage, then in the other retrieved passages
    (small models mislabel), then the sentence itself, then the closest sentence of the
    cited passage (never better than partial)."""
    cited = passages[label]
    if quote.strip():
        hit = align_quote(quote, cited.text)
        if hit:
            return label, hit, [], True
        for other, passage in passages.items():
            hit = align_quote(quote, passage.text) if other != label else None
            if hit:
                return other, hit, [f"quote is in {other}, not in the cited {label}"], True
    hit = align_quote(sentence, cited.text)
    if hit:
        return label, hit, ["no usable quote; the sentence itself is in the passage"], True
    close = best_sentence(sentence, cited)
    if close and close[0] >= SUPPORTED_COVERAGE:
        note = "quote not found in the passage; its closest sentence was checked instead"
        return label, (close[0] * 100, close[1], close[2]), [note], False
    return None


def verify_citation(
    sentence: str, passage_id: str, quote: str, passages: dict[str, Passage]
) -> Citation:
    def invalid(reason: str) -> Citation:
        return Citation(passage_id=passage_id, quote=quote, status=CitationStatus.invalid,
                        score=0.0, reasons=[reason])

    if passage_id not in passages:
        return invalid("cited passage was not retrieved for this question")
    found = locate_evidence(sentence, passage_id, quote, passages)
    if found is None:
        return invalid("quote not found in the cited passage")
    label, (align_score, start, end), reasons, exact = found
    passage = passages[label]
    evidence = passage.text[start:end]
    context = _context(passage)
    cover, uncovered = coverage(sentence, evidence, context)
    if uncovered:
        reasons.append("words not in the quote: " + ", ".join(uncovered[:8]))
    negation_mismatch = has_negation(sentence) != has_negation(evidence)
    if negation_mismatch:
        reasons.append("negation differs between the sentence and the quote")
    score = round((align_score / 100.0) * cover, 3)
    if negation_mismatch or cover < PARTIAL_COVERAGE:
        status = CitationStatus.unsupported
    elif cover < SUPPORTED_COVERAGE or not exact:
        status = CitationStatus.partial
    else:
        status = CitationStatus.supported
    return Citation(
        passage_id=label, quote=quote, status=status, score=score, reasons=reasons,
        span_start=start, span_end=end,
    )


_RANK = {
    CitationStatus.supported: 3,
    CitationStatus.partial: 2,
    CitationStatus.unsupported: 1,
    CitationStatus.invalid: 0,
}


def verify_sentence(
    text: str, citations: list[tuple[str, str]], passages: dict[str, Passage]
) -> AnswerSentence:
    checked = [verify_citation(text, pid, quote, passages) for pid, quote in citations]
    # Two citations that land on the same span say nothing more than one.
    seen: set[tuple[str, int, int]] = set()
    kept = []
    for c in sorted(checked, key=lambda c: -_RANK[c.status]):
        if c.span_start is not None and c.span_end is not None:
            key = (c.passage_id, c.span_start, c.span_end)
            if key in seen:
                continue
            seen.add(key)
        kept.append(c)
    checked = kept
    if not checked:
        return AnswerSentence(text=text, citations=[], status=CitationStatus.unsupported)
    # Every number, dose, unit, frequency and date must be in the quoted evidence, not
    # merely somewhere in the passage: "40 mg" is in the Lipitor dosing passage, but not
    # as a starting dose.
    evidence = " ".join(
        passages[c.passage_id].text[c.span_start : c.span_end]
        for c in checked
        if c.span_start is not None and c.passage_id in passages
    )
    missing = missing_quantities(text, evidence)
    # A drug may be named by the passage's title or section ("LIPITOR" label, "Statins"
    # formulary table) rather than inside the quote itself.
    contexts = " ".join(
        _context(passages[c.passage_id]) for c in checked if c.passage_id in passages
    )
    drugs = missing_drugs(text, evidence + " " + contexts)
    for c in checked:
        if c.status not in (CitationStatus.supported, CitationStatus.partial):
            continue
        if missing:
            c.status = CitationStatus.unsupported
            c.reasons.append("not in the quoted text: " + ", ".join(missing))
        if drugs:
            c.status = CitationStatus.unsupported
            c.reasons.append("drug not named by the cited evidence: " + ", ".join(drugs))
    best = max(checked, key=lambda c: (_RANK[c.status], c.score))
    return AnswerSentence(text=text, citations=checked, status=best.status)


# --- citations by selection: the model names units, the server reads them -------------

# A sentence that only points elsewhere ("the conditions listed above", "the following:")
# states nothing a reader can check on its own.
_VACUOUS = re.compile(
    r"\b(listed|shown|described|mentioned|stated|outlined) (above|below|earlier)\b"
    r"|\bthe following\b\s*:?\s*$|:\s*$"
    # A label's pointer to its own full text ("See full prescribing information for
    # complete boxed warning."): shown as the evidence for a boxed-warning question.
    r"|^see (?:the )?(?:full prescribing information|section|table|figure)\b"
    # "… use these criteria to assess pregnancy status (see box below)": the criteria
    # are elsewhere.
    r"|\b(?:box|table|figure|chart|list)\s+(?:below|above)\b"
    # A record's or list's heading copied as a sentence ("Ohio Medicaid formulary:
    # Preferred Drug List › Infectious Disease Agents › Antibiotics - Inhaled", "Link to
    # Criteria: Endocrine Agents: Growth Hormone"): a place, not a statement.
    r"|^(?!.*(?::\s*(?:non-)?preferred(?! drug)|\bcovered|\btier\b|\blimit|\d))"
    r"[\w .'&-]{0,60}\bformulary: [^.]*›[^.]*\.?$"
    r"|^link to criteria\b"
)
MIN_CONTENT_WORDS = 3
# A sentence broken off before its next part ("…; and", "…, or"): vacuous when short,
# while a list item copied with its joining "; or" still states its item ("Are poor
# surgical risks for a valvuloplasty procedure; or", seen withheld).
_BROKEN_OFF = re.compile(r"[;,]\s*(and|or)?\s*$|\b(and|or)\s*\.?\s*$")
MIN_BROKEN_OFF_WORDS = 4


def vacuous(sentence: str) -> bool:
    text = normalise(sentence.strip())
    words = len(content_words(sentence))
    return bool(_VACUOUS.search(text)) or words < MIN_CONTENT_WORDS or (
        bool(_BROKEN_OFF.search(text)) and words < MIN_BROKEN_OFF_WORDS)


def check_claim(
    sentence: str, evidence: str, context: str
) -> tuple[CitationStatus, float, list[str]]:
    """The checks every claim passes against the text it cites: content-word coverage,
    negation, numbers/doses/units/frequencies/dates exact, drugs named, and every
    condition, population and route named. Returns (status, coverage, reasons)."""
    if vacuous(sentence):
        return (CitationStatus.unsupported, 0.0,
                ["states nothing on its own (refers to other text)"])
    cover, uncovered = coverage(sentence, evidence, context)
    reasons: list[str] = []
    if uncovered:
        reasons.append("words not in the cited text: " + ", ".join(uncovered[:8]))
    status = (CitationStatus.supported if cover >= SUPPORTED_COVERAGE
              else CitationStatus.partial if cover >= PARTIAL_COVERAGE
              else CitationStatus.unsupported)
    where = evidence + " " + context
    missing = missing_quantities(sentence, without_exclusions(evidence))
    drugs = missing_drugs(sentence, where)
    entities = missing_entities(sentence, where)
    restrictions = missing_restrictions(sentence, where)
    # Each of these makes the claim unsupported, whatever the coverage.
    failures = [
        "the sentence negates what the cited text does not"
        if has_negation(sentence) and not has_negation(evidence) else None,
        "not in the cited text: " + ", ".join(missing) if missing else None,
        status_flip(sentence, where),
        "drug not named by the cited evidence: " + ", ".join(drugs) if drugs else None,
        "condition, population or route not in the cited text: " + ", ".join(entities)
        if entities else None,
        "restriction not in the cited text: " + ", ".join(restrictions)
        if restrictions else None,
    ]
    for failure in failures:
        if failure:
            status = CitationStatus.unsupported
            reasons.append(failure)
    return status, round(cover, 3), reasons


# "Rivaroxaban Tab (all strengths excl 15 MG) | 102 | 102": the 15 mg tablet is the one
# product this limit is not for. A quantity inside such a clause supports no claim.
_EXCLUSION = re.compile(r"\b(?:excl\.?|excluding|except(?:\s+for)?|other than)\s+[^|)\n;]*",
                        re.I)


def without_exclusions(text: str) -> str:
    return _EXCLUSION.sub(" ", text)


# A payer restriction is a fact, not a word to cover: "Humira is preferred with a
# quantity limit (QL)" citing "Humira: Preferred, PA" came back verified with "quantity,
# limit" merely uncovered. Each restriction, by its names and abbreviation.
_RESTRICTIONS = {
    "prior authorization": re.compile(
        r"\bpa\b|\bprior[\s-]+(?:authori[sz]ation|approval)|\bpre-?authori[sz]ation"),
    "step therapy": re.compile(r"\bst\b|\bstep[\s-]+therap"),
    "quantity limit": re.compile(r"\bql\b|\bquantity[\s-]+limit"),
}
# A QHP record's flag can read "prior authorization: no": naming it does not state it.
_FLAG_NOT_SET = re.compile(
    r"\b(?:prior authorization|step therapy|quantity limit):\s*(?:no|not stated)\b")
# "does not require prior authorization" claims its absence: the negation check judges it.
_NEGATED_BEFORE = re.compile(r"\b(?:no|not|without|n't|none)\b(?:\W+\w+){0,3}\W*$")


def missing_restrictions(sentence: str, source: str) -> list[str]:
    """Formulary restrictions (prior authorization, step therapy, quantity limit) the
    sentence says apply that `source` does not state (its flag, its name or a QL table's
    quantity column)."""
    # A sentence restating a record's "prior authorization: no" claims no restriction.
    text = _FLAG_NOT_SET.sub(" ", normalise(sentence))
    have = _FLAG_NOT_SET.sub(" ", normalise(source))
    missing = []
    for name, pattern in _RESTRICTIONS.items():
        claimed = [m for m in pattern.finditer(text)
                   if not _NEGATED_BEFORE.search(text[:m.start()])]
        stated = pattern.search(have) or (name == "quantity limit"
                                          and re.search(r"\bquantity\b[^.]{0,40}\d", have))
        if claimed and not stated:
            missing.append(name)
    return missing


_FORMULARY_STATUS = re.compile(r"\b(?:non[-\s]?|not\s+)?preferred\b")


def _statuses(text: str) -> set[str]:
    return {"non-preferred" if m.group() != "preferred" else "preferred"
            for m in _FORMULARY_STATUS.finditer(normalise(text))}


# A status the sentence claims for what it names ("X is preferred", "are non-preferred",
# "listed as a preferred agent"), not "preferred" as any adjective ("after two preferred
# drugs").
_CLAIMED_STATUS = re.compile(
    r"\b(?:is|are|be|been|remains?|as|was|were)\s+(?:(?:a|an|the|still)\s+)?"
    r"((?:non[-\s]?|not\s+)?preferred)\b")
# "Livalo: Non-Preferred." (a record's reading) or a section path ending in a status.
_STATUS_HEAD = re.compile(r"^\s*(?:non[-\s]?)?preferred\b")


# "The preferred statins are ...", "Non-preferred agents include ...".
_LISTED_STATUS = re.compile(
    r"((?:non[-\s]?|not\s+)?preferred)\s+(?:(?!and\b|or\b)[a-z0-9-]+\s+){0,3}?"
    r"(?:is|are|include|includes)\b")


# "Humira is on the preferred list with a non-preferred status" (seen verified in a fresh
# clone, citing its Preferred row and another category's Non-Preferred one): a status
# named as a list or a status claims it for the drug named before it.
# A list's name followed by its section path ("Preferred Drug List › Lipotropics") names
# the document, and claims nothing.
_STATUS_PHRASE = re.compile(
    r"\b((?:non[-\s]?)?preferred)(?=\s+(?:drugs?\s+|agents?\s+)?(?:list|status|tier)\b"
    r"(?!\s*›))")


# "Ohio Medicaid prefers Colesevelam and Colestipol Granules" (seen verified, both in the
# Non-Preferred column): the verb claims the status for what it names after it.
_PREFERS = re.compile(r"\b((?:does not |doesn't |do not |don't )?prefers?)\b")


def _status_word(found: str) -> str:
    return "non-preferred" if re.search(r"\bnon|\bnot\b|n't\b", found) else "preferred"


def claimed_statuses(sentence: str) -> set[str]:
    text = normalise(sentence)
    found = [m.group(1) for p in (_CLAIMED_STATUS, _LISTED_STATUS, _PREFERS, _STATUS_PHRASE)
             for m in p.finditer(text)]
    return {_status_word(f) for f in found}


def _drug_statuses(drugs: list[DrugMention], evidence: str) -> set[str]:
    """The statuses the evidence gives these drugs: the header of the table cell that
    names one ("Preferred: Atorvastatin | Non-Preferred: Livalo": Livalo's is the
    second), the value of a record that names one ("Livalo: Non-Preferred."), or a prose
    sentence naming one and a status."""
    found: set[str] = set()
    for pair in re.split(r" \| |(?<=\.)\s+", evidence):
        header, _, value = pair.partition(": ")
        if value and any(mentioned_in(d, value) for d in drugs):
            found |= _statuses(header)
        elif value and any(mentioned_in(d, header) for d in drugs) \
                and _STATUS_HEAD.match(normalise(value)):
            found |= _statuses(value.split(".")[0])
        elif not value and any(mentioned_in(d, pair) for d in drugs):
            found |= {"preferred" if m.group(1) == "preferred" else "non-preferred"
                      for m in _CLAIMED_STATUS.finditer(normalise(pair))}
    return found


def status_flip(sentence: str, evidence: str) -> str | None:
    """A formulary status the evidence does not give the drug: "preferred" against a
    "Non-Preferred" cell (the word is covered, the claim is reversed), or the other way,
    or a status claimed for a drug whose status the cited text does not state at all
    ("Livalo is preferred" citing the criteria that mention "two preferred drugs")."""
    said = claimed_statuses(sentence)
    if not said:
        return None
    drugs = [d for d in find_drug_mentions(sentence) if not d.is_class]
    if not drugs:
        stated = _statuses(evidence)
        wrong = [s for s in said if stated and s not in stated]
        return f"the cited text says {', '.join(sorted(stated))}, not {wrong[0]}" \
            if wrong else None
    # Each drug against its own cell or record: "atorvastatin and Livalo are preferred"
    # fails on Livalo's Non-Preferred cell even though atorvastatin's says Preferred.
    per_drug = {d.name: _drug_statuses([d], evidence) for d in drugs}
    if not any(per_drug.values()):
        return ("the cited text does not state the formulary status of "
                + ", ".join(per_drug))
    for d, claims in _claims_by_drug(sentence, drugs).items():
        stated = per_drug[d.name]
        wrong = [c for c in claims if stated and c not in stated]
        if wrong:
            return (f"the cited text says {d.name} is {', '.join(sorted(stated))}, "
                    f"not {wrong[0]}")
    return None


def _claims_by_drug(sentence: str, drugs: list[DrugMention]) -> dict[DrugMention, set[str]]:
    """Which drug each claimed status is about: "X is preferred and Y is non-preferred"
    claims one status each (the nearest drug named before the claim); "the preferred
    statins are X and Y" claims it for every drug named after it."""
    text = normalise(sentence)
    where = {d: [m.start() for s in d.synonyms
                 for m in re.finditer(rf"(?<![a-z0-9]){re.escape(s)}(?![a-z0-9])", text)]
             for d in drugs}
    out: dict[DrugMention, set[str]] = {d: set() for d in drugs}
    for pattern, after in ((_CLAIMED_STATUS, False), (_LISTED_STATUS, True), (_PREFERS, True),
                           (_STATUS_PHRASE, False)):
        for m in pattern.finditer(text):
            status = _status_word(m.group(1))
            if after:
                for d, at in where.items():
                    if any(a > m.start() for a in at):
                        out[d].add(status)
                continue
            before = [(max(a for a in at if a < m.start()), d) for d, at in where.items()
                      if any(a < m.start() for a in at)]
            targets = [max(before, key=lambda x: x[0])[1]] if before else drugs
            for d in targets:
                out[d].add(status)
    return out


def verify_units(sentence: str, cited: list[tuple[Unit, Passage]], question: str = ""
                 ) -> AnswerSentence:
    """A sentence against the units it cites, judged together (one claim may join two
    units: a drug's row and the table's legend). Each citation's quote and span are the
    unit's own text, so they are exact by construction. With the `question`, a sentence
    that cites only units of one population's section ("2.3 Pediatric Patients") must
    name that population, or the question must."""
    if not cited:
        return AnswerSentence(text=sentence, citations=[], status=CitationStatus.unsupported)
    readings = [u.reading(p) for u, p in cited]
    contexts = [unit_context(p) for _, p in cited]
    evidence = " ".join(readings) + record_context(cited)
    context = " ".join(dict.fromkeys(contexts))
    status, score, reasons = check_claim(sentence, evidence, context)
    swaps = [swap for reading, where in zip(readings, contexts, strict=True)
             for swap in swapped_words(sentence, reading, where)]
    if swaps:
        status = CitationStatus.unsupported
        reasons.append(SWAP_REASON + "; ".join(
            f"{new!r} where it says {old!r}" for old, new in swaps[:3]))
    unasked = unasked_population(sentence, cited, question)
    if unasked:
        status = CitationStatus.unsupported
        reasons.append(f"the cited text is about {unasked} patients; neither the sentence "
                       "nor the question says so")
    dropped = left_out(sentence, readings, question)
    if dropped and status is CitationStatus.supported:
        # True as far as it goes, but it reads as the whole list: partial, never verified.
        status = CitationStatus.partial
        reasons.append("leaves out what the cited text lists with it: " + ", ".join(dropped))
    citations = [
        Citation(passage_id=p.id, unit_id=u.uid, quote=u.source_text(p), status=status,
                 score=score, reasons=list(reasons), span_start=u.start, span_end=u.end)
        for u, p in cited
    ]
    return AnswerSentence(text=sentence, citations=citations, status=status)


def record_context(cited: list[tuple[Unit, Passage]]) -> str:
    """The rest of each formulary record a cited unit belongs to. A record passage is
    one row of one payer's list (its drug, strength, status, flags, limit, date), shown
    as several units: "Quantity limit: 204 per 102 days" is the limit of the product its
    row names ("Rivaroxaban Tab 15 MG"), so a sentence joining the two is supported by
    either. Prose passages get nothing: their sentences are separate claims."""
    extra: list[str] = []
    cited_ids = {u.uid for u, _ in cited}
    for passage in {p.id: p for _, p in cited if p.provenance.unit_kind == "row"}.values():
        index = next(u.passage_index for u, p in cited if p.id == passage.id)
        extra += [u.reading(passage) for u in split_passage(passage, index)
                  if u.uid not in cited_ids]
    return (" " + " ".join(extra)) if extra else ""


# An organ's heading names its patients only as an impairment ("8.6 Hepatic Impairment");
# "5.2 Liver Dysfunction" or "Hepatic Failure" is a warning about what the drug does to
# everyone (seen: the jaundice-and-restart sentences left out of the prompt for "… turns
# up jaundiced … Stop it?").
_ORGAN_PATIENTS = re.compile(r"\b(?:renal|kidney|hepatic|liver)\s+(?:impairment|insufficiency)",
                             re.I)


def section_populations(passage: Passage) -> set[str]:
    """The populations a passage's section is about, by its section path ("2.2 ... in
    Pediatric Patients (10-17 years of age)" -> {"pediatric"})."""
    path = " ".join(passage.provenance.section_path)
    found = {p.name for p in populations_in(path)}
    if not _ORGAN_PATIENTS.search(path):
        found -= {"renal", "hepatic"}
    return found


def unasked_population(sentence: str, cited: list[tuple[Unit, Passage]],
                       question: str) -> str | None:
    """The population every cited unit's section is about (its section path: "Pediatric
    Patients (10-17 years) with HeFH", "8.1 Pregnancy", "Renal Impairment") when neither
    the sentence nor the question names it: the children's dose stated as the answer to
    "what is the starting dose?" reads as everyone's. None when there is none."""
    if not question:
        return None
    scoped = [section_populations(passage) for _, passage in {p.id: (u, p) for u, p in
                                                              cited}.values()]
    common = set.intersection(*scoped) if scoped else set()
    said = {p.name for p in populations_in(sentence + " \n " + question)}
    return next((name for name in sorted(common) if name not in said), None)


def unit_context(passage: Passage) -> str:
    """Where a unit sits: its passage's title and section path (a drug or population may
    be named there rather than in the unit), and the payer of a formulary."""
    return " ".join(x for x in (_context(passage), passage.provenance.payer or "") if x)
