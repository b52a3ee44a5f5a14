"""Dense embeddings with sentence-transformers, from a local model path (no hub access)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

# Set before transformers is imported anywhere: the product never reaches a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pick_device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class Embedder:
    def __init__(self, model_path: str, device: str = "auto", batch_size: int = 32) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self.device = pick_device(device)
        if self.device == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
        self.model = SentenceTransformer(model_path, device=self.device, local_files_only=True)
        self.batch_size = batch_size
        get_dim = getattr(self.model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else self.model.get_sentence_embedding_dimension()
        if dim is None:
            raise ValueError(f"embedding model at {model_path} reports no dimension")
        self.dim: int = int(dim)
        self.name = os.path.basename(model_path.rstrip("/")) or model_path

    def embed(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        ).astype(np.float32)

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0].tolist()
