"""What a face detector gives (``Detection``: a box, a score and five landmarks in the order
left eye, right eye, nose tip, left mouth corner, right mouth corner, as seen in the image) and
the ``FaceDetector`` interface, with the registry the detectors join by name
(``register_detector``); ``detect.py`` builds one by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    score: float
    landmarks: np.ndarray  # (5, 2) float32, x/y in pixels

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray, max_side: int | None = None) -> list[Detection]:
        """Faces in an HxWx3 uint8 RGB image, highest score first.

        ``max_side`` overrides, for this call, the longest side the image is scaled down to
        before detection (smaller is faster and misses the smallest faces)."""
        ...


DetectorFactory = Callable[..., FaceDetector]
DETECTORS: dict[str, DetectorFactory] = {}


def register_detector(name: str) -> Callable[[DetectorFactory], DetectorFactory]:
    def wrap(factory: DetectorFactory) -> DetectorFactory:
        DETECTORS[name] = factory
        return factory

    return wrap
