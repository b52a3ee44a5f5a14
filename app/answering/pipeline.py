"""Answering, top to bottom: retrieve → decide whether the sources can answer → cut the
passages into numbered units → generate a structured answer that cites unit ids →
verify every sentence against its units → check that the cited evidence addresses the
question → assemble the response.

Outcomes: `verified` (every sentence supported, the evidence addresses the question);
`partially_verified` / `unverified`; `off_topic` (supported sentences whose evidence does
not address the question: never shown as an answer); `evidence_only` (no generated
sentence verified, but retrieved units address the question: returned verbatim); and
`abstained` (nothing retrieved addresses it, or a drug it names is in no passage).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.answering.citation_checks import (
    SWAP_REASON,
    content_words,
    record_context,
    section_populations,
    unit_context,
    vacuous,
    verify_sentence,
    verify_units,
)
from app.answering.condition_warnings import omitted_warning
from app.answering.continuation import MAX_CONTINUATIONS, continuing_units, unsaid_rest
from app.answering.contraindications import omitted_contraindication
from app.answering.document_facts import (
    RELEASE_FIELD,
    asked_document,
    is_release_field,
    is_release_question,
    release_answer,
)
from app.answering.drug_criteria import omitted_drug_criteria
from app.answering.fhir_context import describe, parse_bundle, retrieval_query
from app.answering.injection import looks_like_instructions
from app.answering.model_verifiers import ExtraVerifier, apply_verifiers
from app.answering.models import (
    AnswerSentence,
    AnswerStatus,
    AskRequest,
    AskResponse,
    CitationStatus,
    EvidenceQuote,
    PatientContext,
)
from app.answering.phi import phi_kinds
from app.answering.prompting import (
    GenAnswer,
    GenUnitAnswer,
    build_messages,
    build_unit_messages,
    label,
    unit_answer_schema,
    without_header,
)
from app.answering.record_answer import (
    is_class_list_question,
    is_lookup_question,
    record_answer,
)
from app.answering.relevance import (
    Evidence,
    QuestionFocus,
    absent_subjects,
    addresses,
    answer_misses,
    class_of_named,
    populations_in,
    question_focus,
)
from app.answering.units import Unit, cells, claims, split_passage
from app.core.settings import Settings
from app.llm.client import MalformedOutput, parse_answer, parse_unit_answer
from app.llm.router import GeneratorRouter
from app.security.api_keys import Principal
from retrieval.context import ContextAssembler
from retrieval.drug_classes import class_members, classes_in
from retrieval.drugs import drug_names, mentioned_in
from retrieval.models import Passage
from retrieval.search import Retriever

log = logging.getLogger("medcite.answer")

# The stream's event before generation starts: the API's admission point.
GENERATE = "generate"
# What an answer's `model` says when no model wrote it: a formulary lookup.
RECORD_LOOKUP = "the formulary's records (lookup, no generation)"
# … or a document's release field (document_facts.py).
RELEASE_LOOKUP = "the document's release field (lookup, no generation)"

ABSTAIN_NO_PASSAGES = (
    "No passage in the knowledge base you can access is relevant to this question."
)


@dataclass(frozen=True)
class StreamEvent:
    event: str  # passages | generate (internal) | token | answer
    data: dict[str, Any]


@dataclass
class Draft:
    """What the pipeline has so far; turned into an AskResponse at the end."""

    request: AskRequest
    passages: list[Passage]
    patient: PatientContext | None
    timings: dict[str, float]
    excluded: list[str] = field(default_factory=list)
    # Citations by selection: each passage's units, and which of them the prompt shows.
    units: list[list[Unit]] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    # The asker's access groups: whatever is read after retrieval is read with them.
    access_groups: list[str] = field(default_factory=list)
    # A lookup was tried (prepare does it before the admission gate): not again.
    lookup_tried: bool = False
    # The model was asked again with the addressing units alone: not a third time.
    second_look: bool = False

    @property
    def unit_index(self) -> dict[str, tuple[Unit, Passage]]:
        return {u.uid: (u, self.passages[u.passage_index])
                for own in self.units for u in own}

    @property
    def phi(self) -> bool:
        """Whether the prompt may carry PHI: it decides which endpoints may see it."""
        return self.patient is not None or bool(phi_kinds(self.request.question))


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def answer_status(sentences: list[AnswerSentence]) -> AnswerStatus:
    statuses = [s.status for s in sentences]
    if statuses and all(s is CitationStatus.supported for s in statuses):
        return AnswerStatus.verified
    if any(s in (CitationStatus.supported, CitationStatus.partial) for s in statuses):
        return AnswerStatus.partially_verified
    return AnswerStatus.unverified


def unsupported_reason(question: str, passages: list[Passage], min_relevance: float) -> str | None:
    """Why the retrieved passages cannot answer, decided before spending a generation."""
    if not passages:
        return ABSTAIN_NO_PASSAGES
    corpus = " ".join(" ".join([p.text, p.provenance.title, *p.provenance.section_path])
                      for p in passages)
    # A class ("lipotropic agents", "GLP-1 receptor agonists") is not a drug: its members
    # are not listed by the dictionary, so a passage naming them would not count.
    # A guideline's or payer's statement about the drug's class is about the drug
    # ("avoid … benzodiazepines" for alprazolam), unless a dose is asked.
    focus = question_focus(question)
    absent = [d.name for d in focus.drugs
              if not mentioned_in(d, corpus)
              and not (focus.class_stands_for_drug and class_of_named(d, corpus))]
    # A substance the drug dictionary does not know ("the dose of danuglipron"): the
    # sources must still name it, else any gout or diabetes passage would be answered from.
    absent += absent_subjects(focus, corpus)
    if absent:
        return "The retrieved sources do not mention " + ", ".join(absent) + "."
    # Hybrid ranks by fusion, so the best similarity is not necessarily the first. A
    # short question that names its drug by brand has little meaning for the embedder
    # to match ("Does Welchol need a PA for Ohio Medicaid?": 0.346, with the right rows
    # retrieved by name): when the sources name every drug it asks about, the relevance
    # test after generation decides, not the similarity floor.
    if max(p.score for p in passages) < min_relevance and not focus.drugs:
        return ABSTAIN_NO_PASSAGES
    return None


@dataclass
class AnswerService:
    settings: Settings
    retriever: Retriever
    generator: GeneratorRouter
    # Widens fragment hits with their section's neighbouring chunks (retrieval/context.py).
    context: ContextAssembler | None = None
    # Optional NLI / LLM-judge verifiers (app/answering/model_verifiers.py): they only lower
    # statuses.
    verifiers: list[ExtraVerifier] = field(default_factory=list)

    def ask(self, request: AskRequest, principal: Principal) -> AskResponse:
        draft, early = self.prepare(request, principal)
        return early if early is not None else self.generate_answer(draft)

    def prepare(
        self, request: AskRequest, principal: Principal
    ) -> tuple[Draft, AskResponse | None]:
        """Everything before the model: retrieval, then an abstention decided without it
        or a lookup's answer (returned second, else None). Split from `generate_answer`
        so the API can meter only generation through its admission gate: a lookup takes
        milliseconds and must not queue behind a generation (seen: two lookups shed with
        503 while the one-slot CPU generator wrote a 50 s answer)."""
        draft = self.retrieve(request, principal)
        early = self.precheck(draft)
        if early is None and self.by_units:
            early = self.looked_up(draft)
        return draft, early

    def warm_up(self) -> bool:
        """The generator reads the fixed instructions before the first question (see
        GeneratorRouter.warm_up); every answer's prompt starts with them."""
        messages = (build_unit_messages("", [], [], set()) if self.by_units
                    else build_messages("", [], self.settings.context_chars))
        return self.generator.warm_up(messages)

    @property
    def by_units(self) -> bool:
        return self.settings.citations == "units"

    def generate_answer(self, draft: Draft) -> AskResponse:
        """Generate, then verify every citation."""
        if self.by_units:
            return self._generate_by_units(draft)
        t = time.perf_counter()
        try:
            generated = self.generator.generate(self.messages(draft), phi=draft.phi)
        except MalformedOutput:
            draft.timings["generation"] = _ms(t)
            return self._abstain(draft, "The model did not return a well-formed answer.")
        draft.timings["generation"] = _ms(t)
        return self.complete(draft, generated)

    def stream(self, request: AskRequest, principal: Principal) -> Iterator[StreamEvent]:
        """The same pipeline as `ask`, reporting as it goes: the passages, the model's
        raw output as it is generated, then the verified answer (the only part to trust)."""
        draft = self.retrieve(request, principal)
        yield StreamEvent("passages", {"passages": [p.model_dump() for p in draft.passages]})
        early = self.precheck(draft)
        if early is None and self.by_units:
            early = self.looked_up(draft)
        if early is not None:
            yield StreamEvent("answer", early.model_dump(mode="json"))
            return
        # The model from here on: the API takes its admission slot on this event (never
        # sent to the client), so abstentions and lookups do not wait for one.
        yield StreamEvent(GENERATE, {})
        t = time.perf_counter()
        if self.by_units:
            yield from self._stream_by_units(draft, t)
            return
        messages = self.messages(draft)

        def finish(raw: str) -> AskResponse:
            try:
                generated = parse_answer(raw)
            except MalformedOutput:
                try:
                    generated = self.generator.generate(messages, phi=draft.phi)
                except MalformedOutput:
                    draft.timings["generation"] = _ms(t)
                    return self._abstain(draft, "The model did not return a well-formed answer.")
            draft.timings["generation"] = _ms(t)
            return self.complete(draft, generated)

        yield from _relay(self.generator.stream(messages, phi=draft.phi), finish)

    def retrieve(self, request: AskRequest, principal: Principal) -> Draft:
        t = time.perf_counter()
        patient = parse_bundle(request.fhir_bundle) if request.fhir_bundle else None
        # "Is my patient's statin preferred?" searches with the patient's drugs too.
        query = retrieval_query(request.question, patient) if patient else request.question
        found = self.retriever.search(
            query,
            access_groups=principal.groups,
            filters=request.filters,
            limit=request.top_k or self.settings.top_k,
        )
        passages = [p for p in found if not looks_like_instructions(p.text)]
        excluded = [p.id for p in found if p not in passages]
        if self.context is not None:
            passages = self.context.assemble(
                passages, principal.groups, keep=lambda text: not looks_like_instructions(text)
            )
        if excluded:
            log.warning("passages with embedded instructions excluded",
                        extra={"passage_ids": excluded})
        draft = Draft(request, passages, patient, {"retrieval": _ms(t)})
        draft.excluded = excluded
        draft.access_groups = list(principal.groups)
        return draft

    def precheck(self, draft: Draft) -> AskResponse | None:
        """An abstention decided before generation, or None to go on."""
        reason = unsupported_reason(
            draft.request.question, draft.passages, self.settings.min_relevance
        )
        return self._abstain(draft, reason) if reason else None

    def messages(self, draft: Draft) -> list[dict[str, str]]:
        return build_messages(
            draft.request.question, draft.passages, self.settings.context_chars,
            describe(draft.patient) if draft.patient else None,
        )

    def complete(self, draft: Draft, generated: GenAnswer) -> AskResponse:
        if generated.abstain or not generated.sentences:
            return self._abstain(
                draft, generated.reason.strip() or "The sources do not answer this question."
            )
        t = time.perf_counter()
        by_label = {label(i): p for i, p in enumerate(draft.passages)}
        sentences = [
            verify_sentence(
                s.text.strip(),
                [(c.passage.strip().strip("[]"), c.quote) for c in s.citations],
                by_label,
            )
            for s in generated.sentences
            if s.text.strip()
        ]
        sentences = [apply_verifiers(s, by_label, self.verifiers, draft.phi) for s in sentences]
        # Citations travel with labels (P1) inside the model; the API speaks passage ids.
        for sentence in sentences:
            for c in sentence.citations:
                if c.passage_id in by_label:
                    c.passage_id = by_label[c.passage_id].id
        draft.timings["verification"] = _ms(t)
        return self._finish(draft, sentences)

    # --- citations by selection -------------------------------------------------------

    def unit_messages(self, draft: Draft) -> tuple[list[dict[str, str]], dict[str, object]]:
        """The prompt (only the units worth reading, within the budget) and the answer
        schema whose enum holds exactly the ids shown."""
        if not draft.units:  # split already when a lookup was tried
            draft.units = [split_passage(p, i) for i, p in enumerate(draft.passages)]
        draft.shown = select_units(draft.request.question, draft.passages, draft.units,
                                   self.settings.prompt_unit_chars)
        messages = build_unit_messages(
            draft.request.question, draft.passages, draft.units, set(draft.shown),
            describe(draft.patient) if draft.patient else None,
        )
        return messages, unit_answer_schema(draft.shown)

    def looked_up(self, draft: Draft) -> AskResponse | None:
        """A formulary question answered from its records (record_answer.py), when that
        answer verifies and addresses the question; else None (the model)."""
        if not self.settings.record_answers or draft.lookup_tried:
            return None
        draft.lookup_tried = True
        t = time.perf_counter()
        question = draft.request.question
        focus = question_focus(question, draft.patient)
        if is_release_question(question, focus):
            return self._released(draft, t)
        if not is_lookup_question(question, focus):
            return None  # most questions: nothing read, nothing split
        whole: set[int] = set()
        if is_class_list_question(question, focus) and self.context is not None:
            # A class's list from part of a table would be verified and incomplete:
            # only a table read whole, with the whole of it then shown and cited.
            for i, p in enumerate(draft.passages):
                if p.provenance.unit_kind == "table":
                    full = self.context.whole_section(p, draft.access_groups)
                    if full is not None:
                        draft.passages[i] = full
                        whole.add(i)
        draft.units = [split_passage(p, i) for i, p in enumerate(draft.passages)]
        generated = record_answer(question, focus, draft.passages, draft.units, whole)
        return self._verified_lookup(draft, generated, RECORD_LOOKUP, t)

    def _verified_lookup(self, draft: Draft, generated: GenUnitAnswer | None, model: str,
                         t: float) -> AskResponse | None:
        """A lookup's answer through the same verification and relevance test as the
        model's; kept only when `verified`, else None (the model answers)."""
        if generated is None:
            return None
        answer = self.complete_units(draft, generated)
        if answer.status is not AnswerStatus.verified:
            log.info("lookup did not verify; asking the model",
                     extra={"status": answer.status.value})
            draft.timings.pop("verification", None)
            return None
        draft.timings["lookup"] = _ms(t)
        return answer.model_copy(update={"model": model, "answered_from": "records",
                                         "timings_ms": dict(draft.timings)})

    def _released(self, draft: Draft, t: float) -> AskResponse | None:
        """The asked document's release field, quoted (document_facts.py), when it
        verifies and addresses the question; else None (the model). The field is fetched
        from the document's version when retrieval ranked other fields above it."""
        doc = asked_document(draft.passages)
        if doc is None:
            return None
        field_at = next((i for i, p in enumerate(draft.passages)
                         if p.provenance.doc_id == doc.provenance.doc_id
                         and is_release_field(p)), None)
        if field_at is None and self.context is not None:
            fetched = self.context.field_of(doc, RELEASE_FIELD, draft.access_groups)
            if fetched is not None:
                draft.passages.append(fetched)
                field_at = len(draft.passages) - 1
        if field_at is None:
            return None
        draft.units = [split_passage(p, i) for i, p in enumerate(draft.passages)]
        generated = release_answer(draft.passages[field_at], draft.units[field_at])
        return self._verified_lookup(draft, generated, RELEASE_LOOKUP, t)

    def _generate_by_units(self, draft: Draft) -> AskResponse:
        t = time.perf_counter()
        answer = self.looked_up(draft)
        if answer is not None:
            return answer
        messages, schema = self.unit_messages(draft)
        try:
            generated = self.generator.generate_units(messages, schema, set(draft.shown),
                                                      phi=draft.phi)
        except MalformedOutput:
            draft.timings["generation"] = _ms(t)
            return self.fallback(draft, "The model did not return a well-formed answer.")
        draft.timings["generation"] = _ms(t)
        return self.second_look(draft, self.complete_units(draft, generated))

    def second_look(self, draft: Draft, answer: AskResponse) -> AskResponse:
        """An evidence-only answer: the model asked once more with only the units that
        address the question and their neighbours (a short prompt), kept when it verifies
        at least in part; else the evidence-only answer stands. Held-out questions came
        back evidence_only with every key fact quoted, the model having written from
        other units of the same passages (an induction dose for "how long before
        stopping", another drug's row)."""
        if (answer.status is not AnswerStatus.evidence_only or not self.settings.second_look
                or draft.second_look):
            return answer
        draft.second_look = True
        t = time.perf_counter()
        focused = around_units([q.unit_id for q in answer.evidence], draft.units)
        draft.shown = focused
        messages = build_unit_messages(
            draft.request.question, draft.passages, draft.units, set(focused),
            describe(draft.patient) if draft.patient else None,
        )
        try:
            generated = self.generator.generate_units(messages, unit_answer_schema(focused),
                                                      set(focused), phi=draft.phi)
        except MalformedOutput:
            return answer
        draft.timings["second_look"] = _ms(t)
        again = self.complete_units(draft, generated)
        if again.status in (AnswerStatus.verified, AnswerStatus.partially_verified):
            again.timings_ms = {**again.timings_ms, **draft.timings}
            return again
        answer.timings_ms = {**answer.timings_ms, "second_look": draft.timings["second_look"]}
        return answer

    def _stream_by_units(self, draft: Draft, t: float) -> Iterator[StreamEvent]:
        answer = self.looked_up(draft)
        if answer is not None:
            yield StreamEvent("answer", answer.model_dump(mode="json"))
            return
        messages, schema = self.unit_messages(draft)

        def finish(raw: str) -> AskResponse:
            try:
                generated = parse_unit_answer(raw, set(draft.shown))
            except MalformedOutput:
                draft.timings["generation"] = _ms(t)
                return self.fallback(draft, "The model did not return a well-formed answer.")
            draft.timings["generation"] = _ms(t)
            return self.second_look(draft, self.complete_units(draft, generated))

        yield from _relay(self.generator.stream(messages, phi=draft.phi, schema=schema), finish)

    def complete_units(self, draft: Draft, generated: GenUnitAnswer) -> AskResponse:
        if generated.abstain or not generated.sentences:
            return self.fallback(
                draft, generated.reason.strip() or "The sources do not answer this question.")
        t = time.perf_counter()
        index = draft.unit_index
        shown = [index[u] for u in draft.shown if u in index]
        question = draft.request.question
        said = [(claim, s.units) for s in generated.sentences
                for claim in claims(without_header(s.text, draft.passages).strip())]
        sentences = [
            recited(verify_units(text, [index[u] for u in dict.fromkeys(units) if u in index],
                                 question), shown, question)
            for text, units in said if text
        ]
        by_id = {p.id: p for p in draft.passages}
        sentences = [apply_verifiers(s, by_id, self.verifiers, draft.phi) for s in sentences]
        echoes = [s for s in sentences if repeats_question(s.text, question)]
        sentences = [s for s in sentences if s not in echoes]
        draft.timings["verification"] = _ms(t)
        ok = [s for s in sentences if s.status in (CitationStatus.supported,
                                                   CitationStatus.partial)]
        if not ok:
            return self.fallback(
                draft, "No sentence of the generated answer could be verified against the "
                "sources.", removed=sentences + echoes)
        focus = question_focus(draft.request.question, draft.patient)
        problems = addresses(focus, self._evidence_of(draft, ok)) or answer_misses(
            question, focus, " ".join(s.text for s in ok))
        if problems:
            return self.fallback(
                draft, "The generated answer does not address the question: "
                + "; ".join(problems) + ".", removed=sentences, off_topic=True, focus=focus)
        cited = {c.unit_id for s in ok for c in s.citations if c.unit_id}
        # First: what the patients asked about must not do, then the warning for the
        # condition asked about, before the rest.
        for kind, omitted, what in (
            ("warning", omitted_warning(question, draft.passages, draft.units, cited,
                                        focus.conditions),
             "the warning the sources state for the condition asked about"),
            ("contraindication",
             omitted_contraindication(question, draft.passages, draft.units, cited),
             "the contraindication the sources state for the patients asked about"),
            # Last: the payer's criteria for the drug itself, after the status's.
            ("criteria", omitted_drug_criteria(focus, draft.passages, draft.units, cited,
                                               " ".join(s.text for s in ok)),
             "the criteria the payer writes for the drug asked about"),
        ):
            if not omitted:
                continue
            added = verify_units(" ".join(u.reading(p) for u, p in omitted), omitted, question)
            if added.status is CitationStatus.supported:
                for c in added.citations:
                    c.reasons.append(f"quoted by the server: {what}, which the generated "
                                     "answer left out")
                added.quoted_by_server = True
                added.quoted_as = kind  # type: ignore[assignment]
                sentences.insert(len(sentences) if kind == "criteria" else 0, added)
        self._continue(draft, focus, sentences)
        untold = untold_units(draft, ok) if asks_for_all(draft.request.question) else []
        rest = list({u.uid: (u, p) for _, (u, p) in untold}.values())
        quoted = verify_units(" ".join(u.reading(p) for u, p in rest), rest, question) \
            if rest else None
        completed = quoted is not None and quoted.status is CitationStatus.supported
        if quoted is not None and completed:
            # A list question answered with some of the items its cited table or list
            # holds: the rest in the source's own words, so the answer is the whole list.
            for c in quoted.citations:
                c.reasons.append("quoted by the server: items of the cited list the "
                                 "generated answer did not name")
            quoted.quoted_by_server = True
            quoted.quoted_as = "list_rest"
            sentences.append(quoted)
        answer = self._finish(draft, sentences)
        if untold and not completed:
            names = [n for n, _ in untold]
            # Not quotable as they stand: say the list is partial.
            answer.status_reason = (
                f"The answer names some of the items its cited table or list holds; not "
                f"named: {', '.join(names[:10])}" + (" …" if len(names) > 10 else "") + ".")
        return answer

    def _continue(self, draft: Draft, focus: QuestionFocus,
                  sentences: list[AnswerSentence]) -> None:
        """Quote, after the sentence it continues, the source's next (or previous)
        statement on the question that the answer left out (continuation.py)."""
        # The model's own supported sentences: a server quote is already the source's.
        supported = [s for s in sentences
                     if s.status is CitationStatus.supported and not s.quoted_by_server]
        cited = list(dict.fromkeys(c.unit_id for s in supported for c in s.citations
                                   if c.unit_id))
        # What the answer says: its sentences that stand (an unsupported one may be
        # removed by strict mode, and then says nothing).
        said = " ".join(s.text for s in sentences
                        if s.status in (CitationStatus.supported, CitationStatus.partial))
        found = unsaid_rest(draft.request.question, draft.units, draft.passages, cited, said)
        found += [(anchor, unit.reading(passage), unit, passage) for anchor, unit, passage in
                  continuing_units(
                      draft.request.question, draft.units, draft.passages, cited, said,
                      lambda units: not addresses(focus, evidence_from(units, draft.passages)))]
        for anchor, text, unit, passage in reversed(found[:MAX_CONTINUATIONS]):
            added = verify_units(text, [(unit, passage)], draft.request.question)
            if added.status is not CitationStatus.supported:
                continue
            for c in added.citations:
                c.reasons.append("quoted by the server: the source's statement in or "
                                 "right before or after a cited unit, on the question, which "
                                 "the generated answer left out")
            added.quoted_by_server = True
            added.quoted_as = "continuation"
            at = max((i for i, s in enumerate(sentences)
                      if any(c.unit_id == anchor for c in s.citations)), default=len(sentences) - 1)
            sentences.insert(at + 1, added)

    def _evidence_of(self, draft: Draft, sentences: list[AnswerSentence]) -> Evidence:
        index = draft.unit_index
        cited = [index[c.unit_id] for s in sentences for c in s.citations
                 if c.unit_id in index]
        return evidence_from(cited, draft.passages)

    def fallback(
        self, draft: Draft, reason: str, removed: list[AnswerSentence] | None = None,
        off_topic: bool = False, focus: QuestionFocus | None = None,
    ) -> AskResponse:
        """No verified answer to the question: the units that address it, verbatim
        (evidence_only); else off_topic when the model's supported sentences missed the
        question; else an abstention."""
        focus = focus or question_focus(draft.request.question, draft.patient)
        quotes = addressing_units(draft.request.question, focus, draft)
        base = self._abstain(draft, reason, removed=removed)
        if quotes:
            return base.model_copy(update={
                "status": AnswerStatus.evidence_only, "abstained": False,
                "status_reason": reason, "evidence": quotes,
            })
        if off_topic:
            return base.model_copy(update={"status": AnswerStatus.off_topic,
                                           "status_reason": reason})
        return base

    def _finish(self, draft: Draft, sentences: list[AnswerSentence]) -> AskResponse:
        ok = {CitationStatus.supported, CitationStatus.partial}
        if not any(s.status in ok for s in sentences):
            return self._abstain(
                draft,
                "No sentence of the generated answer could be verified against the sources.",
                removed=sentences,
            )
        kept, removed = sentences, []
        if draft.request.strict:
            kept = [s for s in sentences if s.status in ok]
            removed = [s for s in sentences if s.status not in ok]
        return AskResponse(
            question=draft.request.question,
            status=answer_status(sentences),
            abstained=False,
            sentences=kept,
            removed_sentences=removed,
            passages=draft.passages,
            patient=draft.patient,
            excluded_passage_ids=draft.excluded,
            model=self.generator.model,
            timings_ms=draft.timings,
        )

    def _abstain(
        self, draft: Draft, reason: str, removed: list[AnswerSentence] | None = None
    ) -> AskResponse:
        return AskResponse(
            question=draft.request.question,
            status=AnswerStatus.abstained,
            abstained=True,
            abstain_reason=reason,
            sentences=[],
            removed_sentences=removed or [],
            passages=draft.passages,
            patient=draft.patient,
            excluded_passage_ids=draft.excluded,
            model=self.generator.model,
            timings_ms=draft.timings,
        )


