"""Embedding throughput: the same passages through the product's embedder on CUDA (when
there is one) and on the CPU in the same run, and the ratio between them.

The passages are real: the Markdown documents under corpora/, cut the way ingest cuts
them by size (MEDCITE_CHUNK_CHARS). On a machine without CUDA it says so and measures the
CPU alone, with the one-passage-at-a-time rate (what a query pays) as the baseline.

    .venv/bin/python bench/embed.py [--passages 512] [--batch-size 32] [--model PATH]

On a GPU host, install torch's CUDA build first (the installer pins the CPU one), e.g.
`.venv/bin/uv pip install --python .venv/bin/python torch==2.13.0 --index-url
https://download.pytorch.org/whl/cu128`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from app.settings import REPO_ROOT, Settings  # noqa: E402
from retrieval.embedder import Embedder  # noqa: E402


def passages(n: int, size: int) -> list[str]:
    out: list[str] = []
    for path in sorted((REPO_ROOT / "corpora").rglob("*.md")):
        if path.name == "README.md":
            continue
        text = " ".join(path.read_text(errors="ignore").split())
        out += [text[i:i + size] for i in range(0, len(text), size) if len(text[i:i + size]) > 50]
    if not out:
        sys.exit("no Markdown passages under corpora/")
    while len(out) < n:
        out += out
    return out[:n]


def rate(embedder: Embedder, texts: list[str], one_by_one: bool = False) -> float:
    """Passages per second, after one warm-up batch (model load and kernels excluded)."""
    embedder.embed(texts[: embedder.batch_size])
    if embedder.device == "cuda":
        import torch

        torch.cuda.synchronize()
    t = time.perf_counter()
    if one_by_one:
        for text in texts:
            embedder.embed([text])
    else:
        embedder.embed(texts)
    if embedder.device == "cuda":
        import torch

        torch.cuda.synchronize()
    return len(texts) / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--passages", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--model", default=None, help="sentence-transformers model path "
                   "(default: EMBEDDING_MODEL, the packaged all-MiniLM-L6-v2)")
    args = p.parse_args()
    import torch

    settings = Settings()
    model = args.model or settings.embedding_model
    texts = passages(args.passages, settings.chunk_chars)
    singles = texts[: max(16, args.passages // 8)]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(f"date {time.strftime('%Y-%m-%d %H:%M')}; {platform.machine()}, {os.cpu_count()} "
          f"CPUs (load average {os.getloadavg()[0]:.1f}); torch {torch.__version__}; GPU: "
          f"{gpu or 'none'}; model {'/'.join(Path(model).parts[-2:])}; {len(texts)} "
          f"passages of <= {settings.chunk_chars} chars; "
          f"batch {args.batch_size}")
    if gpu is None:
        print("CUDA is not available (no GPU, or torch is the CPU build): measuring the CPU "
              "only. Run this on a GPU host with torch's CUDA build for the CUDA figures.")
    print()
    print("| device | batched passages/s | one at a time passages/s | batched / one at a time |")
    print("|---|---:|---:|---:|")
    rates: dict[str, float] = {}
    for device in (["cuda"] if gpu else []) + ["cpu"]:
        embedder = Embedder(model, device, args.batch_size)
        rates[device] = rate(embedder, texts)
        single = rate(embedder, singles, one_by_one=True)
        print(f"| {device} | {rates[device]:,.1f} | {single:,.1f} | "
              f"{rates[device] / single:.1f}x |")
        del embedder
    if gpu:
        print(f"\nCUDA / CPU (batched, same passages, same run): "
              f"{rates['cuda'] / rates['cpu']:.1f}x")


if __name__ == "__main__":
    main()
