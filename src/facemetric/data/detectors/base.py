"""What every detector shares: fit the image to the network's working size, map results back.

Each detector implements ``_load`` (its network, bounded to ``threads``) and ``_detect_raw`` on
an image already resized/padded for it; the base class holds the settings every detector takes
and their defaults, scales large photos down (speed), can pad small loose crops (``pad_small``;
off by default: on 100 CFP and 100 CelebA crops RetinaFace and YuNet found every face without it,
twice as fast), filters by score and returns ``Detection``s in original pixels, highest score
first.
"""

from __future__ import annotations

import abc

import cv2
import numpy as np

from facemetric.data.detection import Detection
from facemetric.errors import ConfigError


def check_detector_args(name: str, min_score: float, max_side: int, pad_small: int) -> None:
    """Refuse settings no detector can work with, naming the field."""
    if not 0.0 <= min_score <= 1.0:
        raise ConfigError(f"{name}: min_score must be within [0, 1], got {min_score}")
    if max_side < 64:
        raise ConfigError(f"{name}: max_side must be at least 64 pixels, got {max_side}")
    if pad_small < 0:
        raise ConfigError(f"{name}: pad_small must be >= 0 pixels, got {pad_small}")


def xywh_detection(xywh: np.ndarray, score: float, landmarks: np.ndarray) -> Detection:
    """A ``Detection`` from a network's (x, y, width, height) box; landmarks as float32 (5, 2)."""
    x, y, w, h = (float(v) for v in xywh)
    return Detection(
        box=(x, y, x + w, y + h),
        score=score,
        landmarks=np.asarray(landmarks, dtype=np.float32).reshape(5, 2),
    )


class ScaledDetector(abc.ABC):
    """Resize to at most ``max_side``, pad images smaller than ``pad_small``, map boxes back;
    ``threads`` bounds the network's threads (None: its own default)."""

    name = "base"

    def __init__(
        self,
        min_score: float = 0.8,
        max_side: int = 640,
        pad_small: int = 0,
        threads: int | None = None,
    ) -> None:
        check_detector_args(self.name, min_score, max_side, pad_small)
        self.min_score = float(min_score)
        self.max_side = int(max_side)
        self.pad_small = int(pad_small)
        self._load(int(threads) if threads else None)

    @abc.abstractmethod
    def _load(self, threads: int | None) -> None:
        """Load the network (ConfigError naming the package when it is missing)."""

    @abc.abstractmethod
    def _detect_raw(self, image: np.ndarray) -> list[Detection]:
        """Faces in a prepared HxWx3 uint8 RGB image, in that image's pixels."""

    def detect(self, image: np.ndarray, max_side: int | None = None) -> list[Detection]:
        """Faces in an HxWx3 uint8 RGB image (any size), highest score first.

        ``max_side`` replaces the detector's own for this call (e.g. smaller for webcam frames,
        where faces are large)."""
        if max_side is not None:
            check_detector_args(self.name, self.min_score, max_side, self.pad_small)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ConfigError(
                f"{self.name}: expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}"
            )
        prepared, scale, offset = self._prepare(image, max_side or self.max_side)
        h, w = image.shape[:2]
        found = []
        for det in self._detect_raw(prepared):
            if det.score < self.min_score:
                continue
            box = (np.asarray(det.box, dtype=np.float64).reshape(2, 2) - offset) / scale
            box = np.clip(box, 0, [w, h])
            landmarks = ((det.landmarks.astype(np.float64) - offset) / scale).astype(np.float32)
            x1, y1, x2, y2 = (float(v) for v in box.reshape(-1))
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            found.append(Detection(box=(x1, y1, x2, y2), score=det.score, landmarks=landmarks))
        return sorted(found, key=lambda d: -d.score)

    def _prepare(self, image: np.ndarray, max_side: int) -> tuple[np.ndarray, float, np.ndarray]:
        h, w = image.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        offset = np.zeros(2)
        longest = max(image.shape[:2])
        if self.pad_small and longest < self.pad_small:
            # A loose crop: put it in the middle of a grey canvas so the face looks like part of
            # a scene, at the scale the detector's anchors expect.
            ph, pw = image.shape[:2]
            top, left = (longest * 2 - ph) // 2, (longest * 2 - pw) // 2
            canvas = np.full((longest * 2, longest * 2, 3), 127, dtype=np.uint8)
            canvas[top : top + ph, left : left + pw] = image
            image, offset = canvas, np.array([left, top], dtype=np.float64)
        return np.ascontiguousarray(image), scale, offset
