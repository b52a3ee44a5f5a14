"""Answering, top to bottom: retrieve → decide whether the sources can answer → generate
a structured answer → verify every citation → assemble the response.

The service abstains rather than guess: when nothing relevant is retrieved, when the
question names a drug no retrieved passage mentions, when the model says the passages
don't answer, or when no sentence of its answer survives verification.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.auth import Principal
from app.drugs import find_drug_mentions, mentioned_in
from app.fhir_context import describe, parse_bundle
from app.generator import ChatGenerator, MalformedOutput
from app.prompting import build_messages, label
from app.schemas import (
    AnswerSentence,
    AnswerStatus,
    AskRequest,
    AskResponse,
    CitationStatus,
    PatientContext,
)
from app.settings import Settings
from app.verify import verify_sentence
from retrieval.models import Passage
from retrieval.search import Retriever

ABSTAIN_NO_PASSAGES = (
    "No passage in the knowledge base you can access is relevant to this question."
)


@dataclass
class Draft:
    """What the pipeline has so far; turned into an AskResponse at the end."""

    request: AskRequest
    passages: list[Passage]
    patient: PatientContext | None
    timings: dict[str, float]


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
    generator: ChatGenerator

    def ask(self, request: AskRequest, principal: Principal) -> AskResponse:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        patient = parse_bundle(request.fhir_bundle) if request.fhir_bundle else None
        passages = self.retriever.search(
            request.question,
            access_groups=principal.groups,
            filters=request.filters,
            limit=request.top_k or self.settings.top_k,
        )
        timings["retrieval"] = _ms(t)
        draft = Draft(request, passages, patient, timings)
        reason = unsupported_reason(request.question, passages, self.settings.min_relevance)
        if reason:
            return self._abstain(draft, reason)

        t = time.perf_counter()
        messages = build_messages(
            request.question, passages, self.settings.context_chars,
            describe(patient) if patient else None,
        )
        try:
            generated = self.generator.generate(messages)
        except MalformedOutput:
            timings["generation"] = _ms(t)
            return self._abstain(draft, "The model did not return a well-formed answer.")
        timings["generation"] = _ms(t)
        if generated.abstain or not generated.sentences:
            return self._abstain(
                draft, generated.reason.strip() or "The sources do not answer this question."
            )

        t = time.perf_counter()
        by_label = {label(i): p for i, p in enumerate(passages)}
        sentences = [
            verify_sentence(
                s.text.strip(),
                [(c.passage.strip().strip("[]"), c.quote) for c in s.citations],
                by_label,
            )
            for s in generated.sentences
            if s.text.strip()
        ]
        # Citations travel with labels (P1) inside the model; the API speaks passage ids.
        for sentence in sentences:
            for c in sentence.citations:
                if c.passage_id in by_label:
                    c.passage_id = by_label[c.passage_id].id
        timings["verification"] = _ms(t)
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
            model=self.generator.model,
            timings_ms=draft.timings,
        )