_ASKS_FOR_ALL = re.compile(
    r"\b(all|every|list|which\b.{0,60}\b(are|is|need|require)|what are the)\b", re.I)


def asks_for_all(question: str) -> bool:
    return bool(_ASKS_FOR_ALL.search(question))


def _item_name(unit: Unit, passage: Passage) -> str:
    """What a table row or list item is about: its first cell or its first words."""
    reading = unit.reading(passage)
    first = reading.split(" | ", 1)[0]
    if unit.kind == "row" and ": " in first:
        first = first.split(": ", 1)[1]
    return " ".join(first.lstrip("-*• ").split()[:4])


def _first_key(name: str) -> str:
    return name.split(" ")[0].casefold() if name else ""


def _table(rows: list[tuple[Unit, Passage]]) -> list[list[str]]:
    return [[" ".join(c.split()) for c in cells(u.source_text(p))] for u, p in rows]


def _row_items(rows: list[tuple[Unit, Passage]], columns: list[int]) -> list[str]:
    """A table's items, read from the columns the answer draws on (`_row_columns`)."""
    return [r[j] for r in _table(rows) for j in columns if j < len(r) and r[j]]


def _row_columns(rows: list[tuple[Unit, Passage]], text: str) -> list[int]:
    """The columns of a table the answer draws on: its Preferred column's agents for
    "which are preferred?", not the Non-Preferred cells beside them (seen: a complete
    list of preferred PPIs reported as leaving out rabeprazole)."""
    table = _table(rows)
    width = max((len(r) for r in table), default=0)
    def named_by(key: Callable[[str], str]) -> list[int]:
        return [sum(1 for r in table if j < len(r) and len(key(r[j])) >= 4
                    and key(r[j]) in text) for j in range(width)]

    # Cells named as the table prints them ("Lansoprazole Cap", not the other column's
    # "Lansoprazole ODT"), else by their first word (a model's "lansoprazole").
    named = named_by(lambda c: " ".join(c.casefold().split()[:2]))
    if not any(named):
        named = named_by(_first_key)
    # A column counts when the answer names as many of its cells as half the best
    # column's: one agent shared by two columns does not make the other the answer's.
    best = max(named, default=0)
    return [j for j in range(width) if best and named[j] * 2 >= best] or [0]


