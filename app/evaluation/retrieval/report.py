"""Aggregating per-question results and printing them: one Markdown table per dataset."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from app.evaluation.retrieval.metrics import (
    ndcg_at_k,
    percentile,
    recall_at_k,
    reciprocal_rank,
)

RECALL_KS = (1, 5, 10)
NDCG_K = 10


@dataclass
class QuestionResult:
    qid: str
    answerable: bool
    gains: list[float]
    ideal: list[float]
    top_score: float | None
    latency_ms: float
    top_sources: list[str]
    kind: str = ""  # what the question asks (dose, formulary_status, ...), when known


@dataclass
class SystemResult:
    system: str
    questions: list[QuestionResult] = field(default_factory=list)
    unavailable: str | None = None
    build_s: float = 0.0

    @property
    def answerable(self) -> list[QuestionResult]:
        return [q for q in self.questions if q.answerable]

    def recall(self, k: int) -> float:
        return _mean([recall_at_k(q.gains, q.ideal, k) for q in self.answerable])

    @property
    def mrr(self) -> float:
        return _mean([reciprocal_rank(q.gains) for q in self.answerable])

    @property
    def ndcg(self) -> float:
        return _mean([ndcg_at_k(q.gains, q.ideal, NDCG_K) for q in self.answerable])

    def latency(self, q: float) -> float:
        return percentile([r.latency_ms for r in self.questions], q)

    def by_kind(self, kind: str) -> tuple[int, float, float]:
        """(answerable questions, recall@5, nDCG@10) of one kind of question."""
        qs = [q for q in self.answerable if q.kind == kind]
        return (len(qs), _mean([recall_at_k(q.gains, q.ideal, 5) for q in qs]),
                _mean([ndcg_at_k(q.gains, q.ideal, NDCG_K) for q in qs]))

    def summary(self) -> dict[str, float | str | None]:
        out: dict[str, float | str | None] = {"system": self.system}
        if self.unavailable:
            out["unavailable"] = self.unavailable
            return out
        out.update({f"recall@{k}": self.recall(k) for k in RECALL_KS})
        out.update({"mrr": self.mrr, f"ndcg@{NDCG_K}": self.ndcg,
                    "latency_p50_ms": self.latency(50), "latency_p95_ms": self.latency(95),
                    "build_s": self.build_s})
        return out


@dataclass
class DatasetResult:
    dataset: str
    description: str
    chunks: int
    ingest_s: float
    systems: list[SystemResult]

    def table(self, min_relevance: float) -> str:
        first = next((s for s in self.systems if not s.unavailable), None)
        n_ans = len(first.answerable) if first else 0
        n_all = len(first.questions) if first else 0
        lines = [
            f"### {self.dataset}",
            "",
            f"{self.description}. {n_all} questions ({n_ans} answerable, "
            f"{n_all - n_ans} with no answer in the corpus), {self.chunks} chunks, "
            f"ingest {self.ingest_s:.0f} s.",
            "",
            "| system | recall@1 | recall@5 | recall@10 | MRR | nDCG@10 "
            "| p50 ms | p95 ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in self.systems:
            if s.unavailable:
                lines.append(f"| {s.system} | n/a: {s.unavailable} |||||||")
                continue
            lines.append(
                f"| {s.system} | " + " | ".join(f"{s.recall(k):.3f}" for k in RECALL_KS)
                + f" | {s.mrr:.3f} | {s.ndcg:.3f} | {s.latency(50):.1f} | {s.latency(95):.1f} |"
            )
        lines += self._kind_table()
        lines += self._abstention_notes(min_relevance)
        return "\n".join(lines)

    def _kind_table(self) -> list[str]:
        """recall@5 / nDCG@10 per kind of question, every system side by side."""
        shown = [s for s in self.systems if not s.unavailable]
        kinds = sorted({q.kind for s in shown for q in s.answerable if q.kind})
        if not shown or not kinds:
            return []
        lines = [
            "",
            "Per kind of question (answerable ones), recall@5 / nDCG@10:",
            "",
            "| kind | n | " + " | ".join(s.system for s in shown) + " |",
            "|---|---:|" + "---:|" * len(shown),
        ]
        for kind in kinds:
            n = shown[0].by_kind(kind)[0]
            cells = []
            for s in shown:
                _, recall, ndcg = s.by_kind(kind)
                cells.append(f"{recall:.3f} / {ndcg:.3f}")
            lines.append(f"| {kind} | {n} | " + " | ".join(cells) + " |")
        return lines

    def _abstention_notes(self, min_relevance: float) -> list[str]:
        """How the top passage's cosine would separate answerable from unanswerable
        questions at the product's abstention threshold (dense scores only)."""
        notes = []
        for s in self.systems:
            if s.unavailable or s.system not in ("medcite-dense", "medcite-hybrid"):
                continue
            unans = [q for q in s.questions if not q.answerable]
            if not unans:
                continue
            above = sum(1 for q in unans if (q.top_score or 0.0) >= min_relevance)
            kept = sum(1 for q in s.answerable if (q.top_score or 0.0) >= min_relevance)
            notes.append(
                f"- {s.system}: top-1 cosine ≥ MEDCITE_MIN_RELEVANCE ({min_relevance}) for "
                f"{above}/{len(unans)} unanswerable questions (would not abstain) and "
                f"{kept}/{len(s.answerable)} answerable ones."
            )
        return ["", *notes] if notes else []

    def to_json(self) -> dict[str, object]:
        return {
            "dataset": self.dataset, "description": self.description, "chunks": self.chunks,
            "ingest_s": self.ingest_s,
            "systems": [
                {**s.summary(), "questions": [asdict(q) for q in s.questions]}
                for s in self.systems
            ],
        }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
