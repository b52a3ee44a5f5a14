"""Answering, top to bottom: retrieve → decide whether the sources can answer → generate
a structured answer → verify every citation → assemble the response.

The service abstains rather than guess: when nothing relevant is retrieved, when the
question names a drug no retrieved passage mentions, when the model says the passages
don't answer, or when no sentence of its answer survives verification.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from app.answering.citation_checks import verify_sentence
from app.answering.fhir_context import describe, parse_bundle, retrieval_query
from app.answering.injection import looks_like_instructions
from app.answering.model_verifiers import ExtraVerifier, apply_verifiers
from app.answering.models import (
    AnswerSentence,
    AnswerStatus,
    AskRequest,
    AskResponse,
    CitationStatus,
    PatientContext,
)
from app.answering.phi import phi_kinds
from app.answering.prompting import GenAnswer, build_messages, label
from app.core.settings import Settings
from app.llm.client import MalformedOutput, parse_answer
from app.llm.router import GeneratorRouter
from app.security.api_keys import Principal
from retrieval.context import ContextAssembler
from retrieval.drugs import find_drug_mentions, mentioned_in
from retrieval.models import Passage
from retrieval.search import Retriever

log = logging.getLogger("medcite.answer")

ABSTAIN_NO_PASSAGES = (
    "No passage in the knowledge base you can access is relevant to this question."
)


@dataclass(frozen=True)
class StreamEvent:
    event: str  # passages | token | answer
    data: dict[str, Any]


@dataclass
class Draft:
    """What the pipeline has so far; turned into an AskResponse at the end."""

    request: AskRequest
    passages: list[Passage]
    patient: PatientContext | None
    timings: dict[str, float]
    excluded: list[str] = field(default_factory=list)

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
    # Hybrid ranks by fusion, so the best similarity is not necessarily the first.
    if not passages or max(p.score for p in passages) < min_relevance:
        return ABSTAIN_NO_PASSAGES
    corpus = " ".join(p.text + " " + p.provenance.title for p in passages)
    absent = [d.name for d in find_drug_mentions(question) if not mentioned_in(d, corpus)]
    if absent:
        return "The retrieved sources do not mention " + ", ".join(absent) + "."
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
        (returned second, else None). Split from `generate_answer` so the API can meter
        only generation through its admission gate."""
        draft = self.retrieve(request, principal)
        return draft, self.precheck(draft)

    def generate_answer(self, draft: Draft) -> AskResponse:
        """Generate, then verify every citation."""
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
        if early is not None:
            yield StreamEvent("answer", early.model_dump(mode="json"))
            return
        t = time.perf_counter()
        messages = self.messages(draft)
        chunks: list[str] = []
        for delta in self.generator.stream(messages, phi=draft.phi):
            chunks.append(delta)
            yield StreamEvent("token", {"text": delta})
        try:
            generated = parse_answer("".join(chunks))
        except MalformedOutput:
            try:
                generated = self.generator.generate(messages, phi=draft.phi)
            except MalformedOutput:
                draft.timings["generation"] = _ms(t)
                answer = self._abstain(draft, "The model did not return a well-formed answer.")
                yield StreamEvent("answer", answer.model_dump(mode="json"))
                return
        draft.timings["generation"] = _ms(t)
        yield StreamEvent("answer", self.complete(draft, generated).model_dump(mode="json"))

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