def untold_items(draft: Draft, sentences: list[AnswerSentence]) -> list[str]:
    """Rows or items of the tables and lists the answer cites that it does not name (of
    the class the question names, when it names one)."""
    return [name for name, _ in untold_units(draft, sentences)]


def untold_units(draft: Draft, sentences: list[AnswerSentence]
                 ) -> list[tuple[str, tuple[Unit, Passage]]]:
    """`untold_items` with the row or item unit each is read from."""
    index = draft.unit_index
    cited = [index[c.unit_id] for s in sentences for c in s.citations if c.unit_id in index]
    text = " ".join(s.text for s in sentences).casefold()
    groups = {(u.passage_index, u.kind, u.header) for u, _ in cited if u.kind in ("row", "item")}
    named: list[tuple[str, tuple[Unit, Passage]]] = []
    for own in draft.units:
        members = [(u, draft.passages[u.passage_index]) for u in own
                   if (u.passage_index, u.kind, u.header) in groups]
        # A status table's rows are read by column; other rows and list items by their
        # first cell or words.
        tabled = [(u.kind == "row" and len(u.header) >= 2, u, p) for u, p in members]
        rows = [(u, p) for t, u, p in tabled if t]
        columns = _row_columns(rows, text) if rows else []
        for row in rows:
            named += [(item, row) for item in _row_items([row], columns)]
        named += [(_item_name(u, p), (u, p)) for t, u, p in tabled if not t]
    untold: list[tuple[str, tuple[Unit, Passage]]] = []
    for name, unit in named:
        key = _first_key(name)
        if len(key) >= 4 and key not in text and name not in {n for n, _ in untold}:
            untold.append((name, unit))
    asked = classes_in(draft.request.question)
    if asked:
        # "Which SGLT2 inhibitors are preferred?" cites rows of a table that lists other
        # classes too: only the asked class's members are items left untold.
        untold = [(n, u) for n, u in untold
                  if any(c.has_member(g) for c in asked for g in drug_names(n))]
    return untold


