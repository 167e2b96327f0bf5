"""Quality figures of one detected face, and the floors a reference face must reach.

A reference photo that is blurred, tiny or in profile "matches everyone a little": enrolment
measures every face before it goes into the gallery. The figures come from what detection and
alignment already give (box, score, five landmarks, the aligned chip), so they cost well under a
millisecond a face:

- ``face_px``: the shorter side of the detector's box, in the photo's pixels;
- ``eye_px``: the distance between the eyes, in the photo's pixels (what the model really sees:
  a face of 20 px between the eyes is upscaled to ~56 px in the chip and looks blurred);
- ``sharpness``: variance of the Laplacian of the aligned chip's face region (grey, 100 px),
  divided by the region's own variance, so that contrast and brightness do not count;
- ``yaw``: estimated head turn in degrees, from where the nose and mouth fall between the eyes
  (0 frontal, about +-90 in profile; the sign says which way);
- ``roll``: tilt of the eye line in degrees (alignment undoes it; reported, not a floor);
- ``score``: the detector's confidence.

Pure functions: the same figures for the CLI, the API and the page. ``QualityFloors`` holds the
floors (defaults measured in ``benchmarks/enrol_quality.py``, see ``docs/quality.md``) and
``problems`` says, in words, which of them a face misses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from facemetric.errors import ConfigError

SHARP_SIZE = 100  # the chip's face region is resized to this side before the Laplacian
# The face region of a 200 px gallery chip (eyes at y ~ 86, mouth at ~ 136): its middle 60 %.
_REGION = (0.2, 0.8)
NOSE_DEPTH = 0.6  # how far the nose tip stands in front of the eyes, in eye widths
# The default consistency floor sits this far below the model's match threshold: a person's own
# photos often score a little below it against each other (on celeba-wild with dlib a quarter of
# them do, another person's photo scores ~0.12 below; benchmarks/enrol_quality.py).
CONSISTENCY_MARGIN = 0.05


@dataclass(frozen=True)
class QualityFloors:
    """The least a reference face must show to be enrolled (0 or None: that check is off).

    Defaults: ``benchmarks/enrol_quality.py`` on ``../shared/data`` (docs/quality.md): each
    refuses a few percent of ordinary photos at most, and most of the blurred copies, tiny
    faces and profiles planted among them."""

    min_eye_px: float = 16.0
    min_sharpness: float = 0.2
    max_yaw: float = 45.0
    min_score: float = 0.7
    # median similarity to the person's other references below which a photo is "unlike the
    # rest"; None: ``consistency_floor`` of the model's match threshold (a score scale belongs
    # to its model)
    min_consistency: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ConfigError(f"quality floor {f.name}: expected a number >= 0, got {value!r}")

    def to_dict(self) -> dict[str, float | None]:
        return {k: None if v is None else float(v) for k, v in asdict(self).items()}


def consistency_floor(threshold: float) -> float:
    """The default consistency floor for a model whose match threshold is ``threshold``."""
    return float(threshold) - CONSISTENCY_MARGIN


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the chip's face region over the region's own variance
    (0 for a flat region): blur and upscaling lower it, contrast does not change it."""
    grey = chip if chip.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(chip), cv2.COLOR_RGB2GRAY)
    h, w = grey.shape[:2]
    a, b = _REGION
    region = grey[int(a * h) : int(b * h), int(a * w) : int(b * w)]
    if region.size == 0:
        return 0.0
    region = cv2.resize(region, (SHARP_SIZE, SHARP_SIZE), interpolation=cv2.INTER_AREA)
    region = region.astype(np.float32)
    spread = float(region.var())
    if spread < 1e-6:
        return 0.0
    return float(cv2.Laplacian(region, cv2.CV_32F, ksize=3).var()) / spread


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, roll) in degrees estimated from the five landmarks (image-left eye, image-right
    eye, nose, mouth corners).

    Roll is the eye line's angle. For yaw the nose tip is projected on the eye line: in a
    frontal face it falls half-way between the eyes; turned by ``yaw`` it moves
    ``depth * sin(yaw)`` while the eyes close up to ``width * cos(yaw)``, so
    ``tan(yaw) = offset / NOSE_DEPTH`` (a simple head model; detectors put the landmarks of a
    profile where they guess, so beyond ~60 degrees it only says "far turned")."""
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    left, right = p[0], p[1]
    axis = right - left
    width = float(np.hypot(*axis))
    if width < 1e-6:
        return 90.0, 0.0
    roll = math.degrees(math.atan2(axis[1], axis[0]))
    unit = axis / width
    nose = float(np.dot(p[2] - (left + right) / 2, unit)) / width
    return math.degrees(math.atan(nose / NOSE_DEPTH)), roll


def face_quality(
    chip: np.ndarray,
    landmarks: np.ndarray | None = None,
    box: tuple[float, float, float, float] | None = None,
    score: float | None = None,
) -> dict[str, Any]:
    """The quality figures of one face (see the module's doc), rounded for storage; figures
    that need a detection are left out for an already aligned crop."""
    out: dict[str, Any] = {"sharpness": round(sharpness(chip), 4)}
    if box is not None:
        x1, y1, x2, y2 = box
        out["face_px"] = round(float(min(x2 - x1, y2 - y1)), 1)
    if landmarks is not None:
        marks = np.asarray(landmarks, np.float64).reshape(5, 2)
        out["eye_px"] = round(float(np.hypot(*(marks[1] - marks[0]))), 1)
        yaw, roll = pose(marks)
        out["yaw"] = round(yaw, 1)
        out["roll"] = round(roll, 1)
    if score is not None:
        out["score"] = round(float(score), 4)
    return out


def shown(value: float, bound: float, decimals: int = 0) -> str:
    """``value`` with the fewest decimals (from ``decimals``) that keep it apart from ``bound``
    on the page: 15.6 px against a floor of 16 reads "15.6", never "16"."""
    for d in range(decimals, 4):
        if f"{value:.{d}f}" != f"{bound:.{d}f}":
            return f"{value:.{d}f}"
    return f"{value:.4f}"


def problems(figures: dict[str, Any], floors: QualityFloors) -> list[str]:
    """Why a face with these figures is below ``floors``, one short phrase each ([] if none),
    each saying the rule as it is applied (at least / at most) and the figure measured."""
    out: list[str] = []

    def below(key: str, floor: float | None) -> float | None:
        value = figures.get(key)
        if not floor or value is None:
            return None
        return float(value) if float(value) < floor else None

    if (v := below("eye_px", floors.min_eye_px)) is not None:
        f = floors.min_eye_px
        out.append(f"face too small (at least {f:g} px between the eyes, got {shown(v, f)})")
    if (v := below("sharpness", floors.min_sharpness)) is not None:
        f = floors.min_sharpness
        out.append(f"blurred (sharpness at least {f:g}, got {shown(v, f, 3)})")
    yaw = figures.get("yaw")
    if floors.max_yaw and yaw is not None and abs(float(yaw)) > floors.max_yaw:
        f, v = floors.max_yaw, abs(float(yaw))
        out.append(f"turned away (yaw {shown(v, f)}°, above the {f:g}° limit)")
    if (v := below("score", floors.min_score)) is not None:
        f = floors.min_score
        out.append(f"unclear face (detector score at least {f:g}, got {shown(v, f, 2)})")
    if (v := below("consistency", floors.min_consistency)) is not None:
        f = float(floors.min_consistency or 0.0)  # set: below() found it
        out.append(
            f"unlike the person's other photos (similarity to them at least {f:g}, "
            f"got {shown(v, f, 3)})"
        )
    return out
