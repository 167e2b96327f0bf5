"""MTCNN from facenet-pytorch (optional: ``pip install --no-deps facenet-pytorch requests``).

The P/R/O-net weights ship in the wheel (``facenet_pytorch/data/*.pt``) and load from there; only
the package's import of ``requests`` (for its other, downloadable models) must be satisfied.
Landmarks come in the protocol's order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facemetric.data.detection import Detection, register_detector
from facemetric.data.detectors.base import ScaledDetector
from facemetric.errors import ConfigError


class MTCNNDetector(ScaledDetector):
    """Three-stage cascade (slower, CPU PyTorch); ``threads`` bounds torch's intra-op threads."""

    name = "mtcnn"

    def _load(self, threads: int | None) -> None:
        try:
            import torch
            from facenet_pytorch import MTCNN
        except ImportError as exc:
            raise ConfigError(
                "detector mtcnn needs facenet-pytorch: "
                f".venv/bin/pip install --no-deps facenet-pytorch requests ({exc})"
            ) from exc
        if threads:
            torch.set_num_threads(threads)
        self._torch: Any = torch
        self._model: Any = MTCNN(keep_all=True, device="cpu", select_largest=False)

    def _detect_raw(self, image: np.ndarray) -> list[Detection]:
        with self._torch.inference_mode():
            boxes, probs, points = self._model.detect(image, landmarks=True)
        if boxes is None:
            return []
        return [
            Detection(
                box=tuple(float(v) for v in box),  # type: ignore[arg-type]
                score=float(prob),
                landmarks=np.asarray(pts, dtype=np.float32).reshape(5, 2),
            )
            for box, prob, pts in zip(boxes, probs, points, strict=True)
        ]


register_detector("mtcnn")(MTCNNDetector)