# A sentence at most this share of whose words the question does not already say: none.
ECHO_NEW_WORDS = 0.0


def repeats_question(sentence: str, question: str) -> bool:
    """A sentence that restates the question or its premise ("Her LDL is still above
    goal on her current statin."; "Serious infections and malignancy are listed as
    warnings and precautions." for "Apart from serious infections and malignancy, what
    warnings … does the label list?"): what the asker said, not an answer, whatever
    passage holds the same words. Seen verified, and as the first sentence of a
    partially verified answer."""
    words = content_words(sentence)
    if len(words) < 3:
        return False
    if set(_NUMBER.findall(sentence)) - set(_NUMBER.findall(question)):
        return False  # "… added to the Humira label in 9/2012." answers "When was …?"
    # A yes/no question's answer restates it ("Is Repatha preferred …?" — "Repatha is
    # preferred …"): only a premise, or a question asking what, which or how, is echoed.
    parts = [p.strip() for p in re.split(r"(?<=[.?!])\s+", question) if p.strip()]
    echoed = [p for p in parts if not p.endswith("?") or _WH.match(p)]
    return any(len(words - content_words(p)) <= ECHO_NEW_WORDS * len(words) for p in echoed)


_NUMBER = re.compile(r"\d+(?:[./,]\d+)*")
_WH = re.compile(r"^\W*(?:[\w,'-]+\s+){0,8}?(?:what|which|how|when|where|who|why)\b", re.I)


