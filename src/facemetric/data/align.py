"""Five-point face alignment: a similarity warp of the landmarks onto the ArcFace template.

Pure functions: the same code aligns dataset photos and webcam frames, so the model sees crops
made the same way in training and in use. The transform is the least-squares similarity
(Umeyama 1991, as in insightface/scikit-image), not LMEDS: with only five points a robust fit
throws away one or two of them and its result jumps between frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facemetric.data.detect import Detection, FaceDetector
from facemetric.errors import ConfigError

# insightface's 112x112 template: image-left eye, image-right eye, nose, mouth corners.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
MIN_SIZE = 16


@dataclass(frozen=True)
class AlignedFace:
    """One detected face and its aligned crop (size x size x 3 uint8 RGB)."""

    detection: Detection
    crop: np.ndarray


def template(size: int = 112) -> np.ndarray:
    """The five template points for a ``size`` x ``size`` crop (the 112 template scaled)."""
    if size < MIN_SIZE:
        raise ConfigError(f"size: aligned crops need at least {MIN_SIZE} pixels, got {size}")
    return ARCFACE_TEMPLATE_112 * np.float32(size / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``
    with least squared error (Umeyama's closed form, reflection excluded)."""
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ConfigError(f"landmarks: need matching (N>=2, 2) point sets, got {src.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var < 1e-12:
        raise ConfigError("landmarks: all points coincide, no transform fits")
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / src_var)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp ``image`` so its five ``landmarks`` land on the template of a ``size`` crop."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise ConfigError(f"landmarks: expected five finite (x, y) points, got {points.shape}")
    matrix = similarity_transform(points, template(size))
    crop = cv2.warpAffine(
        np.ascontiguousarray(image),
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    if crop.ndim == 2:
        crop = np.repeat(crop[..., np.newaxis], 3, axis=2)
    return crop


def detect_and_align(
    image: np.ndarray, detector: FaceDetector, size: int = 112, max_side: int | None = None
) -> list[AlignedFace]:
    """Every face ``detector`` finds in ``image``, aligned, largest box first.

    ``max_side`` (optional) is the detector's working size for this call; the crops are always
    cut from the full-resolution image."""
    found = detector.detect(image) if max_side is None else detector.detect(image, max_side)
    detections = sorted(found, key=lambda d: -d.area)
    return [AlignedFace(det, align_face(image, det.landmarks, size)) for det in detections]
