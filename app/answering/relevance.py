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
from functools import lru_cache

from rapidfuzz import fuzz, process

from app.answering.ages import asked_age, outside_ages
from app.answering.models import PatientContext
from app.answering.text import STOPWORDS, normalise
from app.answering.vocabulary import is_ordinary_word
from retrieval.drug_classes import CLASSES, DrugClass, classes_in
from retrieval.drugs import (
    DrugMention,
    drug_names,
    find_drug_mentions,
    is_known_drug_word,
    mentioned_in,
)
from retrieval.expansion import ABBREVIATIONS
from retrieval.intent import BOXED_WARNING, CONTRAINDICATIONS, asks_guideline_or_payer

_WORD = re.compile(r"[a-z][a-z\-]+")

POPULATIONS = frozenset(
    """adult adults pediatric paediatric child children adolescent adolescents infant infants
    neonate neonates newborn newborns elderly geriatric pregnant pregnancy lactating
    breastfeeding renal hepatic dialysis""".split()
)
# A population the question names must be the evidence's: a dose for children is not
# answered by the adults' dose, nor a breastfeeding question by the pregnancy sentence.
# Each: its name, how a question names it, the words that show evidence is about it.
# "Adult" is not one: labels state the adult dose without the word. Renal and hepatic
# are populations only as impairment ("liver enzymes" names no population).
@dataclass(frozen=True)
class Population:
    name: str
    asked: re.Pattern[str]
    words: frozenset[str]

    def named_in(self, text: str) -> bool:
        """Whether `text` is about this population: one of its words, or a way a
        question names it ("trying to conceive")."""
        lowered = normalise(text)
        return bool(self.words & set(_WORD.findall(lowered))) or \
            self.asked.search(lowered) is not None


def _population(name: str, asked: str, words: str) -> Population:
    return Population(name, re.compile(asked), frozenset(words.split()))


