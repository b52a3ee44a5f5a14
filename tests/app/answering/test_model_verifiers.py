"""Optional extra verifiers (app/answering/model_verifiers.py): an NLI model from a local
folder and an LLM
judge through the generator's endpoint. They may lower a citation's status, never raise
it, and say why.

No NLI model is packaged, so the NLI tests build a tiny randomly initialised BERT
classifier with NLI labels in a temporary folder: a real model loaded through the real
code path. Its verdicts are arbitrary; the threshold pins them (0: everything is
"entailed"; 1: nothing is), which is what the lower-only rule needs. The LLM judge runs
on the real local generator (two calls); its accuracy is measured in bench/judge.py, not
asserted here (the 1.5B CPU model is a weak judge).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.answering.citation_checks import verify_sentence
from app.answering.model_verifiers import (
    CEILING,
    Judgement,
    LLMJudge,
    NLIVerifier,
    Verdict,
    VerifierUnavailable,
    apply_verifiers,
    build_verifiers,
    parse_verdict,
)
from app.answering.models import AnswerSentence, CitationStatus
from app.llm.router import Endpoint, GeneratorRouter, NoEndpoint
from retrieval.models import Passage

TEXT = ("The recommended starting dose of LIPITOR is 10 or 20 mg once daily. Dosage "
        "adjustment in patients with renal dysfunction is not necessary.")
DOSE = "The recommended starting dose of LIPITOR is 10 or 20 mg once daily"
PASSAGE = Passage.model_validate({
    "id": "p1", "text": TEXT, "score": 1.0,
    "provenance": {"doc_id": "d", "title": "LIPITOR (atorvastatin calcium)", "source_file": "f",
                   "doc_type": "label", "char_start": 0, "char_end": len(TEXT)},
})
SUPPORTED = "The recommended starting dose of atorvastatin is 10 or 20 mg once daily."
WRONG_DOSE = "The recommended starting dose of atorvastatin is 40 mg once daily."
NLI_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}


def _nli_folder(root: Path, labels: dict[int, str] = NLI_LABELS) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    torch.manual_seed(0)
    words = sorted({w.strip(".,").lower() for w in (TEXT + " " + SUPPORTED).split()})
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(str(root))
    config = BertConfig(vocab_size=5 + len(words), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, id2label=labels,
                        label2id={v: k for k, v in labels.items()})
    BertForSequenceClassification(config).save_pretrained(str(root))
    return root


@pytest.fixture(scope="module")
def nli_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _nli_folder(tmp_path_factory.mktemp("nli"))


def _checked(sentence: str) -> AnswerSentence:
    return verify_sentence(sentence, [("P1", DOSE)], {"P1": PASSAGE})


def _probabilities(nli_path: Path, claim: str, evidence: str) -> dict[str, float]:
    """The folder's model run directly through transformers: the reference verdicts."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(nli_path))
    model = AutoModelForSequenceClassification.from_pretrained(str(nli_path)).eval()
    with torch.no_grad():
        logits = model(**tokenizer(evidence, claim, return_tensors="pt")).logits[0]
    probs = torch.softmax(logits, dim=-1).tolist()
    return {model.config.id2label[i]: p for i, p in enumerate(probs)}


def test_nli_model_loads_from_a_local_folder_and_judges(nli_path: Path) -> None:
    """The verdict is the model's: entailment at or over the threshold is `entailed`,
    else contradiction as the top label is `contradicted`, else `neutral`; the score is
    the entailment probability."""
    probs = _probabilities(nli_path, SUPPORTED, DOSE)
    entail, contra = probs["entailment"], probs["contradiction"]
    below = Verdict.contradicted if contra >= max(probs.values()) else Verdict.neutral
    for threshold, expected in ((0.0, Verdict.entailed), (entail, Verdict.entailed),
                                (min(1.0, entail + 1e-3), below), (1.0, below)):
        j = NLIVerifier(nli_path, threshold=threshold).judge(SUPPORTED, DOSE, phi=False)
        assert j.verdict is expected, (threshold, probs, j)
        assert j.score == pytest.approx(entail, abs=1e-3)
        assert j.reason == f"entailment {entail:.2f}"