def recited(sentence: AnswerSentence, shown: list[tuple[Unit, Passage]],
            question: str = "") -> AnswerSentence:
    """A sentence its cited units do not support, but one other unit of the prompt does
    on its own (small models state one unit and cite its neighbour): cited to that unit,
    with a reason saying so. Every check applies to the new unit as to any citation; a
    sentence no single shown unit supports stays as it was."""
    if sentence.status is not CitationStatus.unsupported or not sentence.citations:
        return sentence
    if any(r.startswith(SWAP_REASON) for c in sentence.citations for r in c.reasons):
        # A copy of its cited unit with a word changed: another unit that happens to
        # cover most of its words does not make the change true.
        return sentence
    was = ", ".join(c.unit_id or "?" for c in sentence.citations)
    for unit, passage in shown:
        candidate = verify_units(sentence.text, [(unit, passage)], question)
        if candidate.status is CitationStatus.supported:
            for c in candidate.citations:
                c.reasons.append(f"the model cited {was}; the sentence is stated by {unit.uid}")
            return candidate
    return sentence


def _relay(tokens: Iterator[str], finish: Callable[[str], AskResponse]) -> Iterator[StreamEvent]:
    """Each token as it comes, then the verified answer built from all of them."""
    chunks: list[str] = []
    for delta in tokens:
        chunks.append(delta)
        yield StreamEvent("token", {"text": delta})
    yield StreamEvent("answer", finish("".join(chunks)).model_dump(mode="json"))