_IMPAIRED = r"\s+(?:impairment|insufficiency|failure|diseases?|dysfunction|conditions?|problems?)"
POPULATION_GROUPS: tuple[Population, ...] = (
    _population("pregnant", r"\bpregnan(?:t|cy|cies)\b|\bconceiv|\bconception\b|"
                            r"\bchildbearing\b",
                "pregnant pregnancy pregnancies gestation gestational prenatal antenatal "
                "obstetric"),
    _population("breastfeeding",
                r"\bbreast-?fe(?:eding|ed|d)\b|\blactat(?:ing|ion)\b|\bnursing mothers?\b",
                "lactating lactation breastfeeding breast-feeding breastfeed breastfed "
                "breast-feed nursing milk"),
    _population("pediatric",
                # "Child-Pugh class B" grades a liver, not a patient's age.
                r"\b(?:pa?ediatric|child(?![-\s]?pugh)|children|adolescents?|infants?|"
                r"neonates?|newborns?|"
                r"kids?|toddlers?|teen(?:ager)?s?)\b|\b(?:[1-9]|1[0-7])[- ](?:years?|months?|"
                r"weeks?)[- ]old\b",
                "pediatric paediatric child children adolescent adolescents infant infants "
                "neonate neonates newborn newborns juvenile"),
    _population("elderly", r"\b(?:elderly|geriatric)\b", "elderly geriatric older"),
    _population("renal", rf"\b(?:renal|kidney){_IMPAIRED}", "renal kidney kidneys"),
    _population("hepatic", rf"\b(?:hepatic|liver){_IMPAIRED}", "hepatic liver"),
    _population("dialysis", r"\b(?:ha?emo)?dialysis\b", "dialysis hemodialysis haemodialysis"),
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
    tuberculosis tb insomnia dementia anemia hypercholesterolemia""".split()
)
# Procedures are named the same way ("sleeve gastrectomy", "angioplasty", "colonoscopy"):
# a coverage answer about islet transplantation does not answer one about a gastrectomy.
_PROCEDURE_SUFFIX = re.compile(r"(?:ectomy|ectomies|ostomy|otomy|plasty|scopy|pexy|rrhaphy)$")
_PROCEDURE_WORDS = frozenset(
    """transplant transplantation transplants bypass implant implants implantation stent
    stents stenting""".split())
# Words the suffixes catch that name no condition.
_NOT_CONDITIONS = frozenset(
    {"diagnosis", "diagnoses", "prognosis", "prognoses", "stroma", "aroma", "hypnosis"}
)


# Heads that name no condition or procedure on their own ("lipid disorder", "heart
# failure", "cochlear implant" are checked by their other words, or by the question's own
# words when it names nothing else); a question's focus does not require them.
_GENERIC_CONDITIONS = frozenset({"disease", "syndrome", "disorder", "infection", "failure",
                                 "cancer", "implant", "implants", "implantation", "stent",
                                 "stents", "stenting", "transplant", "transplantation",
                                 "transplants", "bypass"})


def _words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def is_condition(word: str) -> bool:
    """A condition or a procedure: either is what a question or a claim is about."""
    return word not in _NOT_CONDITIONS and (
        word in _CONDITION_WORDS or word in _PROCEDURE_WORDS
        or (len(word) > 5 and bool(_CONDITION_SUFFIX.search(word)
                                   or _PROCEDURE_SUFFIX.search(word)))
    )


def clinical_entities(text: str) -> list[str]:
    """Conditions, populations and routes a text names, in order, once each."""
    seen: dict[str, None] = {}
    for w in _words(text):
        if w in POPULATIONS or w in ROUTES or is_condition(w):
            seen.setdefault(w, None)
    return list(seen)


def _stem(word: str) -> str:
    if word.endswith("ies") and len(word) >= 7:  # "colonoscopies" ~ "colonoscopy"
        return word[:-3] + "y"
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
    return [w for w in clinical_entities(sentence) if not _present(w, have)] + [
        a for a in acronyms(sentence) if not _spelled_out(a, evidence, have)]


# "CPAP", "AHI", "OSA", "TB": an acronym names the device, test or condition a claim is
# about (seen partially verified: "CPAP is covered when used to aid the diagnosis of OSA",
# the cited sentence being about Type I polysomnography). Two to six capitals, digits
# allowed after the first two, five at most ("HbA1c" is not one; "LDL" of "LDL-C" is).
_ACRONYM = re.compile(r"(?<![\w-])[A-Z]{2}[A-Z0-9]{0,3}(?![\w])")
# Units, flags and numerals that are not names.
_NOT_ACRONYMS = frozenset("""MG ML MCG IU BID TID QID QD PRN PO IV IM SC SQ II III IV VI
    VII VIII IX XI XII PA QL ST OTC ER XR XL SR IR DR CR LA ODT USP NF US USA FDA CDC
    CMS NCD NDC HCPCS CPT ICD DOD VA AND OR NOT""".split())


def acronyms(text: str) -> list[str]:
    """The acronyms of a text, less units, flags and drug names ("ASA"; a brand in
    capitals is a drug, which the drug check holds against the evidence)."""
    return list(dict.fromkeys(a for a in _ACRONYM.findall(text)
                              if a not in _NOT_ACRONYMS and not _names_a_drug(a)))


@lru_cache(maxsize=4096)
def _names_a_drug(word: str) -> bool:
    # Cached: missing_entities runs for every citation check, and for every shown unit
    # when a sentence is recited to another.
    return bool(find_drug_mentions(word))


def _spelled_out(acronym: str, evidence: str, have: set[str]) -> bool:
    """The acronym is in the evidence, or what it stands for is: a known expansion, or
    consecutive words whose initials spell it ("continuous positive airway pressure")."""
    lower = acronym.lower()
    said = normalise(evidence)
    if lower in have or re.search(rf"(?<![a-z0-9]){re.escape(lower)}(?![a-z0-9])", said):
        return True  # "PDE5" is not one of the words _words() reads
    if any(x in said for x in ABBREVIATIONS.get(lower, ())):
        return True
    words = re.findall(r"[a-z]+", evidence.lower())
    n = len(lower)
    return any("".join(w[0] for w in words[i:i + n]) == lower
               for i in range(len(words) - n + 1))


# The attribute a question asks for, most specific first, with the signals that show a
# unit speaks to it: words in its text or section path, and SPL LOINC section codes.
@dataclass(frozen=True)
class Attribute:
    name: str
    asks: re.Pattern[str]
    signals: re.Pattern[str]
    codes: frozenset[str] = frozenset()
    # Asked, it must be met itself: another attribute of the same question met does not
    # stand in for it.
    strict: bool = False
    # Words that mean the question asks something else ("release date of the ... criteria
    # for ...": a date, not the criteria).
    unless: re.Pattern[str] | None = None
    # Document types whose units never state it, whatever their words.
    not_from: frozenset[str] = frozenset()


_NUMBER = r"\d"
ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("boxed_warning", re.compile(r"boxed warning|black[- ]box"),
              re.compile(r"boxed warning|\bwarning: "), frozenset({BOXED_WARNING})),
    Attribute("contraindication", re.compile(r"contraindicat|\brules? out\b|\bruled out\b"),
              re.compile(r"contraindicat|should not be used|do not use"),
              frozenset({CONTRAINDICATIONS})),
    # "Ohio Medicaid limit on hydrocodone/acetaminophen 10-325 tablets?": a formulary's
    # limit on a drug is its quantity limit (an age or time limit is not).
    # "How much Lantus can be dispensed per 102 days?" asks the same.
    Attribute("quantity_limit", re.compile(r"quantity limit|\bql\b|how many (tablets|units|"
                                           r"doses|fills)|per (?:\d+ )?(month|months|day|days)\b|"
                                           r"\bdispens|"
                                           r"(?<!age )(?<!time )\blimits? (?:on|for)\b"),
              re.compile(r"quantity|\bql\b|limit|" + _NUMBER)),
    # A dose answer states an amount: the word "dosage" or the dosing section alone is
    # not enough ("adjust the dosage after 2 to 4 weeks" answers no dose question).
    # "single-dose vial" asks for no dose, "how much higher" for no amount.
    # "How should haloperidol be started and titrated in a 7-year-old?" asks a dose too
    # (seen verified: the label's indications for Tourette's, which state none); "when
    # should statins be started" does not.
    # A formulary states a product's strengths ("Allopurinol 100, 300 MG: Preferred"),
    # never its dose (seen partially verified: "the dose of unobtainium for gout?").
    # "Does atorvastatin need a dose reduction in CKD?" is answered by "dose adjustment …
    # is not necessary", which states no amount (seen evidence_only: the dose attribute
    # wanted one).
    Attribute("dose_adjustment",
              re.compile(r"\b(?:dos(?:e|age|ing)|dose) (?:adjust\w*|reduc\w*|chang\w*|"
                         r"modif\w*|decrease\w*)|\b(?:adjust|reduce|lower|decrease|change) "
                         r"(?:the |his |her |their )?(?:dose|dosage|dosing)\b"),
              re.compile(r"adjust|reduc|decreas|\blower|\bnot (?:necessary|needed|required)|"
                         r"\d\s*(?:mg|mcg|units?)\b")),
    # A "Medrol dose pack" is a product, not a dose asked for.
    Attribute("dose", re.compile(r"(?<![-\w])dos(e|es|age|ing)\b(?![- ]?pack)|"
                                 # "How much weight should he lose?" asks no dose.
                                 r"how much (?!higher|lower|more|less|longer|greater|"
                                 r"weight|time|exercise|activity|physical|alcohol|salt|"
                                 r"sodium|fluid|water|sleep|caffeine|protein|fiber)|"
                                 r"maximum daily|titrat"),
              re.compile(r"\d\s*(mg|mcg|µg|g|units?|ml|mg/kg|tablets?|capsules?|mme|"
                         r"micrograms?|milligrams?|grams?|meq|mmol|iu)\b"),
              not_from=frozenset({"formulary"})),
    # "Which … does Ohio Medicaid prefer", "with what restriction?" (its PA, ST, QL flags);
    # a status "on" a list, not "her glucose status".
    Attribute("formulary_status", re.compile(r"prefer(?:red|s)?\b|formulary|\btier\b|\bpdl\b|"
                                             r"on the .{0,40}list|formulary status|"
                                             r"\bstatus (?=on|of|in|under|for)|"
                                             r"restrict(?:ed|ions?)\b"),
              re.compile(r"preferred|\btier\b|formulary|covered|\bpa\b|prior auth")),
    Attribute("coverage_criterion", re.compile(r"\bcover(s|ed|age)?\b|criteria|medically "
                                               r"necessary|eligib|prior auth|\bpa\b|reimburs"),
              re.compile(r"cover|criteri|necessary|eligib|indicat|require|must|"
                         r"authoriz|condition")),
    # "What must be tried before...", "PA requirements for X": what an approval takes.
    # "Is there step therapy?" asks whether a rule applies, which a plan's line states.
    # A record's "PA" flag or "requires prior authorization" says there is a criterion,
    # not what it is (seen verified: "Vascepa is non-preferred and requires prior
    # authorization (PA)" for "PA requirements for Vascepa?").
    Attribute("approval_requirements",
              re.compile(r"\brequirements?\b|\bcriteria (?:for|to|of|are)\b|"
                         r"(?:what|which|list) .{0,40}criteria\b|what (?:must|is needed|are needed|"
                         r"is required|do(?:es)? .{0,40}need)|must .{0,40}(?:tried|try|have)\b|"
                         r"(?:what|which)\s+(?:\w+\s+){0,3}step therapy|"
                         r"step therapy[^?]{0,30}(?:before|required|needed|for)|"
                         r"before .{0,60}approv"),
              re.compile(r"\bmust\b|criteri|inadequate|documentation|\btrials?\b|\btried\b|"
                         r"failure|diagnos|prescribed by|consultation|younger|older|"
                         r"years of age|at least|exempt|contraindicat|intoleran|"
                         r"\bonly (?:when|if|for)\b|\bif\b.{0,80}\bcovered\b|covered (?:when|if|"
                         r"for|only)"),
              strict=True,
              unless=re.compile(r"\b(?:released?|publish\w*|revis\w*|updated|date|"
                                r"when was|what year)\b")),
    # "If she isn't in remission, how long do I keep going before stopping?": when to
    # stop is the answer (seen verified: the induction dose regimen, which never says).
    Attribute("discontinuation",
              re.compile(r"\bbefore stopping\b|\bwhen (?:to|should|do|can|must) (?:\w+ )?"
                         r"(?:stop|discontinue|quit)\b|\bkeep (?:going|it up)\b|"
                         r"\bhow long (?:do|should|can|must) (?:i|we|you|she|he|they) "
                         r"(?:keep|continue)\b|"
                         r"\bstop(?:ping)? (?:it|treatment|therapy|the drug)\b"),
              # "Can she keep taking atorvastatin?" is answered by "contraindicated".
              re.compile(r"discontinu|\bcontinu|\bstop|\bwithdraw|\bcease|\binterrupt|"
                         r"contraindicat|should not (?:be )?(?:used|taken|use|take)|"
                         r"do not (?:use|take)"),
              strict=True),
    # "Trintellix paid for the last three months. Does a PA need to be submitted to keep
    # it going?": continuing is the answer (seen verified: the status's PA criteria).
    Attribute("continuation",
              re.compile(r"\bkeep (?:it |him |her |them )?going\b|\bcontinu(?:e|ing|ation) "
                         r"(?:it|therapy|coverage|the drug|treatment|on|of therapy)\b"),
              re.compile(r"continu|previous \d+ days|claims? history|automatically approved|"
                         r"established on|grandfather"),
              strict=True),
    # "Who has to prescribe or be consulted?", "who has to read it?": a person or role
    # is the answer (seen verified: the payer's OARRS-report rule for "… past 80 MED a
    # day. Who has to prescribe or be consulted?").
    Attribute("prescriber",
              re.compile(r"\bwho (?:(?:has|have|needs?|must|should|can|may) (?:to )?)?(?:be )?"
                         r"(?:prescrib|consult|read|interpret|perform|order|supervis|"
                         r"administer|see|approve|sign)\w*"),
              re.compile(r"\b\w+(?:ologists?|iatrists?|icians?|surgeons?|ographers?)\b|"
                         r"\bspecialists?\b|\bconsult\w*|\bboard[- ]certified\b|"
                         r"\bpractitioners?\b|\bpharmacists?\b|\bnurses?\b|\bprescribed by\b"),
              strict=True),
    Attribute("threshold", re.compile(r"threshold|cut-?off|\btarget\b|\bgoal\b|\blevel\b|"
                                      r"at what|above|below|at least|minimum|maximum"),
              re.compile(_NUMBER)),
)
# No "recommendation" attribute: "should", "guideline" and "recommend" are in half the
# questions, and guidelines state recommendations as imperatives ("Dispose of used
# sharps in a puncture-resistant container") that no signal word catches: it rejected
# the right evidence of 5 of 207 questions (the drugs, conditions and names the question
# gives still have to be there).

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


# The question is about the patient's medication (not "this patient's blood pressure"):
# all of it is then the focus; a class the question names picks its members out of it.
_PATIENT = re.compile(r"\b(?:my|this|the|his|her|their)\s+(?:patient'?s?\s+)?(?:current\s+|"
                      r"home\s+|previous\s+)?(?:[a-z]+\s+)?(?:medications?|medicines?|drugs?|"
                      r"prescriptions?)\b")
_PAYERS = ("ohio", "medicaid", "medicare", "qhp")
# A payer's words, which name no document or subject of their own.
PAYER_NAMES = frozenset({"ohio", "medicaid", "medicare", "part", "cms", "qhp"})


# A word no English word list or drug dictionary knows, in a question that names no drug
# the dictionary knows, is most likely what it is about: a substance newer than the
# dictionary ("danuglipron", "solbinsiran"), a brand it lacks, a misspelling, a made-up
# word. The evidence must name it (spelled alike): "What is the dose of unobtainium for
# gout?" was answered partially verified from the gout page's allopurinol row. Shorter
# words are abbreviations, which the topic test reads with their expansions.
_MIN_SUBJECT = 5


def _subjects(text: str, names: list[str]) -> list[str]:
    named = {n.lower() for n in names}
    words = [part for w in _WORD.findall(text) for part in w.split("-")]
    return list(dict.fromkeys(
        w for w in words
        if len(w) >= _MIN_SUBJECT and w not in named and not is_ordinary_word(w)
        and w not in POPULATIONS and w not in ROUTES and w not in PAYER_NAMES
        and not is_known_drug_word(w)))


@dataclass
class QuestionFocus:
    drugs: list[DrugMention] = field(default_factory=list)
    classes: list[DrugMention] = field(default_factory=list)
    patient_drugs: list[DrugMention] = field(default_factory=list)
    payers: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    populations: list[Population] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    # The words naming a plan ("the Vandelay Gold plan"): with the payers, whose list a
    # drug's status is on.
    plans: list[str] = field(default_factory=list)
    # A payer, plan, list or what a payer decides is asked about: else a payer's list
    # answers nothing (seen verified: "Lopinavir/Ritonavir is preferred for HIV patients"
    # for "… Kaletra … Any restriction on atorvastatin?").
    asks_payer: bool = True
    # What the question asks for; a question may ask two things ("the minimum ejection
    # fraction for coverage"): evidence stating any of them addresses it.
    attributes: list[Attribute] = field(default_factory=list)
    # A question that names no drug, class, condition or document ("Target INR for a
    # patient with a mechanical mitral valve?"): its own words are all there is to test
    # the evidence against, else any number meets "target" (seen verified: a Medicare
    # home-INR coverage criterion).
    topic: list[str] = field(default_factory=list)
    # Conditions the question asks to screen, test or monitor for ("screen for TB before
    # starting Humira?"): what it is about, even beside a drug the evidence names.
    sought: list[str] = field(default_factory=list)
    # Words of a question naming no known drug that no word list knows (`_subjects`).
    subjects: list[str] = field(default_factory=list)
    # A long-acting product the question names ("haloperidol decanoate", "depot"): its
    # own product, not the drug's tablets (seen verified: the tablets' injectable-to-oral
    # switchover for "convert oral haloperidol to monthly decanoate injections").
    forms: list[str] = field(default_factory=list)
    # The patient's age the question gives ("a 14-year-old"): evidence stating age
    # ranges must hold it (app/answering/ages.py).
    age: int | None = None
    # A question put to a guideline or payer about a drug ("asks for alprazolam - what
    # does the CDC guideline say?"), not its dose: a statement about the drug's class
    # ("avoid prescribing opioid pain medication and benzodiazepines concurrently")
    # is about the drug.
    class_stands_for_drug: bool = False
    # "Which meds does VA/DoD recommend …?": the answer names drugs (seen verified: the
    # guideline's psychotherapies for "which meds … as monotherapy").
    asks_drugs: bool = False
    # Drugs named as what the patient already takes, beside the drug asked about
    # (`_subject_drugs`): the evidence names them, their class, or the concomitant use.
    context_drugs: list[DrugMention] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing to test evidence against: any text would pass."""
        return not (self.drugs or self.classes or self.patient_drugs or self.payers
                    or self.conditions or self.populations or self.names or self.attributes
                    or self.subjects)

    def describe(self) -> str:
        parts = [d.name for d in self.drugs + self.classes + self.patient_drugs]
        parts += self.payers + self.conditions + [p.name for p in self.populations]
        parts += self.names + self.subjects
        parts += [a.name.replace("_", " ") for a in self.attributes]
        return ", ".join(parts)


# Words of a question that say what kind of answer it wants, or nothing: not its topic.
_NOT_TOPIC = STOPWORDS | frozenset("""
    whom does did would will have has had all every his her him she not than then less least
    much many often long
    first best usual usually typical typically recommends recommendation recommendations
    guideline guidelines target goal level levels threshold cutoff dose doses dosing dosage
    daily day days week weeks month months year years old adult adults person people
    someone someone's need needed needs require required requirement requirements use used
    using take taking start starting maximum minimum safe okay get given give still
    currently current new next quickly soon early later besides instead around time times
    prescribed prescribe started begin stop stopped continue qualify qualifies eligible
    beneficiary beneficiaries ncd lcd medicare medicaid covered coverage cover billed bill
    pay pays paid help helps work up part
    """.split())


def populations_in(question: str) -> list[Population]:
    text = normalise(question)
    return [p for p in POPULATION_GROUPS if p.asked.search(text)]


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


# Esters and depots that make a drug a different, long-acting product.
_LONG_ACTING = re.compile(r"\b(?:decanoate|enanthate|palmitate|pamoate|lauroxil|cypionate|"
                          r"undecanoate|depot)\b")
# "screen for TB", "test patients for latent TB", "TB monitoring", "HIV testing".
_SOUGHT = re.compile(r"\b(?:screen|test|check|monitor|evaluat|assess)\w*\s+(?:\w+\s+)?for\s+"
                     r"(?:latent\s+|active\s+)?([a-z][a-z\-]+)|"
                     r"\b([a-z][a-z\-]+)\s+(?:screening|testing|monitoring)\b")


_PAYER_ATTRIBUTES = frozenset({"quantity_limit", "coverage_criterion",
                               "approval_requirements"})
# What a status is on: a payer's list, however the question names it.
_LIST_WORDS = re.compile(r"prefer|formulary|\btier\b|\bpdl\b|\blist\b|\bstatus\b|covered|"
                         r"\bcoverage\b|insur|\bpayer|\bplans?\b")
# "the Vandelay Gold plan", "Vandelay plans", "an Aetna Silver Health Plan".
# "Bronze-plan member": a plan named with a hyphen.
_PLAN = re.compile(r"\b((?:[A-Z][\w&]*(?:-(?!(?i:plans?)\b)[\w&]+)*(?:\s+|-)){1,3})"
                   r"(?i:health\s+)?(?i:plans?)\b")


# A drug the question names only as what the patient is already on, or what the product
# is without: "Epileptic on levetiracetam … any seizure concern with haloperidol?",
# "generic Subutex (buprenorphine SL tabs without naloxone)". Beside another drug, it is
# context, not what the answer must be about.
_CONTEXT_BEFORE = re.compile(r"\b(?:on|taking|takes|receiving|using|uses|instead of)\s+"
                             r"(?:[\w/-]+,?\s+(?:and\s+|or\s+)?){0,2}$")
_WITHOUT_BEFORE = re.compile(r"\b(?:without|excluding|except|minus|other than|no|not)\s+"
                             r"(?:[\w/-]+\s+)?$")


def _only_after(drug: DrugMention, text: str, before: re.Pattern[str]) -> bool:
    places = [m.start() for s in drug.synonyms
              for m in re.finditer(rf"(?<![a-z0-9]){re.escape(s)}(?![a-z0-9])", text)]
    return bool(places) and all(before.search(text[:at]) for at in places)


def _subject_drugs(drugs: list[DrugMention], text: str
                   ) -> tuple[list[DrugMention], list[DrugMention]]:
    """(the drugs a question is about, the drugs it names as the patient's context)."""
    kept = [d for d in drugs if not _only_after(d, text, _WITHOUT_BEFORE)] or drugs
    context = [d for d in kept if _only_after(d, text, _CONTEXT_BEFORE)]
    if len(context) == len(kept):
        return kept, []
    return [d for d in kept if d not in context], context


_BRACKETED = re.compile(r"\([^()]*\)")
_ASKS_DRUGS = re.compile(r"\b(?:which|what)\s+(?:\w+\s+)?(?:meds|medications?|medicines?|"
                         r"drugs?|pharmacotherap\w*)\b")


def question_focus(question: str, patient: PatientContext | None = None) -> QuestionFocus:
    mentions = find_drug_mentions(question)
    text = normalise(question)
    drugs, context = _subject_drugs([d for d in mentions if not d.is_class], text)
    asks_drugs = _ASKS_DRUGS.search(text) is not None
    focus = QuestionFocus(
        drugs=drugs,
        context_drugs=context,
        asks_drugs=asks_drugs,
        classes=_classes(question, [d for d in mentions if d.is_class]),
        payers=[p for p in _PAYERS if re.search(rf"\b{p}\b", text)],
        conditions=[w for w in clinical_entities(question)
                    if is_condition(w) and w not in _GENERIC_CONDITIONS],
        populations=populations_in(question),
        attributes=[a for a in ATTRIBUTES
                    if a.asks.search(text) and not (a.unless and a.unless.search(text))],
        # With a patient's record, a capitalised name in the question may be theirs: it
        # names no document, so it is not held against the evidence (nor repeated).
        names=[] if patient is not None else named_terms(question, mentions),
        plans=[w.lower().strip("-") for m in _PLAN.finditer(question)
               for w in m.group(1).split() if w.lower().strip("-") not in _NOT_NAMES],
    )
    asked = {a.name for a in focus.attributes}
    if "dose" in asked and "threshold" in asked:
        # "The maximum daily dose of febuxostat": the most of a dose is a dose, not a
        # threshold any number meets (seen: a formulary's "at least 30 days" criteria
        # returned as the evidence for it).
        focus.attributes = [a for a in focus.attributes if a.name != "threshold"]
    focus.asks_payer = bool(focus.payers or focus.plans or focus.names
                            or _LIST_WORDS.search(text) or asked & _PAYER_ATTRIBUTES)
    if "dose_adjustment" in asked and "dose" in asked:
        # An adjustment asked is not an amount asked.
        focus.attributes = [a for a in focus.attributes if a.name != "dose"]
        asked.discard("dose")
    if "formulary_status" in asked and not (focus.payers or focus.plans or focus.names
                                            or _LIST_WORDS.search(text)):
        # "HIV patient on lopinavir/ritonavir (Kaletra) needs a statin. Any restriction
        # on atorvastatin?": no payer, no list; a label's restriction, not a status (seen
        # verified: "Lopinavir/Ritonavir is preferred for HIV patients …").
        focus.attributes = [a for a in focus.attributes if a.name != "formulary_status"]
        asked.discard("formulary_status")
    if focus.payers and "dose" in asked and "quantity_limit" not in asked:
        # A payer sets no dose: what it allows of one is its quantity limit ("Can an
        # Ohio Medicaid patient get the Emgality loading dose?").
        focus.attributes.append(next(a for a in ATTRIBUTES if a.name == "quantity_limit"))
    focus.sought = [w for m in _SOUGHT.finditer(text) for w in m.groups()
                    if w and w in focus.conditions]
    focus.forms = list(dict.fromkeys(m.group().lower() for m in _LONG_ACTING.finditer(text)))
    focus.age = asked_age(question)
    # Nor when its status on a list is asked: a list names each drug it holds (seen
    # evidence_only: the PCSK9 inhibitors' PA criteria for "Is Leqvio (inclisiran)
    # preferred on Ohio Medicaid's lipotropics list …?", which no list names).
    focus.class_stands_for_drug = asks_guideline_or_payer(question) and not any(
        a.name in ("dose", "formulary_status") for a in focus.attributes)
    if patient is not None:
        # One record at a time: the fuzzy match ("Simvistatin") is over a whole record.
        found = list({d.name: d for m in patient.medications
                      for d in find_drug_mentions(m, fuzzy=True) if not d.is_class}.values())
        named = classes_in(question)
        members = [d for d in found if any(c.has_member(d.name) for c in named)]
        focus.patient_drugs = members or (found if _PATIENT.search(text) else [])
    if not (focus.drugs or focus.classes or focus.patient_drugs):
        # A name in brackets restates what precedes it ("sacral nerve stimulation
        # (InterStim)"): the words before it are the subject, whatever the sources call
        # the product.
        unbracketed = _BRACKETED.sub(" ", text)
        focus.subjects = _subjects(unbracketed if unbracketed.strip() else text, focus.names)
    # A payer's name is not what a coverage question is about: "Does Medicare cover
    # cochlear implants …?" was answered (partially verified) from the NCD for
    # endothelial cell photography; its own words are the topic.
    own_names = [n for n in focus.names if n.lower() not in PAYER_NAMES]
    if not (focus.drugs or focus.classes or focus.patient_drugs or focus.conditions
            or own_names) and patient is None:
        focus.topic = [w for w in dict.fromkeys(x.strip("-") for x in
                                                _TOPIC_WORD.findall(normalise(question)))
                       if len(w) > 2 and w not in _NOT_TOPIC]
    return focus


@dataclass(frozen=True)
class Evidence:
    """What a set of cited units says, and where it sits."""

    text: str  # the units' readings
    context: str  # titles, section paths and payers of their passages
    codes: frozenset[str] = frozenset()  # SPL section codes of their passages
    surroundings: str = ""  # the whole cited passages (a condition may be named there)
    doc_types: frozenset[str] = frozenset()  # of the cited passages
    # Each cited passage's own words (text, title, section path, payer): what one
    # document says, as against what the citations say together.
    each: tuple[str, ...] = ()


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


def class_of_named(drug: DrugMention, text: str) -> bool:
    """The evidence names a class the drug belongs to ("a moderate-dose statin" for the
    patient's simvastatin)."""
    return any(c.has_member(drug.name) and c.names.search(text) for c in CLASSES)


def _known_classes(drug_class: DrugMention) -> list[DrugClass]:
    """The classes of retrieval/drug_classes.py this dictionary class is."""
    return classes_in(" ; ".join([drug_class.name, *sorted(drug_class.synonyms)]))


# How a passage's context names the drugs its criteria govern without naming them
# (citation_checks._context), bracketed so that it is never read as a heading.
APPLIES_TO = "Applies to: "
_GOVERNED = re.compile(r"\[" + re.escape(APPLIES_TO) + r"[^\]]*\]")


def _named_only_by_heading(focus: QuestionFocus, evidence: Evidence) -> list[str]:
    """A drug asked about that only the section heading names, while the cited units
    name other drugs the question does not: the units are about those (seen verified:
    "transplant patient on cyclosporine?" answered with the nelfinavir sentence of "2.6
    Dosage in Patients Taking Cyclosporine, Clarithromycin, … Protease Inhibitors")."""
    # Cheap test first: addresses() runs for every candidate evidence unit, and the
    # dictionary lookups below are only needed when a drug is named by the heading alone.
    # The drugs a payer's criteria govern by flag or status are not a heading: the
    # criteria hold for each of them alike.
    heading_text = _GOVERNED.sub(" ", evidence.context)
    by_heading = [d for d in focus.drugs
                  if mentioned_in(d, heading_text) and not mentioned_in(d, evidence.text)]
    if not by_heading:
        return []
    others = [d for d in find_drug_mentions(evidence.text) if not d.is_class
              and not any(mentioned_in(q, " ; ".join(sorted(d.synonyms)))
                          or mentioned_in(d, " ; ".join(sorted(q.synonyms)))
                          for q in focus.drugs + focus.patient_drugs)]
    if not others:
        return []
    heading = [h for h in find_drug_mentions(heading_text) if not h.is_class]
    out = []
    for d in by_heading:
        # Only a heading that lists several drugs ("… Taking Cyclosporine,
        # Clarithromycin, Itraconazole, …"): a unit under "HUMIRA: WARNING" that names
        # methotrexate is still about Humira.
        listed = [h for h in heading if h.name == d.name or not any(
            mentioned_in(q, " ; ".join(sorted(h.synonyms))) for q in focus.drugs)]
        if len(listed) >= 2:
            out.append(f"the cited evidence names {d.name} only in its heading; its units "
                       f"are about {', '.join(o.name for o in others[:3])}")
    return out


# A topic word keeps its digits: "HbA1c" is one word, not "hba".
_TOPIC_WORD = re.compile(r"[a-z][a-z0-9\-]*[a-z0-9]")


def _topic_present(word: str, words: set[str], text: str) -> bool:
    """A question's own word in the evidence: itself or a form of it, or an
    abbreviation's expansion ("HbA1c" is "glycated hemoglobin" in the NCD). A compound's
    parts do not count: "follow-up" by "follow" let a PET perfusion NCD answer a question
    about FDG PET (bench/relevance_check: off-gold accepted 72 -> 74)."""
    if _present(word, words):
        return True
    return any(re.search(rf"(?<![a-z]){re.escape(x)}(?![a-z])", text)
               for x in ABBREVIATIONS.get(word, ()))


def _findable(word: str, words: set[str]) -> bool:
    return _present(word, words) or any(word in w for w in words)


def _spelled_in(word: str, words: set[str]) -> bool:
    """`_findable`, or a long word spelled a letter apart: a word no dictionary knows may
    be spelled otherwise by the source (the NCD's own title is "Hisocompatibility
    Testing")."""
    if _findable(word, words):
        return True
    return len(word) >= 8 and process.extractOne(
        word, [w for w in words if abs(len(w) - len(word)) <= 2], scorer=fuzz.ratio,
        score_cutoff=90) is not None


def absent_subjects(focus: QuestionFocus, text: str) -> list[str]:
    """The question's subjects (`_subjects`) that `text` does not name."""
    if not focus.subjects:  # most questions: no need to read the text
        return []
    words = set(_words(text))
    return [w for w in focus.subjects if not _spelled_in(w, words)]


def _apart(focus: QuestionFocus, evidence: Evidence) -> list[str]:
    """A drug on a payer's list or plan is one document's statement: the drug and the
    payer or plan the question names must be named by one cited passage, not one by each
    (seen verified: "The Vandelay Gold plan covers semaglutide.", citing a Vandelay
    plan's mesalamine record and an Ohio list's semaglutide row). A payer or plan word no
    cited passage holds itself is left to the pooled test."""
    if len(evidence.each) < 2 or not focus.drugs:
        return []
    each = [normalise(t) for t in evidence.each]
    wanted = [*focus.payers, *focus.plans]
    wanted = [w for w in dict.fromkeys(wanted) if any(w in t for t in each)]
    if not wanted:
        return []
    if any(all(w in t for w in wanted)
           and all(mentioned_in(d, t) or (focus.class_stands_for_drug and class_of_named(d, t))
                   for d in focus.drugs)
           for t in each):
        return []
    drugs = ", ".join(d.name for d in focus.drugs)
    return [f"no cited source names both {drugs} and {' '.join(w.title() for w in wanted)}"]


_CONCOMITANT = re.compile(r"\bconcomitant|\bco-?administ|\binteract|\bin combination\b|"
                         r"\bcombined with\b|\btaken with\b")


def addresses(focus: QuestionFocus, evidence: Evidence) -> list[str]:
    """Why the evidence does not address the question (empty: it does)."""
    where = evidence.text + " \n " + evidence.context
    problems = [f"the cited evidence does not name {d.name}" for d in focus.drugs
                if not mentioned_in(d, where)
                and not (focus.class_stands_for_drug and class_of_named(d, where))]
    problems += [f"the cited evidence does not name {d.name}, its class or its "
                 "concomitant use" for d in focus.context_drugs
                 if not mentioned_in(d, where) and not class_of_named(d, where)
                 and not _CONCOMITANT.search(normalise(evidence.text))]
    if focus.asks_drugs and not find_drug_mentions(where):
        problems.append("the cited evidence names no drug")
    problems += _named_only_by_heading(focus, evidence)
    patient_named = any(mentioned_in(d, where) for d in focus.patient_drugs)
    for c in focus.classes:
        if not (patient_named or _class_named(c, where)):
            problems.append(f"the cited evidence is not about {c.name}")
    if focus.patient_drugs and not any(mentioned_in(d, where) or class_of_named(d, where)
                                       for d in focus.patient_drugs):
        names = ", ".join(d.name for d in focus.patient_drugs)
        problems.append(f"the cited evidence does not name the patient's medication ({names})")
    lowered = normalise(where)
    problems += [f"the cited evidence is not from {p.title()}" for p in focus.payers
                 if p not in lowered]
    # The plan's own word ("Bronze"), beside a carrier that offers several plans (seen
    # verified: the Gold and Silver plans' azithromycin records for "Bronze-plan member
    # at Vandelay …").
    problems += [f"the cited evidence is not about the {w.title()} plan"
                 for w in dict.fromkeys(focus.plans)
                 if w not in lowered and w not in focus.payers]
    whole = normalise(where + " " + evidence.surroundings)
    problems += [f"the cited evidence does not mention {n}" for n in focus.names
                 if n.lower() not in whole]
    around = set(_words(where + " " + evidence.surroundings))
    # Beside a drug the evidence names, a condition is context (the patient's), unless a
    # dose of that drug is asked: then it is the indication, and another indication's
    # dose is not the answer. Beside a class it is what the question is about:
    # "first-line antibiotic for uncomplicated cystitis" was answered *verified* with
    # another infection's list of antibiotics (a list's own heading names its condition:
    # "Antimigraine Agents").
    # Beside two drugs the question is about their combination, and a condition is the
    # patient's context again ("Onychomycosis patient on atorvastatin 40 is starting
    # itraconazole. Does the statin dose matter?": onychomycosis is itraconazole's use).
    for_indication = len(focus.drugs) == 1 and any(a.name == "dose" for a in focus.attributes)
    anchored = bool(focus.drugs) and not problems and not for_indication
    required = focus.conditions if not anchored else focus.sought
    # What the question asks to screen or test for is the answer itself, so the cited
    # units (or their heading) must name it: "Do I need to screen for TB before starting
    # Humira?" came back verified with the boxed warning's serious-infection sentences,
    # TB named only by other sentences of that section.
    cited = set(_words(where))
    problems += [f"the cited evidence does not mention {w}" for w in required
                 if not _findable(w, cited if w in focus.sought else around)]
    # The same words as `around`: addresses() runs for every candidate unit.
    problems += [f"the cited evidence does not mention {w}" for w in focus.subjects
                 if not _spelled_in(w, around)]
    problems += [f"the cited evidence is not about {p.name} patients"
                 for p in focus.populations if not p.words & around]
    problems += [f"the cited evidence is not about the {f} product" for f in focus.forms
                 if f not in around]
    if focus.age is not None and (ranges := outside_ages(focus.age, where)):
        told = ", ".join(f"{low:g}–{high:g}" if high != float("inf") else f"{low:g}+"
                         for low, high in ranges[:4])
        problems.append(f"the cited evidence is for other ages ({told} years), not "
                        f"{focus.age}")
    if focus.topic:
        told = normalise(where + " " + evidence.surroundings)
        missing = [w for w in focus.topic if not _topic_present(w, around, told)]
        if len(missing) * 2 > len(focus.topic):
            problems.append("the cited evidence is not about " + ", ".join(missing))
    problems += _apart(focus, evidence) if not problems else []
    if evidence.doc_types and evidence.doc_types <= {"formulary"} and not focus.asks_payer:
        problems.append("the cited evidence is a payer's list; the question asks nothing "
                        "of a payer")
    asked = focus.attributes

    def met(a: Attribute, text: str) -> bool:
        if evidence.doc_types and evidence.doc_types <= a.not_from:
            return False
        return bool(evidence.codes & a.codes or a.signals.search(text))

    strict = [a for a in asked if a.strict]
    if strict:
        # In the cited words themselves: every section of "UPDL Criteria" has the word
        # in its path, the grandfathering note for all non-preferred drugs included.
        said = normalise(evidence.text)
        problems += ["the cited evidence does not state the " + a.name.replace("_", " ")
                     for a in strict if not met(a, said)]
    elif asked and not any(met(a, lowered) for a in asked):
        problems.append("the cited evidence does not state a "
                        + " or ".join(a.name.replace("_", " ") for a in asked))
    return problems


# "How much inhaled tobramycin will Ohio Medicaid pay for?": the amount is the answer.
_HOW_MUCH = re.compile(r"\bhow (?:much|many)\b|\bwhat (?:is|are) the (?:quantity )?limits?\b|"
                       r"\bquantity limit (?:is|for|on)\b")


# A formulary's word for a drug's place on its list (seen verified, citing a label's
# interaction sentence beside the list's row: "Lopinavir/Ritonavir is preferred for HIV
# patients …" for "Any restriction on atorvastatin?").
_STATUS_CLAIM = re.compile(r"\b(?:is|are|was|were) (?:listed as )?(?:non-)?preferred\b|"
                           r"\bformulary\b|\btier\b", re.I)


def answer_misses(question: str, focus: QuestionFocus, said: str) -> list[str]:
    """Why the answer's own sentences (`said`), not their evidence, leave the question
    unanswered (empty: they do not). Evidence can address a question that its answer
    still misses:
    - the answer is about another drug: it names drugs, none of them one asked about
      (seen verified: "Colcrys Tab (PA QL) is preferred under Ohio Medicaid." for "…
      move this patient to febuxostat … is it preferred?", citing the gout list's row
      that prints Colcrys beside febuxostat);
    - an amount asked for is not stated (seen verified: "Ohio Medicaid pays for
      Tobramycin (PA QL) at a quantity limit." for "How much inhaled tobramycin will Ohio
      Medicaid pay for?")."""
    problems = []
    asked = focus.drugs or focus.patient_drugs
    named = [d for d in find_drug_mentions(said) if not d.is_class]
    if asked and named and not any(mentioned_in(d, said) for d in asked) and not (
            focus.class_stands_for_drug and any(class_of_named(d, said) for d in asked)):
        problems.append("the answer is about " + ", ".join(d.name for d in named[:3])
                        + ", not " + ", ".join(d.name for d in asked[:3]))
    if not focus.asks_payer and _STATUS_CLAIM.search(said):
        problems.append("the answer states a payer's status; the question asks nothing of "
                        "a payer")
    # A number asked; of a quantity limit, its amount in figures.
    limit = any(a.name == "quantity_limit" for a in focus.attributes)
    asked_text = normalise(question)
    if limit and _HOW_MUCH.search(asked_text):
        if not re.search(r"\d", said):
            problems.append("the answer does not state the limit's amount")
    elif _ASKS_NUMBER.search(asked_text) and not _STATES_NUMBER.search(said):
        problems.append("the question asks for a number; the answer states none")
    return problems


# "How many glucose test strips a month does Medicare cover …?" answered with the
# monitor's coverage conditions, no number (seen verified on an unanswerable question).
_ASKS_NUMBER = re.compile(r"\bhow (?:many|much|often|long)\b|\bwhat (?:is the )?(?:maximum|"
                          r"minimum|max|highest|lowest)\b|\bat what (?:age|dose|level|bmi|"
                          r"value|point)\b")
_STATES_NUMBER = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|"
                            r"eleven|twelve|once|twice|half|single|daily|weekly|monthly|"
                            r"annual(?:ly)?|yearly|every|each)\b", re.I)
