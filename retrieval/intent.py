"""What a question asks for, read from its words, in the terms the documents are
structured by: the drugs it names (never classes), the label sections (LOINC codes) that
hold the attribute it asks about, whether it asks for formulary records, and whether it
asks for a document's administrative facts (release date, source, developer).

Search uses this to rank (retrieval/search.py): the drugs become a filtered arm of the
hybrid query on the payload's `drugs` field, the section codes and unit kinds a boost on
the fused ranks. Nothing here is tuned to a question: each rule names a section kind
that the documents' own structure defines (an SPL section code, an NGC field, a
formulary row).
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from retrieval.drug_classes import DrugClass, class_members, classes_in
from retrieval.drugs import drug_names, products_in

BOXED_WARNING = "34066-1"
INDICATIONS = "34067-9"
DOSAGE = "34068-7"
CONTRAINDICATIONS = "34070-3"
WARNINGS = "34071-1"  # older labels' and OTC "Warnings"
PRECAUTIONS = "42232-9"
WARNINGS_AND_PRECAUTIONS = "43685-7"
INTERACTIONS = "34073-7"
ADVERSE_REACTIONS = "34084-4"
SPECIFIC_POPULATIONS = "43684-0"
PREGNANCY = "42228-7"
TERATOGENIC = "34077-8"
LACTATION = "77290-5"
NURSING = "34080-2"
PEDIATRIC = "34081-0"
GERIATRIC = "34082-8"
OVERDOSAGE = "34088-5"
MECHANISM = "43679-0"
CLINICAL_PHARMACOLOGY = "34090-1"
STORAGE = "44425-7"
HOW_SUPPLIED = "34069-5"
DOSAGE_FORMS = "43678-2"
OTC_DO_NOT_USE = "50570-1"
OTC_ASK_DOCTOR = "50569-3"
OTC_ASK_DOCTOR_PHARMACIST = "50568-5"
OTC_STOP_USE = "50566-9"
OTC_WHEN_USING = "50567-7"
OTC_PURPOSE = "55105-1"
OTC_USES = "34067-9"

# The attribute a question asks about -> the label sections that state it. Order does
# not matter; a question may ask several.
_ATTRIBUTES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"\bboxed\b|black[- ]box", re.I), (BOXED_WARNING,)),
    (re.compile(r"contraindicat|must not (?:be )?(?:use|take|give)|should not (?:be )?"
                r"(?:use|take|give)n?|\bcannot (?:use|take)\b|\brules? out\b|\bruled out\b", re.I),
     (CONTRAINDICATIONS, OTC_DO_NOT_USE)),
    (re.compile(r"\bdos(?:e|es|ing|age|ed)\b|how much|how often|\bmg\b|starting|maximum|"
                r"titrat|\bdirections\b|how (?:should|do) (?:i|you|we) (?:take|give|use)|"
                r"\bregimens?\b|\bschedule\b|\binduction\b|\bloading\b",
                re.I),
     (DOSAGE, DOSAGE_FORMS)),
    (re.compile(r"interact|together with|combined with|co-?administ|concomitant|"
                r"\bwith (?:a |an )?(?:strong |moderate )?cyp", re.I),
     (INTERACTIONS,)),
    (re.compile(r"warning|precaution|\brisks?\b|danger|\bsafe\b|safety|monitor|screen|"
                r"serious|black box", re.I),
     (BOXED_WARNING, WARNINGS_AND_PRECAUTIONS, WARNINGS, PRECAUTIONS, OTC_ASK_DOCTOR,
      OTC_STOP_USE, OTC_WHEN_USING, OTC_ASK_DOCTOR_PHARMACIST)),
    (re.compile(r"adverse|side[- ]effects?|reactions?\b|tolerab", re.I),
     (ADVERSE_REACTIONS,)),
    (re.compile(r"pregnan|conceiv|lactat|breast[- ]?feed|nursing", re.I),
     (PREGNANCY, TERATOGENIC, LACTATION, NURSING, SPECIFIC_POPULATIONS)),
    (re.compile(r"child|pediatric|paediatric|\bkids?\b|adolescen", re.I),
     (PEDIATRIC, SPECIFIC_POPULATIONS)),
    (re.compile(r"elderly|geriatric|older adults?", re.I), (GERIATRIC, SPECIFIC_POPULATIONS)),
    (re.compile(r"overdos", re.I), (OVERDOSAGE,)),
    (re.compile(r"mechanism|how does .* work", re.I), (MECHANISM, CLINICAL_PHARMACOLOGY)),
    (re.compile(r"\bstor(?:e|age|ed)\b|refrigerat", re.I), (STORAGE, HOW_SUPPLIED)),
    (re.compile(r"indicat|approved for|used for", re.I),
     (INDICATIONS, OTC_USES, OTC_PURPOSE)),
)

# A question about a formulary's records: status, limits, flags, tiers. "Covered" and
# "plan" count only beside a drug: "Medicare-covered LVAD therapy" asks a coverage
# policy, not a formulary.
_FORMULARY = re.compile(
    r"prefer|formular|\bpdl\b|drug list|quantity limit|\bql\b|prior auth|\bpa\b|"
    r"step therapy|\btier\b|non-preferred|per fill|fill period|medicaid",
    re.I,
)
_FORMULARY_WITH_DRUG = re.compile(r"covered|coverage|\bplan\b", re.I)
# A formulary question that asks for a record's status or limit (its row answers it),
# as against one that asks what a prior authorization requires (the criteria sections).
_STATUS = re.compile(
    r"^\s*(?:does|do|is|are|can|will)\b|prefer|status|\btier\b|"
    r"on (?:the|its|their) (?:list|pdl|formulary)|quantity|"
    r"\bql\b|\blimit|how (?:much|many)|dispens|per fill|covered\b|\bcover\b",
    re.I,
)
_CRITERIA = re.compile(
    r"criteri|requirements?\b|\brequire[sd]?\b|\bneed(?:ed|s)?\b|must\b|step therapy|"
    r"\btried\b|\btry\b|before .{0,60}approv|approv(?:e|al|ing)\b|qualif|eligib|"
    r"prior auth|\bpa\b|exempt",
    re.I,
)
# A question for every item of a list ("which statins are preferred"): a whole table
# answers it better than one of its rows.
_LISTING = re.compile(
    r"\b(?:which|what)\b[^?.]*\bare\b|(?:^|[.?!;:]\s*)list\b|\blist (?:of|all|every|the)\b|"
    r"\ball (?:the )?(?:preferred|covered|"
    r"non-preferred|agents|drugs|medications)\b",
    re.I,
)
# A question about the document itself rather than what it recommends.
_ADMIN = re.compile(
    r"\breleased?\b|\bpublish|\brevis|\bupdated?\b|\bwhen was\b|\bwhat year\b|"
    r"\bsource\b|\bcitation|\bbibliograph|\bdeveloper|\bwho (?:wrote|developed|issued|"
    r"authored)|\bauthor(?:s|ed|ship)?\b|\bendors|\bfund|\bcompanion|\bavailab|"
    r"\bstatus of the guideline|\bngc\b|\bcategory\b|\bintended users\b|\bspecialt",
    re.I,
)
# An administrative question for a date ("when was it released?", "what year…"): the
# document's date fields answer it, not its status or committee fields.
_ASKS_DATE = re.compile(r"\bwhen\b|\bwhat year\b|\bdates?\b|\bhow (?:old|recent)\b", re.I)
# A question asked of a payer's policy or a guideline, not of a drug's label: without a
# drug named, "how often" there is a billing interval or a visit schedule, not a dose.
_NOT_A_LABEL = re.compile(
    r"medicare|medicaid|\bcms\b|\bncd\b|covered|coverage|\bbill|reimburs|payer|"
    r"guideline|va/dod|task force|uspstf|work group|\bcdc\b|recommend",
    re.I,
)
# A question about what a payer's coverage policy allows ("How often can HbA1c be billed
# to Medicare?"), not a formulary's drug list: a guideline on the same test shares its
# words, the national coverage determination answers it.
_COVERAGE_POLICY = re.compile(
    r"medicare|\bcms\b|\bncds?\b|\blcds?\b|coverage|\bcovers?\b|\bcovered\b|"
    r"\bbill(?:ed|ing|able)?\b|reimburs",
    re.I,
)
_PATIENT_FACING = re.compile(
    r"medication guide|patient (?:information|leaflet|handout|insert)|in plain (?:language|"
    r"english)|(?:tell|explain to|counsel) (?:my |the |a )?(?:patient|him|her|them)",
    re.I,
)
# What /ask appends to a question that refers to a FHIR patient
# (app/answering/fhir_context.py retrieval_query): the patient's facts, searched with it.
PATIENT_FACTS = " (patient: "
# The question asks about the patient's medication without naming it ("his medications",
# "the dose", "her current regimen"); "adding a weight-loss medication" asks about one
# the patient does not take.
_ASKS_ABOUT_MEDICATION = re.compile(
    r"\b(?:my|this|the|his|her|their|its|current|home|patient'?s?)\s+(?:[\w-]+\s+){0,2}?"
    r"(?:medications?|meds|drugs?|prescriptions?|dos(?:e|es|ing|age)|regimen)\b", re.I)


@dataclass(frozen=True)
class QueryIntent:
    drugs: tuple[str, ...] = ()
    # Members of the drug classes the question names ("statins": atorvastatin, ...), as
    # canonical names: formulary rows name drugs, never their class.
    class_drugs: tuple[str, ...] = ()
    section_codes: tuple[str, ...] = ()
    formulary: bool = False
    listing: bool = False
    admin: bool = False
    asks_date: bool = False
    coverage: bool = False
    # What a patient is told (the Medication Guide, patient information).
    patient_facing: bool = False
    # A formulary question about what a prior authorization or step therapy requires
    # (the criteria sections answer it), and whether it also asks a record's status.
    criteria: bool = False
    status: bool = True
    # The formulary flags whose rules it asks about ("QL": how many, "AR": from what
    # age): a payer's note on a flag ("QL – All colchicine products: 6 doses per claim")
    # answers it with the numbers the rows' flags only announce.
    flags: tuple[str, ...] = ()


_FLAG_QUESTIONS = (
    ("QL", re.compile(r"quantit|\bql\b|how many|\bdoses? per\b|per (?:fill|claim|day|month)|"
                      r"\blimits?\b", re.I)),
    ("AR", re.compile(r"\bage\b|\bages\b|years? old|year-old|\bchild|p(?:a)?ediatric|"
                      r"\bteen|adolescent|\binfant", re.I)),
    ("ST", re.compile(r"step therapy|\btried\b|\btry\b|first[- ]line", re.I)),
)


def asks_guideline_or_payer(question: str) -> bool:
    """Whether the question is put to a guideline or a payer's policy, which write of
    drug classes ("benzodiazepines"), rather than to a drug's label."""
    return bool(_NOT_A_LABEL.search(split_patient(question)[0]))


