"""A packaged GGUF generator as a Hugging Face folder (safetensors, config, tokenizer), so
vLLM's CPU build can serve it: vLLM reads GGUF only through its CUDA kernels.

Run with the vLLM environment's Python (it has transformers, gguf and accelerate):

    .vllm-venv/bin/python scripts/gguf_to_hf.py data/models/X.gguf data/models/X-hf

The weights are de-quantized to bfloat16 (the 0.5B model: 1.26 GB); transformers refuses
to save a model it loaded from GGUF, so the state dict is written directly.
"""

from __future__ import annotations

import sys
from pathlib import Path


def convert(gguf: Path, out: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.bfloat16)
    tensors = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)  # safetensors stores a tensor once
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # Not set from a GGUF, and without it vLLM takes the bare transformer (no LM head).
    config.architectures = [type(model).__name__]
    config.save_pretrained(out)
    tokenizer.save_pretrained(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    convert(Path(sys.argv[1]).resolve(), Path(sys.argv[2]))
    print(f"wrote {sys.argv[2]}")
