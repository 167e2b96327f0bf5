"""YuNet from libfacedetection, through the ``yuface`` wheel (the model is compiled into its .so).

Nothing is downloaded. ``yuface.detect`` takes BGR and returns integer boxes (x, y, w, h), scores
in percent and landmarks in the protocol's order (image-left eye first). It uses OpenMP: a worker
process sets ``OMP_NUM_THREADS`` before the first call to bound its threads.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from facemetric.data.detection import Detection, register_detector
from facemetric.data.detectors.base import ScaledDetector, xywh_detection
from facemetric.errors import ConfigError


class YuNetDetector(ScaledDetector):
    """YuNet with 5 landmarks (whole-pixel precision)."""

    name = "yunet"

    def _load(self, threads: int | None) -> None:
        if threads:
            os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        try:
            from yuface import yuface as native
        except ImportError as exc:  # pragma: no cover - yuface is a dependency of facemetric
            raise ConfigError(f"detector yunet needs yuface installed ({exc})") from exc
        self._native: Any = native

    def _detect_raw(self, image: np.ndarray) -> list[Detection]:
        bgr = np.ascontiguousarray(image[..., ::-1])
        result = np.asarray(self._native.detect(bgr), dtype=np.float32).reshape(-1, 16)
        return [xywh_detection(row[1:5], float(row[0]) / 100.0, row[5:15]) for row in result]


register_detector("yunet")(YuNetDetector)
