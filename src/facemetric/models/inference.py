"""Embedding aligned face crops at inference time, behind one small interface.

``Embedder.embed(faces)`` takes N aligned RGB uint8 crops (N, S, S, 3) and returns (N, D)
float32 L2-normalised embeddings. The PyTorch engine lives here; the ONNX Runtime engine in
``facemetric.models.export`` has the same surface; ``facemetric.models.loading`` picks one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from facemetric.errors import ConfigError
from facemetric.models.checkpoint import Checkpoint
from facemetric.models.embedder import ModelSpec

Engine = Literal["auto", "torch", "onnx"]


class Embedder(Protocol):
    spec: ModelSpec
    threshold: float
    checkpoint_path: Path
    meta: dict[str, Any]

    def embed(self, faces: np.ndarray, flip: bool = False) -> np.ndarray: ...


def preprocess(faces: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 3, S, S) float32 normalised, resized when H != S."""
    if faces.ndim == 3:
        faces = faces[None]
    if faces.ndim != 4 or faces.shape[-1] != 3:
        raise ConfigError(f"faces: expected (N, H, W, 3) RGB crops, got shape {faces.shape}")
    size = spec.input_size
    if faces.shape[1] != size or faces.shape[2] != size:
        import cv2

        faces = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces])
    x = faces.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(spec.mean, dtype=np.float32)
    x /= np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class BatchEmbedder:
    """What every engine shares: preprocess, optional mirrored pass, L2 normalisation.

    A subclass only runs the network on preprocessed (N, 3, S, S) batches in ``_run``.
    """

    spec: ModelSpec

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def embed(self, faces: np.ndarray, flip: bool = False) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB crops -> (N, D) float32 L2-normalised embeddings."""
        x = preprocess(faces, self.spec)
        emb = self._run(x)
        if flip:
            emb = emb + self._run(np.ascontiguousarray(x[..., ::-1]))
        return l2_normalise(emb)


class TorchEmbedder(BatchEmbedder):
    """Eager PyTorch inference (channels_last, no grad) for a checkpoint."""

    def __init__(self, ckpt: Checkpoint, device: str = "cpu", batch_size: int = 64) -> None:
        self.spec = ckpt.spec
        self.threshold = ckpt.match_threshold
        self.meta = ckpt.meta
        self.checkpoint_path = ckpt.path or Path("<memory>")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = ckpt.build().to(self.device).to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def _run(self, x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(x), self.batch_size):
            t = torch.from_numpy(x[i : i + self.batch_size]).to(self.device)
            out.append(self.model(t.contiguous(memory_format=torch.channels_last)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.spec.embedding_dim), np.float32)
