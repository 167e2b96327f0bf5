"""Face detection: detectors chosen by name (``create_detector``) from the registry in
``detection.py``, all answering the one ``FaceDetector`` interface with ``Detection``s.

The built-in detectors live in ``facemetric.data.detectors`` (one module each) and register
themselves when it is imported, here; their models load only when one is created.
"""

from __future__ import annotations

from typing import Any

import facemetric.data.detectors  # noqa: F401  (registers retinaface, yunet, mtcnn)
from facemetric.data.detection import DETECTORS, FaceDetector
from facemetric.errors import ConfigError

# benchmarks/detectors.py on 200 celeba-wild photos: RetinaFace and YuNet both found 198 (MTCNN
# 195), none of the 128 crops looked at was a wrong face; RetinaFace took 41 ms a photo against
# 61 (YuNet) and 421 (MTCNN) and gives sub-pixel landmarks (YuNet whole pixels).
DEFAULT_DETECTOR = "retinaface"


def available_detectors() -> list[str]:
    """Names ``create_detector`` accepts (a name may still need its optional package)."""
    return sorted(DETECTORS)


def create_detector(name: str = DEFAULT_DETECTOR, **kwargs: Any) -> FaceDetector:
    """Build the detector registered as ``name`` (weights come from its installed package).

    Common keyword arguments: ``min_score``, ``max_side`` (larger images are scaled down),
    ``pad_small`` (smaller images are padded) and ``threads``.
    """
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise ConfigError(
            f"detector: unknown name {name!r}; choose one of {', '.join(available_detectors())}"
        ) from None
    return factory(**kwargs)
