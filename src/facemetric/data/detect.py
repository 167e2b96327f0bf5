"""Face detection: one ``FaceDetector`` interface, detectors chosen by name from a registry.

Every detector returns ``Detection``s with a box, a score and five landmarks in the order
(left eye, right eye, nose tip, left mouth corner, right mouth corner) as seen in the image
(the subject's right eye is the image's left eye).

The built-in detectors live in ``facemetric.data.detectors`` (one module each) and register
themselves when the registry is first used; their models load only when one is created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from facemetric.errors import ConfigError


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
_REGISTRY: dict[str, DetectorFactory] = {}
# benchmarks/detectors.py on 200 celeba-wild photos: RetinaFace and YuNet both found 198 (MTCNN
# 195), none of the 128 crops looked at was a wrong face; RetinaFace took 41 ms a photo against
# 61 (YuNet) and 421 (MTCNN) and gives sub-pixel landmarks (YuNet whole pixels).
DEFAULT_DETECTOR = "retinaface"


def register_detector(name: str) -> Callable[[DetectorFactory], DetectorFactory]:
    def wrap(factory: DetectorFactory) -> DetectorFactory:
        _REGISTRY[name] = factory
        return factory

    return wrap


def _load_builtin() -> None:
    import facemetric.data.detectors  # noqa: F401  (registers retinaface, yunet, mtcnn)


def available_detectors() -> list[str]:
    """Names ``create_detector`` accepts (a name may still need its optional package)."""
    _load_builtin()
    return sorted(_REGISTRY)


def create_detector(name: str = DEFAULT_DETECTOR, **kwargs: Any) -> FaceDetector:
    """Build the detector registered as ``name`` (weights come from its installed package).

    Common keyword arguments: ``min_score``, ``max_side`` (larger images are scaled down),
    ``pad_small`` (smaller images are padded) and ``threads``.
    """
    _load_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"detector: unknown name {name!r}; choose one of {', '.join(available_detectors())}"
        ) from None
    return factory(**kwargs)