def asked_flags(question: str) -> tuple[str, ...]:
    return tuple(code for code, pattern in _FLAG_QUESTIONS if pattern.search(question))


def split_patient(query: str) -> tuple[str, str]:
    """(the question, the patient's facts appended to it, or "")."""
    head, mark, facts = query.partition(PATIENT_FACTS)
    return (head, facts.rstrip(")")) if mark else (query, "")


def _patient_drugs(question: str, facts: str, classes: list[DrugClass]) -> tuple[str, ...]:
    """The patient's drugs the question is about: the members of a class it names ("her
    statin"), or all of them when it asks about "his medication" or "the dose"; none
    when it asks about something else (follow-up, a program): then the patient's
    antihypertensive would pull every passage about it ahead of the answer."""
    if not facts:
        return ()
    theirs = drug_names(facts, fuzzy=True)
    if classes:
        return tuple(g for g in theirs if any(c.has_member(g) for c in classes))
    return tuple(theirs) if _ASKS_ABOUT_MEDICATION.search(question) else ()


def read_intent(query: str, products: AbstractSet[str] = frozenset()) -> QueryIntent:
    """What `query` asks. `products`: drug keys beyond the packaged dictionary (a
    formulary's own products, retrieval/drugs.py `product_key`) that count as drugs."""
    question, facts = split_patient(query)
    codes: list[str] = []
    for pattern, wanted in _ATTRIBUTES:
        if pattern.search(question):
            codes += [c for c in wanted if c not in codes]
    classes = classes_in(question)
    named_drugs = drug_names(question, fuzzy=True)
    named_drugs += [p for p in products_in(question, products) if p not in named_drugs]
    drugs = tuple(named_drugs) or _patient_drugs(question, facts, classes)
    if not drugs and not classes and _NOT_A_LABEL.search(question):
        codes = []
    named = bool(drugs or classes)
    formulary = bool(_FORMULARY.search(question)) or (
        named and bool(_FORMULARY_WITH_DRUG.search(question)))
    return QueryIntent(
        drugs=drugs,
        class_drugs=tuple(dict.fromkeys(g for c in classes for g in class_members(c.key))),
        section_codes=tuple(codes),
        formulary=formulary,
        # The formulary status of a class ("SGLT2 inhibitors preferred on X?") is the
        # status of each of its members: a list.
        listing=bool(_LISTING.search(question)) or bool(classes and not drugs),
        admin=bool(_ADMIN.search(question)),
        asks_date=bool(_ADMIN.search(question)) and bool(_ASKS_DATE.search(question)),
        coverage=not formulary and bool(_COVERAGE_POLICY.search(question)),
        patient_facing=bool(_PATIENT_FACING.search(question)),
        criteria=formulary and bool(_CRITERIA.search(question)),
        status=bool(_STATUS.search(question)) or not _CRITERIA.search(question),
        flags=asked_flags(question) if formulary else (),
    )
