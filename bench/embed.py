"""Embedding throughput: the same passages through the product's embedder on CUDA (when
there is one) and on the CPU in the same run, and the ratio between them.

The passages are real: the Markdown documents under corpora/, cut the way ingest cuts
them by size (MEDCITE_CHUNK_CHARS). On a machine without CUDA it says so and measures the
CPU alone, with the one-passage-at-a-time rate (what a query pays) as the baseline.

    .venv/bin/python -m bench.embed [--passages 512] [--batch-size 32 128] [--model PATH]
        [--half]

It needs only torch, numpy and sentence-transformers (and the product's settings only
when --model is not given), so it also runs on a GPU host that has nothing of medcite
installed: `python -m bench.embed --model DIR` from a checkout.

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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from retrieval.embedder import Embedder  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    p.add_argument("--batch-size", type=int, nargs="+", default=[32])
    p.add_argument("--chunk-chars", type=int, default=None,
                   help="passage size (default: MEDCITE_CHUNK_CHARS)")
    p.add_argument("--model", default=None, help="sentence-transformers model path "
                   "(default: EMBEDDING_MODEL, the packaged all-MiniLM-L6-v2)")
    p.add_argument("--half", action="store_true",
                   help="also time the model in float16 on CUDA (what a GPU ingest would run)")
    args = p.parse_args()
    import torch

    if args.model is None or args.chunk_chars is None:
        from app.core.settings import Settings

        settings = Settings()
        model = args.model or settings.embedding_model
        size = args.chunk_chars or settings.chunk_chars
    else:
        model, size = args.model, args.chunk_chars
    texts = passages(args.passages, size)
    singles = texts[: max(16, args.passages // 8)]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(f"date {time.strftime('%Y-%m-%d %H:%M')}; {platform.machine()}, {os.cpu_count()} "
          f"CPUs (load average {os.getloadavg()[0]:.1f}); torch {torch.__version__}; GPU: "
          f"{gpu or 'none'}; model {'/'.join(Path(model).parts[-2:])}; {len(texts)} "
          f"passages of <= {size} chars")
    if gpu is None:
        print("CUDA is not available (no GPU, or torch is the CPU build): measuring the CPU "
              "only. Run this on a GPU host with torch's CUDA build for the CUDA figures.")
    print()
    print("| device | dtype | batch | batched passages/s | one at a time passages/s "
          "| batched / one at a time |")
    print("|---|---|---:|---:|---:|---:|")
    rates: dict[tuple[str, str, int], float] = {}
    runs = [("cuda", "float32")] if gpu else []
    runs += [("cuda", "float16")] if gpu and args.half else []
    runs += [("cpu", "float32")]
    for device, dtype in runs:
        embedder = Embedder(model, device, args.batch_size[0])
        # Weights may be stored in either precision; time each in the one named.
        embedder.model.half() if dtype == "float16" else embedder.model.float()
        single = rate(embedder, singles, one_by_one=True)
        for batch in args.batch_size:
            embedder.batch_size = batch
            rates[(device, dtype, batch)] = rate(embedder, texts)
            print(f"| {device} | {dtype} | {batch} | {rates[(device, dtype, batch)]:,.1f} | "
                  f"{single:,.1f} | {rates[(device, dtype, batch)] / single:.1f}x |")
        del embedder
    if gpu:
        cpu_best = max(v for k, v in rates.items() if k[0] == "cpu")
        cuda_best = max(v for k, v in rates.items() if k[0] == "cuda")
        print(f"\nCUDA / CPU (best batch of each, same passages, same run): "
              f"{cuda_best / cpu_best:.1f}x")


if __name__ == "__main__":
    main()