def _overlap(question_words: set[str], text: str) -> int:
    return len(question_words & content_words(text))


# A question whose answer is a number (a dose, limit, threshold, interval, date).
_NUMERIC_ASK = re.compile(
    r"\b(?:dose|doses|dosage|dosing|how (?:much|many|often|long)|limits?|quantity|maximum|"
    r"minimum|threshold|cut-?off|target|goal|level|frequency|interval|when|age|days?|"
    r"weeks?|months?|years?|mg|percent|%)\b", re.I)
_DIGIT = re.compile(r"\d")


def select_units(
    question: str, passages: list[Passage], units: list[list[Unit]], budget_chars: int
) -> list[str]:
    """Ids of the units the prompt shows: first those sharing words with the question
    (in passage rank order), then the rest, until the character budget is spent; at
    least the first passage's first unit. Shown in document order."""
    words = content_words(question)
    ordered = [u for own in units for u in own]
    # A unit naming a drug the question names, or a member of a class it names (a
    # "Rizatriptan" row for "which triptans"), ranks with the best word matches.
    wanted = set(drug_names(question)) | {g for c in classes_in(question)
                                          for g in class_members(c.key)}

    numeric = _NUMERIC_ASK.search(question) is not None

    def score(u: Unit) -> tuple[int, int]:
        p = passages[u.passage_index]
        reading = u.reading(p)
        overlap = min(_overlap(words, reading + " " + unit_context(p)), 3)
        if overlap < 3 and wanted and wanted & set(drug_names(reading)):
            overlap = 3
        # A question answered by a number (dose, limit, threshold) prefers units that
        # state one: the ceiling of key facts reaching the prompt went 188 -> 190 of
        # 222 on eval/corpora_questions.jsonl with it (own-words-first scoring: 184).
        if numeric and _DIGIT.search(reading):
            overlap += 1
        return (-overlap, u.passage_index)

    # A section about one population ("2.2 ... in Pediatric Patients (10-17 years)",
    # "8.1 Pregnancy") is left out when the question names no such population: the 1.5B
    # model took the children's dose sentence for the answer to "what is the starting
    # dose?" (the verifier now rejects that; better not to offer it). Kept when nothing
    # else is left.
    asked = {p.name for p in populations_in(question)}
    unasked = {i for i, p in enumerate(passages) if section_populations(p) - asked}
    scoped = {u.uid for u in ordered if u.passage_index in unasked}
    if len(scoped) < len(ordered):
        ordered = [u for u in ordered if u.uid not in scoped]
    scored = sorted(ordered, key=score)
    keep: set[str] = set()
    used = 0
    for u in scored:
        size = len(u.reading(passages[u.passage_index])) + len(u.uid) + 4
        if used + size > budget_chars and keep:
            continue
        keep.add(u.uid)
        used += size
    return [u.uid for u in ordered if u.uid in keep]


