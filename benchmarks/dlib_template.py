"""Where do RetinaFace's five landmarks fall inside dlib's own 150x150 face chips?

dlib cuts its chips (``get_face_chip(img, shape, 150, 0.25)``) from its 5-point shape predictor
(eye corners and the bottom of the nose); facemetric detects with RetinaFace (eye centres, nose
tip, mouth corners). To cut dlib-style chips from RetinaFace's points, this maps them through
dlib's own chip transform on real photos and averages: the result is the ``dlib`` template of
``facemetric.data.align``. The chip transform is dlib's own (``get_face_chip_details`` and the
mapping of ``get_mapping_to_chip``), checked against ``dlib.get_face_chip`` pixel by pixel.
Needs dlib (``pip install dlib-bin``)::

    .venv/bin/python benchmarks/dlib_template.py ../shared/data/celeba-wild --sample 400
    .venv/bin/python benchmarks/dlib_template.py ../shared/data/celeba-crops --sample 1000
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.data.detect import create_detector
from facemetric.data.image import load_image
from facemetric.evaluate.embed import list_images
from facemetric.models.pretrained.dlib import locate

CHIP, PADDING = 150, 0.25
NAMES = ("left eye", "right eye", "nose tip", "left mouth", "right mouth")


def chip_transform(dlib: Any, shape: Any) -> np.ndarray:
    """dlib's own image -> chip affine map for a 5-point shape, as ``get_mapping_to_chip`` does:
    the corners of ``get_face_chip_details``'s rectangle, rotated by its angle about its centre,
    go to chip pixels (0, 0), (CHIP - 1, 0) and (CHIP - 1, CHIP - 1)."""
    import cv2

    details = dlib.get_face_chip_details(shape, size=CHIP, padding=PADDING)
    r, angle = details.rect, details.angle
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    cos, sin = math.cos(angle), math.sin(angle)

    def rotated(x: float, y: float) -> tuple[float, float]:
        dx, dy = x - cx, y - cy
        return cx + dx * cos - dy * sin, cy + dx * sin + dy * cos

    corners = [rotated(r.left(), r.top()), rotated(r.right(), r.top())]
    corners.append(rotated(r.right(), r.bottom()))
    chip = [[0, 0], [CHIP - 1, 0], [CHIP - 1, CHIP - 1]]
    return cv2.getAffineTransform(np.float32(corners), np.float32(chip)).astype(np.float64)


def inside(box: tuple[float, ...], rect: object) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return rect.left() <= cx <= rect.right() and rect.top() <= cy <= rect.bottom()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="photos ROOT/person/*")
    parser.add_argument("--sample", type=int, default=400, help="photos, evenly drawn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import cv2
    import dlib

    predictor = dlib.shape_predictor(str(locate().parent / "shape_predictor_5_face_landmarks.dat"))
    hog = dlib.get_frontal_face_detector()
    retina = create_detector("retinaface")
    images = list_images(args.root)
    rng = np.random.default_rng(args.seed)
    chosen = sorted(rng.choice(len(images), min(args.sample, len(images)), replace=False))
    points, pixel_errors = [], []
    start = time.perf_counter()
    no_hog = no_match = 0
    for i in chosen:
        image = load_image(args.root / images[i])
        rects = hog(image, 1)
        if not rects:
            no_hog += 1
            continue
        rect = max(rects, key=lambda r: r.area())
        shape = predictor(image, rect)
        faces = [d for d in retina.detect(image) if inside(d.box, rect)]
        if not faces:
            no_match += 1
            continue
        face = max(faces, key=lambda d: d.area)
        m = chip_transform(dlib, shape)
        mapped = np.asarray(face.landmarks, np.float64) @ m[:, :2].T + m[:, 2]
        points.append(mapped)
        if len(pixel_errors) < 50:  # the transform against dlib's own chip
            ours = cv2.warpAffine(image, m, (CHIP, CHIP), flags=cv2.INTER_LINEAR)
            theirs = np.asarray(dlib.get_face_chip(image, shape, size=CHIP, padding=PADDING))
            pixel_errors.append(np.abs(ours.astype(float) - theirs).mean())
    p = np.asarray(points)
    half = len(p) // 2
    mean = p.mean(0)
    print(
        f"{args.root}: {len(chosen)} photos, {len(p)} faces used ({no_hog} without a HOG face, "
        f"{no_match} without a RetinaFace face inside it), {time.perf_counter() - start:.0f} s"
    )
    print(
        f"dlib chip transform (cv2 warp) vs dlib.get_face_chip: mean abs pixel difference "
        f"{np.mean(pixel_errors):.2f} (0-255) over {len(pixel_errors)} chips"
    )
    print("RetinaFace points in dlib's 150 px chips (x, y): mean, std, split-half difference")
    for name, mu, sd, a, b in zip(
        NAMES, mean, p.std(0), p[:half].mean(0), p[half:].mean(0), strict=True
    ):
        diff = float(np.linalg.norm(a - b))
        print(
            f"  {name:12s} ({mu[0]:6.2f}, {mu[1]:6.2f})  std ({sd[0]:.2f}, {sd[1]:.2f})  {diff:.2f}"
        )
    print("as fractions of the chip side, for facemetric.data.align:")
    for mu in mean / CHIP:
        print(f"        [{mu[0]:.5f}, {mu[1]:.5f}],")


if __name__ == "__main__":
    main()
