"""A formulary status question answered from the formulary's records, not by the model.

A formulary row is typed data: ingest writes each drug row as a record whose units say
"<drug>: <status>[, <flags>].", "Flags: …", "Quantity limit: N per D days." and
"Effective <date>." above the row itself (ingest/chunking.py `row_records`). A question
that asks only for a drug's status, restrictions or quantity limit on a payer's list is
a lookup: its answer is composed here from the best-ranked records naming the drug, in
the records' own words, and then goes through the same verification and relevance test
as a generated answer (`AnswerService.complete_units`). The packaged 1.5B model read
"Nucynta, ER: Non-Preferred" as preferred and gave a Humira row a quantity limit it does
not have; a lookup cannot misread a row, and costs no generation.

Anything else a question asks ("what is needed to get it", "what trial", criteria, a
list of a category's agents) is the model's: a lookup would be a true but incomplete
answer, verified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.answering.citation_checks import without_exclusions
from app.answering.drug_criteria import TITLE_LINE
from app.answering.prompting import GenUnitAnswer, GenUnitSentence
from app.answering.relevance import PAYER_NAMES, QuestionFocus
from app.answering.units import Unit, cells
from ingest.chunking import status_of, under_criteria
from retrieval.drug_classes import DrugClass, classes_in
from retrieval.drugs import DrugMention, drug_names, mentioned_in
from retrieval.models import Passage

# What a lookup can answer; any other attribute the question asks sends it to the model.
# "coverage_criterion" is asked by "prior authorization" and "covered", which a record's
# flags and status state; "what must be tried" is approval_requirements, not here.
_RECORD_ATTRIBUTES = frozenset({"formulary_status", "quantity_limit", "coverage_criterion"})
# A second question joined to the first ("…, and what is needed to get it?"): each part
# must be one a record answers.
_CLAUSE = re.compile(r"(?:,|;|\s-\s|\band\b|\bor\b)\s*(?=(?:what|which|how|when|why|is|are|"
                     r"does|do|did|can|should|must)\b)", re.I)
_RECORD_WORDS = re.compile(r"prefer|formulary|\bpdl\b|\btier\b|status|\blist\b|prior auth|"
                           r"\bpa\b|quantity|\blimits?\b|\bql\b|step therapy|\bst\b|covered|"
                           r"restrict",
                           re.I)
# What must be done or tried, as against whether a rule applies.
_ASKS_CRITERIA = re.compile(r"\b(?:what|which)\b.{0,40}\b(?:criteria|requir\w*|tried|try|"
                            r"need(?:ed|s)?|must|documentation)\b|\bbefore\b", re.I)
_AS_OF = re.compile(r"^\s*(?:as of|on|in)\s+[\w ,/-]{3,30}?,\s*(?=(?:is|are|does|do|what)\b)",
                    re.I)
# A list asked for, unless the question names the candidates ("Lantus, Basaglar or
# Semglee").
_LIST = re.compile(r"\b(?:which|all|every|what are)\b|^\s*list\b", re.I)
_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(mg|mcg|ml|units?)\b", re.I)
_NAME_STATUS = re.compile(r"^(?P<name>[^:]{2,120}?)(?:: (?P<status>Non-Preferred|Preferred|"
                          r"Not Covered|Covered|Excluded)(?:, (?P<flags>.+?))?)?\.$", re.I)
_FLAGS = re.compile(r"^Flags: (?P<flags>.+?)\.$")
_QUANTITY = re.compile(r"^Quantity limit: (?P<qty>[^ ]*\d[^ ]*) per (?P<days>\d+) days\.$")
_EFFECTIVE = re.compile(r"^Effective (?P<date>\d{4}-\d{2}-\d{2})\.$")
_HEAD = re.compile(r"^(?P<where>.+? formulary): (?P<path>.+)$")
# Rows per drug at most: a drug's strengths or forms may sit on several rows.
MAX_ROWS_PER_DRUG = 3
# Criteria units quoted for a status at most: a page's status criteria are a few bullets.
MAX_CRITERIA_UNITS = 5


@dataclass(frozen=True)
class RecordRow:
    """One formulary record, read from its units (each kept for its citation)."""

    name: str
    status: str | None
    flags: str | None
    head: Unit
    where: str  # "Ohio Medicaid formulary"
    path: str  # "Lipotropics › Formulary"
    name_unit: Unit
    flags_unit: Unit | None
    quantity: tuple[str, str] | None
    quantity_unit: Unit | None
    effective: str | None
    effective_unit: Unit | None
    row_unit: Unit | None
    description: str | None  # the row's product cell ("Metformin HCI Tab 500 MG")
    cell: str | None  # the drug's cell as the list prints it, flags and all: "Humira (PA)"
    text: str  # all of the record's readings, to match drugs and strengths against


def is_record_question(question: str, focus: QuestionFocus) -> bool:
    """Whether a lookup answers all of the question: it asks for status, restrictions or
    a quantity limit of named drugs (or the patient's), and nothing else."""
    names = {a.name for a in focus.attributes}
    if not names or not names <= _RECORD_ATTRIBUTES:
        return False
    if not (focus.drugs or focus.patient_drugs):
        return False
    if _LIST.search(question) and not re.search(r"\bor\b", question):
        return False  # "which isotretinoin brands are preferred": the category's list
    # "As of April 2024, is …": the date qualifies the question (the request's as_of
    # picks the version searched); it is not a clause of its own.
    asked = _AS_OF.sub("", question)
    parts = [p for p in _CLAUSE.split(asked) if p.strip()]
    return all(_RECORD_WORDS.search(p) for p in parts)


def is_plan_question(question: str, focus: QuestionFocus) -> bool:
    """Whether a plan's drug record could answer all of it: a named drug, a name beside
    it that may be a plan's ("Vandelay Gold members"), and nothing asked but what a plan
    line states (tier, coverage, prior authorization, step therapy, quantity limit). A
    plan line states whether step therapy applies, which is all a plan's record says of
    it ("is there prior auth or step therapy?" was sent to the model, which gave the
    wrong tier)."""
    names = {a.name for a in focus.attributes}
    if not names or not names <= _RECORD_ATTRIBUTES | {"approval_requirements"}:
        return False
    if "approval_requirements" in names and _ASKS_CRITERIA.search(question):
        return False
    own = [n for n in focus.names if n.lower() not in PAYER_NAMES]
    return bool((focus.drugs or focus.patient_drugs) and (own or focus.plans))


def is_lookup_question(question: str, focus: QuestionFocus) -> bool:
    """Whether any lookup could answer the question: checked before a passage is read."""
    return (is_record_question(question, focus) or is_plan_question(question, focus)
            or bool(is_class_list_question(question, focus)))


def read_records(passage: Passage, units: list[Unit]) -> list[RecordRow]:
    """The records a row passage holds: one, or one per status column of a list that
    prints a preferred and a non-preferred drug side by side ("Tramadol/Acetaminophen:
    Preferred, QL." then "Nucynta, ER: Non-Preferred, QL."); none when its units are
    not a record's."""
    if passage.provenance.unit_kind != "row" or len(units) < 2:
        return []
    head = units[0]
    head_match = _HEAD.match(head.reading(passage))
    if head_match is None:
        return []
    named: list[tuple[Unit, re.Match[str]]] = []
    for i, u in enumerate(units[1:], start=1):
        m = _NAME_STATUS.match(u.reading(passage)) if u.kind == "sentence" else None
        if m is None or (i > 1 and m.group("status") is None):
            break
        named.append((u, m))
    if not named:
        return []
    flags_unit = quantity_unit = effective_unit = None
    quantity = None
    effective = None
    own_flags = None
    for u in units[1 + len(named):]:
        reading = u.reading(passage)
        if u.kind == "row":
            continue
        if m := _FLAGS.match(reading):
            own_flags, flags_unit = m.group("flags"), u
        elif m := _QUANTITY.match(reading):
            quantity, quantity_unit = (m.group("qty"), m.group("days")), u
        elif m := _EFFECTIVE.match(reading):
            effective, effective_unit = m.group("date"), u
    # The record repeats its table's header line above its row, with no rule between
    # them, so the units read both as rows: the header is the one before the last.
    rows = [u for u in units if u.kind == "row"]
    row_unit = rows[-1] if rows else None
    row_cells = cells(row_unit.source_text(passage)) if row_unit is not None else []
    description = None
    if len(rows) >= 2 and len(named) == 1:
        header = cells(rows[-2].source_text(passage))
        for label, value in zip(header[1:], row_cells[1:], strict=False):
            if re.search(r"generic name|description|product", label, re.I) and value:
                description = value
                break
    text = " ".join(u.reading(passage) for u in units)
    out = []
    for unit, m in named:
        name = m.group("name").strip()
        cell = next((c for c in row_cells if c.casefold().startswith(name.casefold())), None)
        flags = m.group("flags") or (own_flags if len(named) == 1 else None)
        out.append(RecordRow(
            name=name, status=m.group("status"), cell=cell, flags=flags, head=head,
            where=head_match.group("where"), path=head_match.group("path"), name_unit=unit,
            flags_unit=flags_unit if flags and not m.group("flags") else None,
            quantity=quantity if len(named) == 1 else None,
            quantity_unit=quantity_unit if len(named) == 1 else None,
            effective=effective, effective_unit=effective_unit, row_unit=row_unit,
            description=description, text=text))
    return out


def _has_strengths(text: str, strengths: list[tuple[str, str]]) -> bool:
    """Every strength the question names is in `text`, outside its exclusions ("all
    strengths excl 500 MG & 850 MG" is not the 500 mg row; the verifier's own reading of
    exclusions)."""
    kept = without_exclusions(text)
    return all(re.search(rf"(?<![\d.]){re.escape(amount)}\s*{re.escape(unit)}", kept, re.I)
               for amount, unit in strengths)


# Dosage forms as a question says them, and as formulary rows abbreviate them.
_FORMS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = tuple(
    (re.compile(asked, re.I), re.compile(printed, re.I)) for asked, printed in (
        (r"\btab(?:let)?s?\b", r"\btab"),
        (r"\bcap(?:sule)?s?\b", r"\bcap"),
        (r"\b(?:oral )?(?:solution|liquid|syrup)s?\b", r"\bsol(?:n|ution)?\b|\bliquid|\bsyrup"),
        (r"\b(?:injection|injectable|pens?|syringes?|vials?)\b", r"\binj|\bpen\b|syringe|vial"),
        (r"\b(?:patch|patches|transdermal)\b", r"\bpatch|transdermal"),
    ))
# A combination's strengths ("10-325", "5/325"), matched in either spelling.
_COMBINATION = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*[-/]\s*(\d+(?:\.\d+)?)(?![\d.])")


def _has_forms(text: str, question: str) -> bool:
    """Every dosage form the question names is the row's (False when it names none, so
    that no row is preferred)."""
    asked = [printed for said, printed in _FORMS if said.search(question)]
    return bool(asked) and all(printed.search(text) for printed in asked)


def _has_combination(text: str, question: str) -> bool:
    return all(re.search(rf"(?<![\d.]){re.escape(a)}\s*[-/]\s*{re.escape(b)}(?![\d.])", text)
               for a, b in _COMBINATION.findall(question))


def matching_rows(question: str, focus: QuestionFocus, passages: list[Passage],
                  units: list[list[Unit]]) -> dict[str, list[RecordRow]]:
    """Per drug asked about, its records in rank order (from the document of its best
    one), or an empty dict when a drug has none."""
    wanted: list[DrugMention] = focus.drugs or focus.patient_drugs
    strengths = _STRENGTH.findall(question)
    rows = [r for p, own in zip(passages, units, strict=False) for r in read_records(p, own)]
    found: dict[str, list[RecordRow]] = {}
    for drug in wanted:
        mine = [r for r, p in ((r, passages[r.head.passage_index]) for r in rows)
                if (mentioned_in(drug, r.name + " " + (r.description or ""))
                    or any(n.casefold() in r.name.casefold() for n in focus.names))
                and _has_strengths(r.text, strengths)
                and _has_combination(without_exclusions(r.text), question)
                and _same_payer(focus, p)]
        # "Generic lubiprostone": the rows that print the name the question uses, when
        # there are any, not its brand's (Amitiza, brand preferred over generic).
        said = DrugMention(drug.name, frozenset(
            syn for syn in drug.synonyms
            if mentioned_in(DrugMention(drug.name, frozenset({syn})), question)))
        literal = [r for r in mine if mentioned_in(said, r.name + " " + (r.description or ""))]
        if not literal and re.search(r"\bgeneric\b", question, re.I):
            return {}  # only the brand's row: it does not say what the generic's is
        mine = literal or mine
        # A name the question gives that the dictionary does not know ("Atorvaliq
        # (atorvastatin oral suspension)"): the rows that print it, if any.
        given = [r for r in mine if any(n.casefold() in r.name.casefold() for n in focus.names)]
        mine = given or mine
        # "10-325 tablets": the rows of that form, when the list prints forms (a
        # solution's row of the same strength has another limit).
        formed = [r for r in mine if _has_forms(r.description or r.name, question)]
        mine = formed or mine
        if not mine:
            if focus.patient_drugs and not focus.drugs:
                continue  # one of the patient's drugs may not be on this list
            return {}
        first = passages[mine[0].head.passage_index].provenance
        same_doc = [r for r in mine
                    if passages[r.head.passage_index].provenance.source_file
                    == first.source_file]
        distinct: dict[tuple[str, str | None, str | None], RecordRow] = {}
        for r in same_doc:
            distinct.setdefault((r.name, r.description, str(r.quantity)), r)
        found[drug.name] = list(distinct.values())[:MAX_ROWS_PER_DRUG]
    return found


def _needs_criteria(row: RecordRow) -> bool:
    """A non-preferred row whose list prints no PA flag: whether it needs a prior
    authorization, and what for, is on the payer's criteria page, not in the row (seen
    verified: "Is colesevelam preferred on Ohio Medicaid, and does it need prior
    authorization?" answered "Colesevelam is Non-Preferred" and nothing of the PA)."""
    flagged = " ".join(filter(None, (row.flags, row.cell)))
    return (row.status or "").casefold() == "non-preferred" and not _PA.search(flagged)


def status_criteria(row: RecordRow, drug: DrugMention, passages: list[Passage],
                    units: list[list[Unit]]) -> list[GenUnitSentence]:
    """The criteria the row's payer writes for its status ("Criteria > Non-Preferred",
    which ingest scopes to the page's non-preferred drugs: `applies_to`), quoted unit by
    unit from the best-ranked such section governing the drug, the row's own file first;
    [] when none was retrieved. The drug's own criteria, if any, are added after them like
    those of any answer citing the status's (drug_criteria.py)."""
    at = passages[row.head.passage_index].provenance
    found = [i for i, passage in enumerate(passages)
             if passage.provenance.payer == at.payer
             and under_criteria(passage.provenance.section_path)
             and status_of(passage.provenance.section_path[-1]) == "Non-Preferred"
             and any(mentioned_in(drug, n) for n in passage.provenance.applies_to)]
    found.sort(key=lambda i: passages[i].provenance.source_file != at.source_file)
    for i in found:
        quoted = [u for u in (units[i] if i < len(units) else [])
                  if u.kind in ("sentence", "item")
                  and not TITLE_LINE.search(u.reading(passages[i]))][:MAX_CRITERIA_UNITS]
        if quoted:
            # One sentence, as the page joins them: a bullet ends in "OR" or "AND".
            return [GenUnitSentence(text=" ".join(u.reading(passages[i]) for u in quoted),
                                    units=[u.uid for u in quoted])]
    return []


def _same_payer(focus: QuestionFocus, passage: Passage) -> bool:
    payer = (passage.provenance.payer or "").lower()
    return all(p in payer or p in passage.text.lower() for p in focus.payers)


def _ids(*units: Unit | None) -> list[str]:
    return [u.uid for u in units if u is not None]


def row_sentences(row: RecordRow, asks_quantity: bool) -> list[GenUnitSentence]:
    """The record in its own words: status (with its list, date and flags), then its
    quantity limit."""
    # The drug as its list prints it ("Nucynta ER (PA QL)"), then the legend's words.
    shown = row.cell or row.name
    named = f"{shown} ({row.description})" if row.description else shown
    cited_row = row.row_unit if (row.description or row.cell) else None
    listed = f"is {row.status} on the" if row.status else "is listed on the"
    status = f"{named} {listed} {row.where} ({row.path})"
    if row.effective:
        status += f", effective {row.effective}"
    if row.flags:
        status += f", with {row.flags}"
    # The record's own line first: its "<drug>: <status>" must not run into the
    # list's heading, which has no full stop, when the units are read together.
    out = [GenUnitSentence(text=status + ".", units=_ids(
        row.name_unit, row.flags_unit, row.effective_unit, cited_row, row.head))]
    if row.quantity and (asks_quantity or row.flags and "QL" in row.flags):
        qty, days = row.quantity
        out.append(GenUnitSentence(
            text=f"The quantity limit for {named} is {qty} per {days} days.",
            units=_ids(row.name_unit, row.quantity_unit, cited_row)))
    return out


def record_answer(question: str, focus: QuestionFocus, passages: list[Passage],
                  units: list[list[Unit]], whole: set[int] | None = None,
                  ) -> GenUnitAnswer | None:
    """The answer a lookup gives, to be verified like any other; None when the question
    is not a lookup or the retrieved records do not hold every drug it names. `whole`:
    the tables (passage indices) known to be whole, the only ones a class's list is read
    from."""
    listed = class_list_answer(question, focus, passages, units, whole or set())
    if listed is not None:
        return listed
    if is_record_question(question, focus) or is_plan_question(question, focus):
        # A plan the question names is looked up first: an Ohio row for the same drug
        # does not answer "… on the Vandelay Bronze plan?".
        on_plans = plan_answer(question, focus, passages, units)
        if on_plans is not None:
            return on_plans
    if not is_record_question(question, focus):
        return None
    found = matching_rows(question, focus, passages, units)
    if not found:
        return None
    asks_quantity = any(a.name == "quantity_limit" for a in focus.attributes)
    if asks_quantity and not any(r.quantity for rows in found.values() for r in rows):
        return None  # the limit's numbers are elsewhere (a criteria page): the model's
    governing: list[GenUnitSentence] = []
    if _PA.search(question):
        drugs = {d.name: d for d in focus.drugs or focus.patient_drugs}
        for name, rows_ in found.items():
            for r in rows_:
                if _needs_criteria(r):
                    quoted = status_criteria(r, drugs[name], passages, units)
                    if not quoted:
                        return None  # the criteria were not retrieved: the model's
                    governing += [q for q in quoted if q not in governing]
    # A combination names several drugs of one row ("hydrocodone/acetaminophen"): the
    # row is stated once.
    rows = list({r.name_unit.uid: r for drug_rows in found.values() for r in drug_rows}.values())
    sentences = [s for r in rows for s in row_sentences(r, asks_quantity)][:6]
    return GenUnitAnswer(sentences=sentences + governing)


# --- a drug on named plans (a CMS QHP drug list) -----------------------------------------

_PLAN_ITEM = re.compile(r"^-\s*plan\s+", re.I)


def plan_answer(question: str, focus: QuestionFocus, passages: list[Passage],
                units: list[list[Unit]]) -> GenUnitAnswer | None:
    """A CMS QHP drug record states tier and utilisation rules plan by plan ("- plan
    Vandelay Insurance Silver Health Plan (…), tier GENERIC, prior authorization: no,
    …"): the plan lines of the best-ranked record naming the drug (and the strength
    asked), those of the plans the question names when it names any. A plan it names
    that no line is: no lookup."""
    wanted = focus.drugs or focus.patient_drugs
    strengths = _STRENGTH.findall(question)
    for passage, own in zip(passages, units, strict=False):
        if passage.provenance.unit_kind != "row":
            continue
        items = [u for u in own if u.kind == "item"
                 and _PLAN_ITEM.match(u.source_text(passage))]
        drug = next((u for u in own if u.kind == "sentence"
                     and u.reading(passage).endswith(":")), None)
        if not items or drug is None:
            continue
        name = drug.reading(passage).rstrip(":").strip()
        if not all(mentioned_in(d, name) for d in wanted):
            continue
        if not _has_strengths(name, strengths):
            continue
        # The plan words the question gives (not the drug's own names).
        plan_words = [n for n in focus.names if n.casefold() not in name.casefold()]
        chosen = [u for u in items if all(w.casefold() in u.source_text(passage).casefold()
                                          for w in plan_words)]
        if not chosen:
            return None
        sentences = [GenUnitSentence(
            text=f"{name}: {_PLAN_ITEM.sub('plan ', u.reading(passage)).rstrip('.')}.",
            units=[drug.uid, u.uid]) for u in chosen]
        return GenUnitAnswer(sentences=sentences[:6])
    return None


# --- a class's preferred agents ---------------------------------------------------------

# A clause a status column answers: "which need a PA?" beside "which are preferred?" asks
# for the other column too (the cells print a preferred agent's own PA flag: "Repatha (PA)").
_COLUMN_CLAUSE = re.compile(r"prefer|\bpa\b|prior auth|\bformulary\b|\bpdl\b|\blist\b",
                            re.I)
_NON_PREFERRED = re.compile(r"\bnon[- ]?preferred\b", re.I)
_PA = re.compile(r"\bpa\b|prior auth", re.I)


def is_class_list_question(question: str, focus: QuestionFocus) -> list[DrugClass]:
    """The classes of "Which statins are preferred on the Ohio Medicaid PDL?" (or "…
    prefer, and which need a PA?"): a status asked of a class the class table knows
    (retrieval/drug_classes.py), no drug named, every clause one a status column answers
    ("…, and what must be tried first?" asks more than a column holds)."""
    names = {a.name for a in focus.attributes}
    if "formulary_status" not in names or not names <= _RECORD_ATTRIBUTES:
        return []
    if focus.drugs or focus.patient_drugs:
        return []
    clauses = [c for c in _CLAUSE.split(question) if c.strip()]
    if len(clauses) > 1 and not all(_COLUMN_CLAUSE.search(c) for c in clauses):
        return []
    return classes_in(question)


_NOT_NON_PREFERRED = re.compile(
    r"\b(?:without|no|not|never|avoid(?:ing)?|skip(?:ping)?)\s+(?:an?\s+|the\s+|any\s+)?"
    r"non[- ]?pref+er+ed", re.I)


def _columns(question: str) -> list[str]:
    """The status columns asked for. A PA asked without "preferred" has no column: a
    preferred agent may need one too, so the non-preferred column alone is not the
    answer. "Without a non-preferred PA" asks for the preferred column (seen verified: the
    non-preferred oral anticoagulants for "What oral anticoagulants can I prescribe
    without a non-preferred PA?")."""
    if _NOT_NON_PREFERRED.search(question):
        return ["preferred"]
    non = _NON_PREFERRED.search(question) is not None
    preferred = re.search(r"\bprefer", _NON_PREFERRED.sub("", question), re.I) is not None
    if preferred and (non or _PA.search(question)):
        return ["preferred", "non-preferred"]
    if non:
        return ["non-preferred"]
    return ["preferred"] if preferred else []


def class_list_answer(question: str, focus: QuestionFocus, passages: list[Passage],
                      units: list[list[Unit]], whole: set[int]) -> GenUnitAnswer | None:
    """The class's members in the status columns asked for, from the best-ranked whole
    status table that lists any, named as the table prints them, cited row by row."""
    classes = is_class_list_question(question, focus)
    if not classes:
        return None
    wanted = _columns(question)
    if not wanted:
        return None
    for i, (passage, own) in enumerate(zip(passages, units, strict=False)):
        if passage.provenance.unit_kind != "table" or i not in whole:
            continue
        members: dict[str, list[tuple[Unit, str]]] = {w: [] for w in wanted}
        for u in own:
            if u.kind != "row" or not u.header:
                continue
            row = cells(u.source_text(passage))
            for w in wanted:
                column = next((j for j, h in enumerate(u.header)
                               if h.strip().casefold() == w), None)
                if column is None or column >= len(row) or not row[column]:
                    continue
                cell = row[column]
                if any(c.has_member(g) for c in classes for g in drug_names(cell)):
                    members[w].append((u, cell))
        if not members[wanted[0]]:
            continue
        where = f"{passage.provenance.payer} formulary" if passage.provenance.payer \
            else "formulary"
        path = " › ".join(passage.provenance.section_path)
        sentences = []
        for w, found in members.items():
            if not found:
                continue
            status = "Preferred" if w == "preferred" else "Non-Preferred"
            # A drug on several rows (one per strength) is named once, each row cited.
            agents = ", ".join(dict.fromkeys(cell for _, cell in found))
            sentences.append(GenUnitSentence(
                text=f"{status} on the {where} ({path}): {agents}.",
                units=[u.uid for u, _ in found]))
        return GenUnitAnswer(sentences=sentences)
    return None
