"""Five-point face alignment: a similarity warp of the landmarks onto a face template.

Pure functions: the same code aligns dataset photos and webcam frames, so the model sees crops
made the same way in training and in use. The transform is the least-squares similarity
(Umeyama 1991, as in insightface/scikit-image), not LMEDS: with only five points a robust fit
throws away one or two of them and its result jumps between frames.

Templates are chosen by name (``TEMPLATES``): each model's ``ModelSpec.alignment`` names the one
its crops need, so every stage cuts faces the way the model in use wants. A face shrunk by more
than 2x is first reduced with a 2x image pyramid (as dlib's chip extraction does), so crops of
large faces are not aliased.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facemetric.data.detection import Detection, FaceDetector
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
# Where RetinaFace's five points fall inside dlib's own 150 px chips (get_face_chip, padding
# 0.25), as fractions of the side: the mean over 3,015 celeba-wild faces, measured by
# `benchmarks/dlib_template.py ../shared/data/celeba-wild --sample 3200` through dlib's own chip
# transform (its HOG detector and 5-point predictor); halves of the sample agree within 0.2 px
# and a sample of 998 celeba-crops faces within 1.1 px.
DLIB_TEMPLATE = np.array(
    [
        [0.31474, 0.30140],
        [0.67380, 0.29867],
        [0.49060, 0.52026],
        [0.33874, 0.67131],
        [0.64851, 0.66950],
    ],
    dtype=np.float32,
)
# The gallery's loose chips: the dlib template shrunk (x 0.78) about its eyes' midpoint, placed so
# that both the ArcFace crop (which reaches higher) and dlib's chip (which reaches lower) lie
# inside with ~2% to spare; at 200 px the eyes are 56 px apart, as many as in dlib's own chips.
# Any model's crop is cut again from such a chip, so a gallery outlives a change of model.
_DLIB_EYES = DLIB_TEMPLATE[:2].mean(axis=0)
GALLERY_TEMPLATE = ((DLIB_TEMPLATE - _DLIB_EYES) * 0.78 + np.array([0.5, 0.432])).astype(np.float32)
MIN_SIZE = 16
DEFAULT_TEMPLATE = "arcface"


@dataclass(frozen=True)
class FaceTemplate:
    """Where the five landmarks go in a square crop, as fractions of its side."""

    name: str
    points: np.ndarray  # (5, 2) fractions of the side, landmark order of ``Detection``
    size: int  # the crop size the template is made for (the default for its crops)
    description: str

    def at(self, size: int) -> np.ndarray:
        """The five points in pixels of a ``size`` x ``size`` crop."""
        if size < MIN_SIZE:
            raise ConfigError(f"size: aligned crops need at least {MIN_SIZE} pixels, got {size}")
        return (self.points * np.float32(size)).astype(np.float32)


TEMPLATES: dict[str, FaceTemplate] = {
    "arcface": FaceTemplate(
        "arcface",
        ARCFACE_TEMPLATE_112 / np.float32(112.0),
        112,
        "insightface's ArcFace template (112 px): the crops the backbones trained here use",
    ),
    "dlib": FaceTemplate(
        "dlib",
        DLIB_TEMPLATE,
        150,
        "dlib's face chips (150 px, padding 0.25) cut from RetinaFace's points: the dlib model",
    ),
    "gallery": FaceTemplate(
        "gallery",
        GALLERY_TEMPLATE,
        200,
        "loose chips the gallery keeps (200 px): every other template's crop fits inside",
    ),
}


def face_template(name: str) -> FaceTemplate:
    """The template registered as ``name``; ``ConfigError`` lists the choices."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ConfigError(
            f"template: unknown name {name!r}; choose one of {', '.join(sorted(TEMPLATES))}"
        ) from None


@dataclass(frozen=True)
class AlignedFace:
    """One detected face and its aligned crop (size x size x 3 uint8 RGB)."""

    detection: Detection
    crop: np.ndarray


def template(size: int = 112, name: str = DEFAULT_TEMPLATE) -> np.ndarray:
    """The five points of template ``name`` for a ``size`` x ``size`` crop, in pixels."""
    return face_template(name).at(size)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by a 2x3 affine ``matrix``."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ np.asarray(matrix, np.float64)[:, :2].T + np.asarray(matrix, np.float64)[:, 2]


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


def alignment_matrix(
    landmarks: np.ndarray, size: int = 112, name: str = DEFAULT_TEMPLATE
) -> np.ndarray:
    """The 2x3 similarity taking ``landmarks`` (image pixels) into a ``size`` crop of template
    ``name``."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise ConfigError(f"landmarks: expected five finite (x, y) points, got {points.shape}")
    return similarity_transform(points, template(size, name))


def warp_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """``image`` warped by ``matrix`` into a ``size`` x ``size`` crop (black outside the image).

    When the warp shrinks by more than 2x, only the part of the image the crop sees is reduced
    first with a 2x Gaussian pyramid until the rest of the shrink is at most 2x, as dlib does
    before its bilinear chip extraction: bilinear sampling alone would alias large faces."""
    m = np.asarray(matrix, dtype=np.float64).copy()
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    image = np.ascontiguousarray(image)
    if 0.0 < scale < 0.5:
        halvings = int(np.ceil(np.log2(0.5 / scale)))
        inverse = cv2.invertAffineTransform(m)
        corners = transform_points(inverse, np.array([[0, 0], [size, 0], [0, size], [size, size]]))
        margin = 2 ** (halvings + 2)
        h, w = image.shape[:2]
        x0 = int(np.clip(np.floor(corners[:, 0].min()) - margin, 0, w))
        y0 = int(np.clip(np.floor(corners[:, 1].min()) - margin, 0, h))
        x1 = int(np.clip(np.ceil(corners[:, 0].max()) + margin, 0, w))
        y1 = int(np.clip(np.ceil(corners[:, 1].max()) + margin, 0, h))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            image = image[y0:y1, x0:x1]
            m[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)
            for _ in range(halvings):
                if min(image.shape[:2]) < 2:
                    break
                image = cv2.pyrDown(image)  # pixel i of the result is pixel 2i of its input
                m[:, :2] *= 2.0
    crop = cv2.warpAffine(
        image,
        m,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    if crop.ndim == 2:
        crop = np.repeat(crop[..., np.newaxis], 3, axis=2)
    return crop


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int = 112, name: str = DEFAULT_TEMPLATE
) -> np.ndarray:
    """Warp ``image`` so its five ``landmarks`` land on template ``name`` in a ``size`` crop."""
    return warp_crop(image, alignment_matrix(landmarks, size, name), size)


def detect_and_align(
    image: np.ndarray,
    detector: FaceDetector,
    size: int = 112,
    max_side: int | None = None,
    template: str = DEFAULT_TEMPLATE,
) -> list[AlignedFace]:
    """Every face ``detector`` finds in ``image``, aligned to ``template``, largest box first.

    ``max_side`` (optional) is the detector's working size for this call; the crops are always
    cut from the full-resolution image."""
    found = detector.detect(image) if max_side is None else detector.detect(image, max_side)
    detections = sorted(found, key=lambda d: -d.area)
    return [
        AlignedFace(det, align_face(image, det.landmarks, size, template)) for det in detections
    ]