def test_a_verifier_lowers_a_supported_citation_and_says_why(nli_path: Path) -> None:
    sentence = _checked(SUPPORTED)
    assert sentence.status is CitationStatus.supported
    c = sentence.citations[0]
    assert c.span_start is not None and c.span_end is not None
    evidence = TEXT[c.span_start:c.span_end]
    # Threshold 1.0: no probability reaches it, so the verdict is never "entailed".
    verifier = NLIVerifier(nli_path, threshold=1.0)
    verdict = verifier.judge(SUPPORTED, evidence, phi=False)
    assert verdict.verdict is not Verdict.entailed
    expected = {Verdict.neutral: CitationStatus.partial,
                Verdict.contradicted: CitationStatus.unsupported}[verdict.verdict]
    score_before = c.score
    apply_verifiers(sentence, {"P1": PASSAGE}, [verifier], False)
    assert c.status is expected and sentence.status is expected
    assert c.score == round(min(score_before, verdict.score), 3)
    assert c.reasons[-1] == f"nli: {verdict.verdict.value} ({verdict.reason})"


def test_a_verifier_never_raises_a_status(nli_path: Path) -> None:
    always_entailed = NLIVerifier(nli_path, threshold=0.0)
    wrong = _checked(WRONG_DOSE)
    assert wrong.status is CitationStatus.unsupported
    apply_verifiers(wrong, {"P1": PASSAGE}, [always_entailed], False)
    assert wrong.status is CitationStatus.unsupported
    assert not any(r.startswith("nli") for r in wrong.citations[0].reasons)
    right = _checked(SUPPORTED)
    apply_verifiers(right, {"P1": PASSAGE}, [always_entailed], False)
    assert right.status is CitationStatus.supported
    assert not any(r.startswith("nli") for r in right.citations[0].reasons)


def test_misconfigured_nli_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VerifierUnavailable, match="not a folder"):
        NLIVerifier(tmp_path / "missing")
    sentiment = _nli_folder(tmp_path, {0: "negative", 1: "positive"})
    with pytest.raises(VerifierUnavailable, match="no 'entail' label"):
        NLIVerifier(sentiment)


def test_verifiers_are_off_unless_configured(services) -> None:  # type: ignore[no-untyped-def]
    assert services.answers.verifiers == []
    built = build_verifiers(None, 0.5, True, services.generator)
    assert [v.name for v in built] == ["llm-judge"]


def test_judge_verdicts_are_parsed_strictly() -> None:
    j = parse_verdict('{"verdict": "contradicted", "reason": "label says 10 or 20 mg"}')
    assert j is not None and j.verdict is Verdict.contradicted and j.score == 0.0
    assert parse_verdict('{"verdict": "probably"}') is None
    assert parse_verdict("yes it is supported") is None


def test_judge_never_sends_phi_to_an_endpoint_not_allowed_to_see_it(services) -> None:  # type: ignore[no-untyped-def]
    primary = services.generator.endpoints[0].generator
    judge = LLMJudge(GeneratorRouter([Endpoint("cloud", primary, phi_allowed=False)]))
    with pytest.raises(NoEndpoint, match="PHI"):
        judge.judge(SUPPORTED, DOSE, phi=True)


def test_llm_judge_on_the_local_generator(services) -> None:  # type: ignore[no-untyped-def]
    """Two real judge calls: the verdict comes back schema-valid, and applying it can
    only keep or lower the deterministic status."""
    judgements: list[Judgement | None] = []

    class Recorded(LLMJudge):
        def judge(self, claim: str, evidence: str, phi: bool) -> Judgement | None:
            judgements.append(super().judge(claim, evidence, phi))
            return judgements[-1]

    judge = Recorded(services.generator)
    sentence = _checked(SUPPORTED)
    assert sentence.status is CitationStatus.supported
    apply_verifiers(sentence, {"P1": PASSAGE}, [judge], False)
    c = sentence.citations[0]
    (verdict,) = judgements
    assert verdict is not None, "the judge's structured output did not parse"
    # Exactly the verdict's ceiling (a supported citation has nothing above it), and the
    # reason names the verdict when, and only when, it lowered the status.
    assert c.status is CEILING[verdict.verdict] and sentence.status is c.status
    judge_reasons = [r for r in c.reasons if r.startswith("llm-judge")]
    if verdict.verdict is Verdict.entailed:
        assert judge_reasons == []
    else:
        assert judge_reasons == [f"llm-judge: {verdict.verdict.value}"
                                 + (f" ({verdict.reason})" if verdict.reason else "")]
    # An already unsupported citation is not shown to the judge: nothing can raise it.
    wrong = _checked(WRONG_DOSE)
    apply_verifiers(wrong, {"P1": PASSAGE}, [judge], False)
    assert len(judgements) == 1 and wrong.status is CitationStatus.unsupported
    second = LLMJudge(services.generator).judge(WRONG_DOSE, DOSE, phi=False)
    assert second is not None, "the judge's structured output did not parse"
