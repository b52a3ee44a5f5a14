"""Does cited evidence address the question asked, and does a sentence name only the
clinical entities its evidence names?

"Verified" must mean "answers this question with support", not "this sentence is in a
passage". Two checks serve that:

* `question_focus` reads what the question is about (drugs by brand or generic name,
  drug classes, the patient's medications when it refers to the patient, the payer, a
  condition it names) and the attribute it asks for (dose, contraindication, boxed
  warning, formulary status, quantity limit, coverage criterion, recommendation,
  threshold). `addresses` tests evidence against it: every key entity named, and a
  signal of the attribute in the units, their section path or, for labels, their LOINC
  section code.
* `missing_entities` lists the conditions, populations and routes a sentence names that
  its evidence does not. A swapped indication is never a matter of coverage percentage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app.answering.models import PatientContext
from app.answering.text import normalise
from retrieval.drug_classes import DrugClass, classes_in
from retrieval.drugs import DrugMention, drug_names, find_drug_mentions, mentioned_in

_WORD = re.compile(r"[a-z][a-z\-]+")

POPULATIONS = frozenset(
    """adult adults pediatric paediatric child children adolescent adolescents infant infants
    neonate neonates newborn newborns elderly geriatric pregnant pregnancy lactating
    breastfeeding renal hepatic dialysis""".split()
)
ROUTES = frozenset(
    """oral orally intravenous intravenously subcutaneous subcutaneously intramuscular
    intramuscularly topical topically inhaled inhalation rectal rectally transdermal
    sublingual ophthalmic intranasal intrathecal""".split()
)
_CONDITION_SUFFIX = re.compile(
    r"(?:itis|osis|emia|aemia|oma|pathy|algia|uria|plasia|trophy|iasis|penia|cytosis|megaly"
    r"|rrhea|rrhoea|plegia|sclerosis|lepsy|ectasia|esthesia)$"
)
_CONDITION_WORDS = frozenset(
    """disease syndrome disorder infection cancer carcinoma failure fibrillation hypertension
    hypotension diabetes asthma copd stroke angina gout arthritis psoriasis depression
    schizophrenia pneumonia sepsis obesity migraine seizure seizures suppurativa hiv
    tuberculosis insomnia dementia anemia hypercholesterolemia""".split()
)
# Words the suffixes catch that name no condition.
_NOT_CONDITIONS = frozenset(
    {"diagnosis", "diagnoses", "prognosis", "prognoses", "stroma", "aroma", "hypnosis"}
)


def _words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def is_condition(word: str) -> bool:
    return word not in _NOT_CONDITIONS and (
        word in _CONDITION_WORDS or (len(word) > 5 and bool(_CONDITION_SUFFIX.search(word)))
    )


def clinical_entities(text: str) -> list[str]:
    """Conditions, populations and routes a text names, in order, once each."""
    seen: dict[str, None] = {}
    for w in _words(text):
        if w in POPULATIONS or w in ROUTES or is_condition(w):
            seen.setdefault(w, None)
    return list(seen)


def _stem(word: str) -> str:
    for suffix in ("ally", "ly", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _present(word: str, have: set[str]) -> bool:
    """A word is present when a form of it is ("adults" ~ "adult", "renal" ~ "renally")."""
    stem = _stem(word)
    for h in have:
        other = _stem(h)
        if other == stem or h.startswith(stem) or (len(other) >= 5 and stem.startswith(other)):
            return True
    return False


def missing_entities(sentence: str, evidence: str) -> list[str]:
    have = set(_words(evidence))
    return [w for w in clinical_entities(sentence) if not _present(w, have)]


# The attribute a question asks for, most specific first, with the signals that show a
# unit speaks to it: words in its text or section path, and SPL LOINC section codes.
@dataclass(frozen=True)
class Attribute:
    name: str
    asks: re.Pattern[str]
    signals: re.Pattern[str]
    codes: frozenset[str] = frozenset()


_NUMBER = r"\d"
ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("boxed_warning", re.compile(r"boxed warning|black[- ]box"),
              re.compile(r"boxed warning|\bwarning: "), frozenset({"34066-1"})),
    Attribute("contraindication", re.compile(r"contraindicat"),
              re.compile(r"contraindicat|should not be used|do not use"),
              frozenset({"34070-3"})),
    Attribute("quantity_limit", re.compile(r"quantity limit|\bql\b|how many (tablets|units|"
                                           r"doses|fills)|per (month|day|days)"),
              re.compile(r"quantity|\bql\b|limit|" + _NUMBER)),
    # A dose answer states an amount: the word "dosage" or the dosing section alone is
    # not enough ("adjust the dosage after 2 to 4 weeks" answers no dose question).
    Attribute("dose", re.compile(r"\bdos(e|es|age|ing)\b|how much|maximum daily"),
              re.compile(r"\d\s*(mg|mcg|µg|g|units?|ml|mg/kg|tablets?|capsules?)\b")),
    Attribute("formulary_status", re.compile(r"preferred|formulary|\btier\b|\bpdl\b|"
                                             r"on the .{0,40}list|status"),
              re.compile(r"preferred|\btier\b|formulary|covered|\bpa\b|prior auth")),
    Attribute("coverage_criterion", re.compile(r"\bcover(s|ed|age)?\b|criteria|medically "
                                               r"necessary|eligib|prior auth|reimburs"),
              re.compile(r"cover|criteri|necessary|eligib|indicat|require|must|"
                         r"authoriz|condition")),
    Attribute("threshold", re.compile(r"threshold|cut-?off|\btarget\b|\bgoal\b|\blevel\b|"
                                      r"at what|above|below|at least"),
              re.compile(_NUMBER)),
    Attribute("recommendation", re.compile(r"recommend|should|guideline|advis|suggest"),
              re.compile(r"recommend|should|suggest|advis|strength|grade|evidence|"
                         r"consider|offer|indicated")),
)

# Capitalised names in a question (a plan, a payer, a guideline's body): "Vandelay Bronze",
# "Medicaid". Words that open a sentence, and question words, are not names.
_NAME = re.compile(r"\b[A-Z][a-z]{3,}\b")
_NOT_NAMES = frozenset(
    """what which when where does should could would will have with from that this there
    their patient patients please list many much each every other about after before into
    over under between january february march april june july august september october
    november december monday tuesday wednesday thursday friday saturday sunday""".split()
)


def named_terms(question: str, drugs: list[DrugMention]) -> list[str]:
    names: dict[str, None] = {}
    for m in _NAME.finditer(question):
        before = question[: m.start()].rstrip()
        word = m.group().lower()
        if not before or before[-1] in ".?!:" or word in _NOT_NAMES:
            continue
        if any(word in d.synonyms for d in drugs):
            continue
        names.setdefault(m.group(), None)
    return list(names)


_PATIENT = re.compile(r"\b(my|this|the) patient'?s?\b|\b(his|her|their) (current |"
                      r"home )?(medication|medicine|drug|statin|prescription)")
_PAYERS = ("ohio", "medicaid", "medicare", "qhp")


@dataclass
class QuestionFocus:
    drugs: list[DrugMention] = field(default_factory=list)
    classes: list[DrugMention] = field(default_factory=list)
    patient_drugs: list[DrugMention] = field(default_factory=list)
    payers: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    attribute: Attribute | None = None

    @property
    def empty(self) -> bool:
        """Nothing to test evidence against: any text would pass."""
        return not (self.drugs or self.classes or self.patient_drugs or self.payers
                    or self.conditions or self.names or self.attribute)

    def describe(self) -> str:
        parts = [d.name for d in self.drugs + self.classes + self.patient_drugs]
        parts += self.payers + self.conditions + self.names
        if self.attribute:
            parts.append(self.attribute.name.replace("_", " "))
        return ", ".join(parts)


def _classes(question: str, found: list[DrugMention]) -> list[DrugMention]:
    """The classes a question names: the dictionary's, and those of the class table
    (which also knows their members); a dictionary class the table does not know is
    dropped when the table names the class ("GLP-1 receptor agonists" is one class, not
    the dictionary's "Glucagon-Like Peptide-1 Receptor" plus the table's)."""
    table = classes_in(question)
    known = [d for d in found if _known_classes(d)]
    covered = {c.key for d in known for c in _known_classes(d)}
    kept = known + ([] if table else [d for d in found if not _known_classes(d)])
    kept += [DrugMention(name=c.key, synonyms=frozenset({c.key}), is_class=True)
             for c in table if c.key not in covered]
    return kept


def question_focus(question: str, patient: PatientContext | None = None) -> QuestionFocus:
    mentions = find_drug_mentions(question)
    text = normalise(question)
    focus = QuestionFocus(
        drugs=[d for d in mentions if not d.is_class],
        classes=_classes(question, [d for d in mentions if d.is_class]),
        payers=[p for p in _PAYERS if re.search(rf"\b{p}\b", text)],
        conditions=[w for w in clinical_entities(question) if is_condition(w)],
        attribute=next((a for a in ATTRIBUTES if a.asks.search(text)), None),
        # With a patient's record, a capitalised name in the question may be theirs: it
        # names no document, so it is not held against the evidence (nor repeated).
        names=[] if patient is not None else named_terms(question, mentions),
    )
    if patient is not None and _PATIENT.search(text):
        found = find_drug_mentions(" ; ".join(patient.medications), fuzzy=True)
        focus.patient_drugs = [d for d in found if not d.is_class]
    return focus


@dataclass(frozen=True)
class Evidence:
    """What a set of cited units says, and where it sits."""

    text: str  # the units' readings
    context: str  # titles, section paths and payers of their passages
    codes: frozenset[str] = frozenset()  # SPL section codes of their passages
    surroundings: str = ""  # the whole cited passages (a condition may be named there)


def _class_named(drug_class: DrugMention, text: str) -> bool:
    """A class is named by its own name or synonyms, by a member ("Farxiga" for the
    SGLT2 inhibitors, through its generic's naming stem), or inside a member's name that
    carries it ("statin" in "simvastatin"), or by the main words of its name
    ("Lipotropic Agents" by "Lipotropics")."""
    if mentioned_in(drug_class, text):
        return True
    known = _known_classes(drug_class)
    if known and (any(c.names.search(text) for c in known)
                  or any(c.has_member(g) for c in known for g in drug_names(text))):
        return True
    lowered = normalise(text)
    stems = {_stem(s) for s in drug_class.synonyms if len(s) >= 5 and " " not in s}
    if any(stem in lowered for stem in stems if len(stem) >= 5):
        return True
    words = [w for w in _words(drug_class.name) if len(w) > 4 and w not in ("agents", "agent")]
    have = set(_words(text))
    return any(_present(w, have) for w in words)


def _known_classes(drug_class: DrugMention) -> list[DrugClass]:
    """The classes of retrieval/drug_classes.py this dictionary class is."""
    return classes_in(" ; ".join([drug_class.name, *sorted(drug_class.synonyms)]))


def addresses(focus: QuestionFocus, evidence: Evidence) -> list[str]:
    """Why the evidence does not address the question (empty: it does)."""
    where = evidence.text + " \n " + evidence.context
    problems = [f"the cited evidence does not name {d.name}" for d in focus.drugs
                if not mentioned_in(d, where)]
    patient_named = any(mentioned_in(d, where) for d in focus.patient_drugs)
    for c in focus.classes:
        if not (patient_named or _class_named(c, where)):
            problems.append(f"the cited evidence is not about {c.name}")
    if focus.patient_drugs and not any(mentioned_in(d, where) for d in focus.patient_drugs):
        names = ", ".join(d.name for d in focus.patient_drugs)
        problems.append(f"the cited evidence does not name the patient's medication ({names})")
    lowered = normalise(where)
    problems += [f"the cited evidence is not from {p.title()}" for p in focus.payers
                 if p not in lowered]
    whole = normalise(where + " " + evidence.surroundings)
    problems += [f"the cited evidence does not mention {n}" for n in focus.names
                 if n.lower() not in whole]
    around = set(_words(where + " " + evidence.surroundings))
    problems += [f"the cited evidence does not mention {w}" for w in focus.conditions
                 if not _present(w, around)]
    a = focus.attribute
    if a is not None and not (evidence.codes & a.codes) and not a.signals.search(lowered):
        problems.append(f"the cited evidence does not state a {a.name.replace('_', ' ')}")
    return problems
