"""Embedding image files with a trained embedding checkpoint (``task=facenet_triplet`` or a
distilled ``facenet_distill`` student): what face search indexes and queries are made of."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mnet_vision.data.transforms import apply_seeded
from mnet_vision.deploy.runtime import is_onnx_path, load_onnx
from mnet_vision.images import MAX_PIXELS, readable_chunks
from mnet_vision.inference.load import load_model


@dataclass
class Embedded:
    """``embeddings (N, D)`` float32 unit rows of the readable ``paths``; ``skipped`` lists the
    unreadable files; ``images_per_second`` covers reading, transforming and the network."""

    embeddings: np.ndarray
    paths: list[Path]
    skipped: list[str] = field(default_factory=list)
    images_per_second: float = 0.0


class Embedder:
    """The model of an embedding checkpoint in eval mode, with the evaluation transform of the data
    it was trained on (resize, centre crop, the same pixel normalisation).

    Args:
        ckpt: one of our training checkpoints whose task outputs an ``embedding``, or its ``.onnx``
            export, run by ONNX Runtime with its own preprocessing (:mod:`mnet_vision.deploy`;
            embeddings equal the checkpoint's within 1e-4; ``device`` and ``fast`` do not apply).
        device: ``cpu`` or ``cuda``.
        fast: the BN-folded channels_last model (embeddings equal the plain model's within 1e-4).
        threads: ONNX Runtime intra-op threads for an ``.onnx`` (None: its default).
    """

    def __init__(self, ckpt: str | Path, device: str = "cpu", fast: bool = True, threads: int | None = None):
        self.onnx = load_onnx(ckpt, threads, task="EmbeddingTask") if is_onnx_path(ckpt) else None
        self.device = device
        self.source = str(ckpt)
        if self.onnx is not None:
            dim = self.onnx.meta.meta.get("embedding_dim") or self.onnx.session.get_outputs()[0].shape[-1]
            if not isinstance(dim, int):
                raise ValueError(f"{ckpt}: its embedding dimension is neither in its metadata nor static in the graph")
            self.dim = int(dim)
            return
        self.loaded = load_model(ckpt, fast, device)
        meta = self.loaded.meta
        if meta.outputs != "embedding":
            raise ValueError(f"{ckpt} is a {meta.task} checkpoint; face search needs an embedding model "
                             f"(task=facenet_triplet or facenet_distill)")
        self.model = self.loaded.model
        self.transform = meta.eval_transform()
        self.dim = int(meta.embedding_dim)

    def embed_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, D)`` float32 embeddings of ``(H, W, 3)`` RGB uint8 images (the evaluation transform
        applied here, or the export's own preprocessing)."""
        if not arrays:
            return np.zeros((0, self.dim), np.float32)
        if self.onnx is not None:
            return self.onnx.embed(list(arrays))
        batch = torch.stack([apply_seeded(self.transform, 0, image=array)["image"] for array in arrays])
        with torch.inference_mode():
            return self.model(self.loaded.inputs(batch)).float().cpu().numpy()

    def embed_files(self, files: Sequence[Path], batch_size: int = 64, progress: bool = True,
                    max_pixels: int | None = MAX_PIXELS) -> Embedded:
        """Embed image files, skipping (and listing) unreadable ones and those over ``max_pixels``;
        a progress bar while it runs."""
        start = time.perf_counter()
        rows, kept, skipped = [], [], []
        for chunk in readable_chunks(list(files), batch_size, skipped, "embedding" if progress else None,
                                     max_pixels):
            if chunk:
                rows.append(self.embed_arrays([array for _, array in chunk]))
                kept += [path for path, _ in chunk]
        embeddings = np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)
        seconds = time.perf_counter() - start
        return Embedded(embeddings, kept, skipped, len(files) / seconds if seconds > 0 else 0.0)
