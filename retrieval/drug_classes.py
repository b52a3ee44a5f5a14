"""Drug classes a question names ("statins", "SGLT2 inhibitors", "triptans") and the drugs
that belong to them.

Formularies list drugs, not classes: the Ohio lipotropics table has "Atorvastatin" and
"Rosuvastatin" rows but never the word "statin", and "Farxiga" sits in a table whose
header says only "Preferred". The packaged drug dictionary knows brand ↔ generic but no
pharmacologic classes, so membership comes from the international nonproprietary
naming stems (USAN/INN: every "-gliflozin" is an SGLT2 inhibitor, every "-triptan" a
5-HT1B/1D agonist), plus explicit members for classes without a reliable stem. A stem
is a naming rule the WHO and USAN council define, not a per-question rule; the table
below is the part a pharmacist would check.

A generic name is matched against a class by its canonical name in the dictionary
(`retrieval.drugs.drug_names`), so brand rows ("Jardiance") join their class through
their generic ("empagliflozin").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache


@dataclass(frozen=True)
class DrugClass:
    key: str
    # How questions and documents name the class (matched case-insensitively, whole words).
    names: re.Pattern[str]
    # Naming stems of member generics: a member's canonical name has a word ending so.
    stems: tuple[str, ...] = ()
    # Members without the stem (or classes without one).
    members: frozenset[str] = frozenset()
    # Names that carry a stem but are not members ("nystatin" is an antifungal).
    not_members: frozenset[str] = frozenset()

    def has_member(self, generic: str) -> bool:
        g = generic.lower()
        if g in self.not_members:
            return False
        # The dictionary may name a member with its salt or form: Prevalite is
        # "cholestyramine resin".
        if g in self.members or g.split(" ", 1)[0] in self.members:
            return True
        return any(re.search(rf"[a-z]{re.escape(s)}\b", g) for s in self.stems)


def _names(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9])(?:{pattern})(?![a-z0-9])", re.I)


CLASSES: tuple[DrugClass, ...] = (
    DrugClass("statins", _names(r"statins?|hmg[- ]?co-?a reductase inhibitors?"),
              # "-vastatin": the bare "-statin" also ends enzyme inhibitors (cystatin).
              ("vastatin",)),
    DrugClass("triptans", _names(r"triptans?|5-ht1[bdf/]* (?:receptor )?agonists?"),
              ("triptan",)),
    DrugClass("sglt2 inhibitors", _names(r"sglt-?2 inhibitors?|gliflozins?|sodium[- ]glucose "
                                         r"(?:co-?)?transporter[- ]2 inhibitors?"),
              ("gliflozin",)),
    DrugClass("glp-1 receptor agonists",
              _names(r"glp-?1(?: receptor)? (?:agonists?|ras?)|glucagon-like peptide-1 "
                     r"(?:receptor )?agonists?|incretin mimetics?"),
              ("glutide", "enatide"), members=frozenset({"tirzepatide", "exenatide"})),
    DrugClass("dpp-4 inhibitors", _names(r"dpp-?4 inhibitors?|gliptins?|dipeptidyl "
                                         r"peptidase[- ]4 inhibitors?"),
              ("gliptin",)),
    DrugClass("pcsk9 inhibitors", _names(r"pcsk-?9 inhibitors?"),
              members=frozenset({"alirocumab", "evolocumab", "inclisiran"})),
    DrugClass("fibrates", _names(r"fibrates?|fibric acids?(?: derivatives)?"),
              ("fibrate", "fibrozil"), members=frozenset({"fenofibric acid"}),
              not_members=frozenset({"clofibrate"})),
    DrugClass("bile acid sequestrants", _names(r"bile acid sequestrants?|bile acid resins?"),
              members=frozenset({"cholestyramine", "colestipol", "colesevelam"})),
    DrugClass("ace inhibitors", _names(r"ace[- ]inhibitors?|angiotensin[- ]converting "
                                       r"enzyme inhibitors?"),
              ("pril",)),
    DrugClass("angiotensin receptor blockers", _names(r"arbs?|angiotensin (?:ii )?receptor "
                                                      r"(?:blockers?|antagonists?)|sartans?"),
              ("sartan",)),
    DrugClass("beta blockers", _names(r"beta[- ]?blockers?|beta[- ]adrenergic blockers?|"
                                      r"β-blockers?"),
              ("olol", "alol", "ilol")),
    DrugClass("calcium channel blockers", _names(r"calcium channel blockers?|ccbs?|"
                                                 r"dihydropyridines?"),
              ("dipine",), members=frozenset({"diltiazem", "verapamil"})),
    # Explicit: "-prazole" also ends aripiprazole, and "-tidine" cytidine.
    DrugClass("proton pump inhibitors", _names(r"proton[- ]pump inhibitors?|ppis?"),
              members=frozenset({"omeprazole", "esomeprazole", "lansoprazole",
                                 "dexlansoprazole", "pantoprazole", "rabeprazole"})),
    DrugClass("h2 blockers", _names(r"h2[- ](?:receptor )?(?:blockers?|antagonists?)"),
              members=frozenset({"cimetidine", "famotidine", "nizatidine", "ranitidine"})),
    DrugClass("direct oral anticoagulants",
              _names(r"doacs?|noacs?|direct oral anticoagulants?|factor xa inhibitors?"),
              ("xaban", "gatran")),
    # The formularies' category ("Oral Anticoagulants") holds warfarin too.
    DrugClass("oral anticoagulants", _names(r"(?<!direct )oral anticoagulants?"),
              ("xaban", "gatran"), members=frozenset({"warfarin"})),
    DrugClass("benzodiazepines", _names(r"benzodiazepines?|benzos?"),
              ("azepam", "azolam", "azepate"),
              members=frozenset({"chlordiazepoxide", "clobazam"})),
    DrugClass("bisphosphonates", _names(r"bisphosphonates?"), ("dronate", "dronic acid")),
    DrugClass("fluoroquinolones", _names(r"fluoroquinolones?|quinolones?"), ("floxacin",)),
    DrugClass("tnf blockers", _names(r"tnf[- ](?:alpha |α )?(?:blockers?|inhibitors?|"
                                     r"antagonists?)|anti-tnf"),
              members=frozenset({"adalimumab", "infliximab", "etanercept", "certolizumab pegol",
                                 "golimumab"})),
    DrugClass("ssris", _names(r"ssris?|selective serotonin reuptake inhibitors?"),
              members=frozenset({"fluoxetine", "sertraline", "paroxetine", "citalopram",
                                 "escitalopram", "fluvoxamine"})),
    DrugClass("snris", _names(r"snris?|serotonin[- ]norepinephrine reuptake inhibitors?"),
              members=frozenset({"venlafaxine", "desvenlafaxine", "duloxetine",
                                 "levomilnacipran", "milnacipran"})),
    DrugClass("thiazide diuretics", _names(r"thiazides?(?:[- ](?:type|like))?(?: diuretics?)?"),
              ("thiazide",),
              members=frozenset({"chlorthalidone", "indapamide", "metolazone"})),
    # INN's stems of the direct-acting antivirals: -previr (NS3/4A), -asvir (NS5A), -buvir
    # (NS5B); ribavirin and the peginterferons are the older regimen.
    DrugClass("hepatitis c antivirals",
              _names(r"(?:hcv|hep(?:atitis)?[- ]c) (?:drugs?|agents?|antivirals?|products?|"
                     r"medications?|treatments?|regimens?)|direct[- ]acting antivirals?|daas?"),
              ("previr", "asvir", "buvir"),
              members=frozenset({"ribavirin", "peginterferon alfa-2a",
                                 "peginterferon alfa-2b"})),
    # The dictionary names Norditropin, Omnitrope and Genotropin "human growth hormone".
    DrugClass("growth hormones", _names(r"growth hormones?|somatropins?"),
              members=frozenset({"human growth hormone", "somatropin", "lonapegsomatropin",
                                 "somapacitan", "somatrogon"})),
    # No stems: "-apine" also ends mirtazapine (an antidepressant), "-idone" many others.
    DrugClass("antipsychotics", _names(r"antipsychotics?|neuroleptics?|antipsychotic (?:agents?|"
                                       r"drugs?|medications?)"),
              members=frozenset({
                  "haloperidol", "chlorpromazine", "fluphenazine", "perphenazine",
                  "trifluoperazine", "thioridazine", "thiothixene", "loxapine", "molindone",
                  "pimozide", "risperidone", "paliperidone", "olanzapine", "quetiapine",
                  "clozapine", "aripiprazole", "brexpiprazole", "cariprazine", "ziprasidone",
                  "lurasidone", "asenapine", "iloperidone", "lumateperone", "pimavanserin"})),
    DrugClass("anticonvulsants", _names(r"anticonvulsants?|anti-?epileptics?(?: drugs?)?|aeds?|"
                                        r"anti-?seizure (?:drugs?|medications?)"),
              members=frozenset({
                  "levetiracetam", "brivaracetam", "phenytoin", "fosphenytoin",
                  "carbamazepine", "oxcarbazepine", "eslicarbazepine", "valproic acid",
                  "valproate", "divalproex", "lamotrigine", "topiramate", "zonisamide",
                  "lacosamide", "gabapentin", "pregabalin", "phenobarbital", "primidone",
                  "ethosuximide", "felbamate", "perampanel", "rufinamide", "tiagabine",
                  "vigabatrin", "cenobamate", "clobazam"})),
    # No stem: "-sone" and "-olone" also end dapsone, tolperisone and the neurosteroids.
    DrugClass("corticosteroids", _names(r"(?:systemic |oral |inhaled |topical )?"
                                        r"(?:cortico)?steroids?|glucocorticoids?"),
              members=frozenset({
                  "prednisone", "prednisolone", "methylprednisolone", "dexamethasone",
                  "hydrocortisone", "cortisone", "betamethasone", "triamcinolone",
                  "budesonide", "fluticasone", "mometasone", "beclomethasone", "beclometasone",
                  "ciclesonide", "fludrocortisone", "deflazacort", "fluocinolone",
                  "fluocinonide", "clobetasol", "desonide", "halcinonide"})),
)


def classes_in(text: str) -> list[DrugClass]:
    """The classes a text names, in table order."""
    return [c for c in CLASSES if c.names.search(text)]


@cache
def class_members(key: str) -> tuple[str, ...]:
    """Canonical (dictionary) names of the class's members, lower case."""
    cls = next(c for c in CLASSES if c.key == key)
    return tuple(sorted(g for g in _canonical_names() if cls.has_member(g)))


@lru_cache(maxsize=1)
def _canonical_names() -> frozenset[str]:
    from drug_named_entity_recognition import drugs_finder

    names: set[str] = set()
    for canon in drugs_finder.drug_variant_to_canonical.values():
        names.update(c.lower() for c in (canon if isinstance(canon, list) else [canon]))
    return frozenset(names)


def names_member(cls: DrugClass, generics: list[str]) -> bool:
    """Whether any of these canonical drug names belongs to the class."""
    return any(cls.has_member(g) for g in generics)