def _codes(passage: Passage) -> frozenset[str]:
    code = getattr(passage.provenance, "section_code", None)
    return frozenset({code}) if code else frozenset()


def _section(p: Passage) -> tuple[str, tuple[str, ...]]:
    return p.provenance.source_file, tuple(p.provenance.section_path)


def evidence_from(cited: list[tuple[Unit, Passage]],
                  retrieved: list[Passage] | None = None) -> Evidence:
    """What the cited units say and where they sit. Their surroundings are the cited
    passages and the other retrieved pieces of the same section: a label's pediatric
    dosing section names its indications in a chunk after the one whose starting dose
    was cited, and that section is the scope of the dose."""
    passages = list({p.id: p for _, p in cited}.values())
    sections = {_section(p) for p in passages}

    def within(p: Passage) -> bool:
        # The same section or one nested in it: a parent section's statement holds for
        # what its subsections name.
        source, path = _section(p)
        return any(source == s and path[:len(sp)] == sp for s, sp in sections)

    ids = {p.id for p in passages}
    around = passages + [p for p in retrieved or [] if p.id not in ids and within(p)]
    # Read once: addresses() builds an Evidence for every candidate unit.
    where = [unit_context(p) for p in passages]
    return Evidence(
        # A formulary record's other units name what its cited limit or status is of.
        text=" ".join(u.reading(p) for u, p in cited) + record_context(cited),
        context=" ".join(where),
        codes=frozenset().union(*(_codes(p) for p in passages)) if passages else frozenset(),
        surroundings=" ".join(p.text for p in around),
        doc_types=frozenset(p.provenance.doc_type for p in passages),
        each=tuple(f"{p.text} {w}" for p, w in zip(passages, where, strict=True)),
    )


