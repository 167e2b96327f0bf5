"""MTCNN from facenet-pytorch (optional: ``pip install --no-deps facenet-pytorch requests``).

The P/R/O-net weights ship in the wheel (``facenet_pytorch/data/*.pt``) and load from there; only
the package's import of ``requests`` (for its other, downloadable models) must be satisfied.
Landmarks come in the protocol's order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facemetric.data.detect import Detection, register_detector
from facemetric.data.detectors.base import ScaledDetector
from facemetric.errors import ConfigError


class MTCNNDetector(ScaledDetector):
    """Three-stage cascade (slower, CPU PyTorch); ``threads`` bounds torch's intra-op threads."""

    name = "mtcnn"

    def __init__(
        self,
        min_score: float = 0.8,
        max_side: int = 640,
        pad_small: int = 0,
        threads: int | None = None,
    ) -> None:
        super().__init__(min_score, max_side, pad_small)
        try:
            import torch
            from facenet_pytorch import MTCNN
        except ImportError as exc:
            raise ConfigError(
                "detector mtcnn needs facenet-pytorch: "
                f".venv/bin/pip install --no-deps facenet-pytorch requests ({exc})"
            ) from exc
        if threads:
            torch.set_num_threads(int(threads))
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


@register_detector("mtcnn")
def create_mtcnn(**kwargs: Any) -> MTCNNDetector:
    """MTCNN (facenet-pytorch's bundled weights); ConfigError when the package is missing."""
    return MTCNNDetector(**kwargs)
