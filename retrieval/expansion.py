"""Clinical query expansion: brand ↔ generic drug names and common abbreviations.

A pharmacist asks about "Eliquis" while the formulary lists "apixaban"; a prescriber
writes "HTN" where the guideline says "hypertension". Expansion appends the other names
to the query: to the lexical arm only (`lexical`) or to both arms (`both`). Whether it
helps is measured by `medcite eval` (systems medcite-hybrid-expand-*), not assumed; see
bench/RESULTS-retrieval.md for the numbers behind the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from retrieval.drug_classes import CLASSES
from retrieval.drugs import drug_names, find_drug_mentions
from retrieval.intent import asks_guideline_or_payer, split_patient

# "abbreviations": only the abbreviations' words, to the lexical arm ("LVAD" for a policy
# titled "Ventricular Assist Devices"); "lexical" / "both": drug names too, to the lexical
# arm or both arms.
ExpansionMode = Literal["off", "abbreviations", "lexical", "both"]
EXPANSION_MODES: tuple[str, ...] = ("off", "abbreviations", "lexical", "both")

# Abbreviations clinicians write in questions, with the words documents use. Only
# unambiguous ones in this domain: "PE", "MS" or "PT" mean several things, so they stay out.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "htn": ("hypertension",),
    "mme": ("morphine milligram equivalents",),
    "dm": ("diabetes mellitus",),
    "dm1": ("type 1 diabetes mellitus",),
    "t1dm": ("type 1 diabetes mellitus",),
    "dm2": ("type 2 diabetes mellitus",),
    "t2dm": ("type 2 diabetes mellitus",),
    "t2d": ("type 2 diabetes",),
    "ckd": ("chronic kidney disease",),
    "esrd": ("end-stage renal disease",),
    "chf": ("congestive heart failure",),
    "hfref": ("heart failure with reduced ejection fraction",),
    "cad": ("coronary artery disease",),
    "ascvd": ("atherosclerotic cardiovascular disease",),
    "mi": ("myocardial infarction",),
    "afib": ("atrial fibrillation",),
    "dvt": ("deep vein thrombosis",),
    "vte": ("venous thromboembolism",),
    "copd": ("chronic obstructive pulmonary disease",),
    "gerd": ("gastroesophageal reflux disease",),
    "bph": ("benign prostatic hyperplasia",),
    "uti": ("urinary tract infection",),
    "hld": ("hyperlipidemia",),
    "ldl": ("low-density lipoprotein",),
    "ldl-c": ("low-density lipoprotein cholesterol",),
    "hdl": ("high-density lipoprotein",),
    "a1c": ("hemoglobin a1c", "glycated hemoglobin"),
    "hba1c": ("hemoglobin a1c", "glycated hemoglobin"),
    "egfr": ("estimated glomerular filtration rate",),
    "crcl": ("creatinine clearance",),
    "psa": ("prostate-specific antigen",),
    "tsh": ("thyroid-stimulating hormone",),
    "cgm": ("continuous glucose monitor",),
    "smbg": ("self-monitoring of blood glucose",),
    "lvad": ("left ventricular assist device",),
    "vad": ("ventricular assist device",),
    "nsaid": ("nonsteroidal anti-inflammatory drug",),
    "nsaids": ("nonsteroidal anti-inflammatory drugs",),
    "ssri": ("selective serotonin reuptake inhibitor",),
    "ppi": ("proton pump inhibitor",),
    "doac": ("direct oral anticoagulant",),
    "glp-1": ("glucagon-like peptide-1",),
    "sglt2": ("sodium-glucose cotransporter 2",),
    "pcsk9": ("proprotein convertase subtilisin/kexin type 9",),
    "oud": ("opioid use disorder",),
    "hiv": ("human immunodeficiency virus",),
    "hcv": ("hepatitis c virus",),
    "hbv": ("hepatitis b virus",),
    "adhd": ("attention deficit hyperactivity disorder",),
    "prep": ("preexposure prophylaxis",),
    # Not "PA" or "QL": the formularies write them so themselves, and their words
    # ("prior authorization") only diluted the lexical arm (recall@5 0.946 without,
    # 0.937 with, bench/RESULTS-retrieval.md).
    "pdl": ("preferred drug list",),
    "updl": ("unified preferred drug list",),
    "ncd": ("national coverage determination",),
    "ndc": ("national drug code",),
    "bid": ("twice daily",),
    "tid": ("three times daily",),
    "qd": ("once daily",),
    "po": ("by mouth", "oral"),
    "er": ("extended-release",),
    "xr": ("extended-release",),
}
# At most this many other names per drug: the dictionary also holds salt forms, Latin
# and foreign spellings and chemical names, which add noise, not recall.
MAX_DRUG_SYNONYMS = 6
_ABBREV = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)?")
_PLAIN_NAME = re.compile(r"[a-z][a-z\-]+")


@dataclass(frozen=True)
class Expansion:
    question: str
    terms: tuple[str, ...]  # what was added, in order, without repeats

    @property
    def text(self) -> str:
        if not self.terms:
            return self.question
        return f"{self.question} ({'; '.join(self.terms)})"


def drug_synonyms(question: str) -> list[str]:
    """Other names of each drug the question mentions: brand for generic and back."""
    lowered = question.lower()
    out: list[str] = []
    for drug in find_drug_mentions(question):
        generic = drug.name.lower()
        names = sorted(drug.synonyms, key=lambda s: (s != generic, len(s), s))
        kept = 0
        for name in names:
            if kept >= MAX_DRUG_SYNONYMS:
                break
            # One plain word; not a spelling variant of the generic (atorvastatina,
            # metforminum): those never occur in English documents.
            if not _PLAIN_NAME.fullmatch(name) or (name != generic and name.startswith(generic)):
                continue
            if re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", lowered):
                continue
            out.append(name)
            kept += 1
    return out


def drug_class_names(question: str) -> list[str]:
    """The classes of the drugs a question put to a guideline or payer names: the
    guideline writes "avoid prescribing opioids and benzodiazepines concurrently", never
    "alprazolam". Not for a label question: Humira's label says "TNF blocker" in every
    section, so the class's words only blurred which section answers (measured)."""
    if not asks_guideline_or_payer(question):
        return []
    # The patient's own medications (appended facts) say nothing of what is asked.
    generics = drug_names(split_patient(question)[0])
    return [c.key for c in CLASSES
            if not c.names.search(question) and any(c.has_member(g) for g in generics)]


# A guideline writes "pharmacotherapy" where a clinician asks for "a medication".
_MEDICATION = re.compile(r"\bmedications?\b|\bmeds\b", re.I)


def guideline_words(question: str) -> list[str]:
    """The words a guideline uses for what a question put to it asks (not a label's or
    the patient's own medication list: "his medication" there is the record)."""
    if not asks_guideline_or_payer(question):
        return []
    asked, _ = split_patient(question)
    return ["pharmacotherapy"] if _MEDICATION.search(asked) else []


def abbreviation_expansions(question: str) -> list[str]:
    out = []
    for token in _ABBREV.findall(question):
        # Abbreviations are written in capitals; "pa" or "er" in lower case are words.
        if token.lower() in ABBREVIATIONS and not token.islower():
            out.extend(ABBREVIATIONS[token.lower()])
    return out


def expand(question: str, drugs: bool = True) -> Expansion:
    terms: list[str] = []
    lowered = question.lower()
    names = drug_synonyms(question) if drugs else []
    for term in [*abbreviation_expansions(question), *drug_class_names(question),
                 *guideline_words(question), *names]:
        if term not in terms and term not in lowered:
            terms.append(term)
    return Expansion(question, tuple(terms))