# A unit offered as evidence must share at least this many content words with the
# question, beyond passing the focus test: a focus of only "dose" is met by any dose.
MIN_EVIDENCE_OVERLAP = 2
MAX_EVIDENCE_UNITS = 3
# A list question ("which statins are preferred") is answered by every row that names a
# member, not the first three: three rows of a 17-row table read as the whole list.
MAX_LIST_EVIDENCE_UNITS = 15


def addressing_units(
    question: str, focus: QuestionFocus, draft: Draft
) -> list[EvidenceQuote]:
    """Retrieved units that address the question on their own (same test as a verified
    answer's evidence), best first, at most MAX_EVIDENCE_UNITS."""
    if focus.empty:
        return []
    if not draft.units:
        draft.units = [split_passage(p, i) for i, p in enumerate(draft.passages)]
    words = content_words(question)
    found: list[tuple[int, int, Unit, Passage]] = []
    for own in draft.units:
        for u in own:
            p = draft.passages[u.passage_index]
            overlap = _overlap(words, u.reading(p) + " " + unit_context(p))
            if overlap < MIN_EVIDENCE_OVERLAP or vacuous(u.reading(p)) \
                    or addresses(focus, evidence_from([(u, p)])):
                continue
            found.append((-overlap, u.passage_index, u, p))
    found.sort(key=lambda f: (f[0], f[1]))
    if asks_for_all(question):
        # The best passage's rows and items in document order: the list as its source
        # gives it (other passages often repeat the same table, an older version).
        first = found[0][1] if found else 0
        chosen = sorted((f for f in found if f[1] == first),
                        key=lambda f: f[2].start)[:MAX_LIST_EVIDENCE_UNITS]
    else:
        chosen = found[:MAX_EVIDENCE_UNITS]
    units = with_their_lists([(u, p) for _, _, u, p in chosen], draft.units)
    return [
        EvidenceQuote(passage_id=p.id, unit_id=u.uid, text=u.source_text(p),
                      span_start=u.start, span_end=u.end,
                      header=list(u.header) if u.kind == "row" else [])
        for u, p in units
    ]


def around_units(ids: list[str], units: list[list[Unit]], reach: int = 1) -> list[str]:
    """The units `ids` names and their neighbours in the same passage (`reach` each
    side), in passage and reading order: a statement often needs the one before it."""
    wanted = set(ids)
    out: list[str] = []
    for own in units:
        near = {i + d for i, u in enumerate(own) if u.uid in wanted
                for d in range(-reach, reach + 1)}
        out += [u.uid for i, u in enumerate(own) if i in near]
    return out


def with_their_lists(
    chosen: list[tuple[Unit, Passage]], units: list[list[Unit]]
) -> list[tuple[Unit, Passage]]:
    """A list item quoted alone misstates its list: "TWO selective serotonin reuptake
    inhibitors" is one of "ALL of the following" after "ONE DNRI" and "ONE SNRI". Each
    chosen item brings its list (the run of items around it in its passage) and the
    sentence that introduces it (ending in a colon), in document order, up to
    MAX_LIST_EVIDENCE_UNITS units in all."""
    out: list[tuple[Unit, Passage]] = []
    seen: set[str] = set()

    def add(unit: Unit, passage: Passage) -> None:
        if unit.uid not in seen and len(out) < MAX_LIST_EVIDENCE_UNITS:
            seen.add(unit.uid)
            out.append((unit, passage))

    for unit, passage in chosen:
        own = units[unit.passage_index] if unit.passage_index < len(units) else []
        at = next((k for k, u in enumerate(own) if u.uid == unit.uid), None)
        if unit.kind != "item" or at is None:
            add(unit, passage)
            continue
        first = last = at
        while first > 0 and own[first - 1].kind == "item":
            first -= 1
        while last + 1 < len(own) and own[last + 1].kind == "item":
            last += 1
        if first > 0 and own[first - 1].reading(passage).rstrip().endswith(":"):
            first -= 1
        for u in own[first:last + 1]:
            add(u, passage)
    return out
