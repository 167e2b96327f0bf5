"""How should our ArcFace-aligned crops be fed to the dlib teacher? Measured on CFP FF pairs.

dlib's network wants 150x150 chips cut by dlib's own 5-point alignment. This compares, on the
same pairs (a seeded subset of ``pairs_FF.tsv``, every fold and label alike), the 10-fold
verification accuracy of the dlib descriptor (cosine of unit vectors) for each way in
``facemetric.train.teacher.CHIP_MAKERS`` applied to our 112 px crops, against dlib's whole
pipeline on the original photos (HOG detector, largest face, else the whole photo)::

    .venv/bin/python benchmarks/teacher_alignment.py --crops work/crops/cfp \\
        --photos ../shared/data/cfp --pairs 600
    .venv/bin/python benchmarks/teacher_alignment.py --crops work/crops/cfp --measure-box 300

``--measure-box N`` prints where dlib's own chip lies inside our crops (mean over N crops),
the constant ``ARCFACE_TO_DLIB_BOX`` of the teacher.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from facemetric.data.image import load_image
from facemetric.evaluate.metrics import kfold_accuracy, tar_at_far
from facemetric.evaluate.protocols import read_pairs, subset_pairs
from facemetric.train.teacher import CHIP_MAKERS, DLIB_CHIP, DLIB_PADDING, DlibTeacher


def crop_path(crops: Path, image: str) -> Path:
    return crops / Path(image).with_suffix(".png")


def measure_box(teacher: DlibTeacher, crops: Path, n: int) -> None:
    dlib = teacher.dlib
    files = sorted(crops.glob("*/*.png"))[:: max(1, len(sorted(crops.glob("*/*.png"))) // n)][:n]
    boxes = []
    for f in files:
        face = load_image(f)
        s = face.shape[0]
        shape = teacher.shape_predictor(face, dlib.rectangle(0, 0, s - 1, s - 1))
        d = dlib.get_face_chip_details(shape, size=DLIB_CHIP, padding=DLIB_PADDING)
        r = d.rect
        boxes.append((r.left() / s, r.top() / s, r.width() / s, math.degrees(d.angle)))
    b = np.asarray(boxes)
    mean, std = b.mean(0), b.std(0)
    print(f"dlib chip box in our crops over {len(b)} crops (fractions of the side):")
    print(
        f"  left {mean[0]:.3f}±{std[0]:.3f} top {mean[1]:.3f}±{std[1]:.3f} "
        f"side {mean[2]:.3f}±{std[2]:.3f} angle {mean[3]:.2f}±{std[3]:.2f} deg"
    )
    print(f"ARCFACE_TO_DLIB_BOX = ({mean[0]:.3f}, {mean[1]:.3f}, {mean[2]:.3f})")


def original_embeddings(teacher: DlibTeacher, photos: Path, images: list[str]) -> np.ndarray:
    """dlib end to end on the photo: HOG detector, 5 points, chip, descriptor."""
    dlib = teacher.dlib
    detector = dlib.get_frontal_face_detector()
    out, found = [], 0
    for name in images:
        image = np.ascontiguousarray(load_image(photos / name))
        boxes = sorted(detector(image, 1), key=lambda r: -r.area())
        found += bool(boxes)
        h, w = image.shape[:2]
        rect = boxes[0] if boxes else dlib.rectangle(0, 0, w - 1, h - 1)
        chip = dlib.get_face_chip(
            image, teacher.shape_predictor(image, rect), size=DLIB_CHIP, padding=DLIB_PADDING
        )
        out.append(np.asarray(teacher.recognizer.compute_face_descriptor(chip)))
    print(f"  (HOG detector found a face in {found}/{len(images)} photos)")
    v = np.asarray(out, np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=Path, default=Path("work/crops/cfp"))
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cfp"))
    parser.add_argument("--pairs-file", type=Path, default=None, help="default PHOTOS/pairs_FF.tsv")
    parser.add_argument("--pairs", type=int, default=600, help="pairs in the subset")
    parser.add_argument("--modes", nargs="+", default=[*sorted(CHIP_MAKERS), "original"])
    parser.add_argument("--measure-box", type=int, default=0, metavar="N")
    args = parser.parse_args()

    teacher = DlibTeacher(alignment="resize")
    if args.measure_box:
        measure_box(teacher, args.crops, args.measure_box)
        return
    protocol = subset_pairs(read_pairs(args.pairs_file or args.photos / "pairs_FF.tsv"), args.pairs)
    images = protocol.images
    index = {name: i for i, name in enumerate(images)}
    same = np.asarray([p.same for p in protocol.pairs])
    folds = np.asarray([p.fold for p in protocol.pairs])
    print(f"{len(protocol.pairs)} pairs ({same.sum()} same), {len(images)} images")
    for mode in args.modes:
        start = time.perf_counter()
        if mode == "original":
            emb = original_embeddings(teacher, args.photos, images)
        else:
            teacher.alignment, teacher.make_chip = mode, CHIP_MAKERS[mode]
            faces = np.stack([load_image(crop_path(args.crops, name)) for name in images])
            emb = teacher.embed(faces)
        ms = 1000 * (time.perf_counter() - start) / len(images)
        a = emb[[index[p.image1] for p in protocol.pairs]]
        b = emb[[index[p.image2] for p in protocol.pairs]]
        scores = (a * b).sum(1)
        acc = kfold_accuracy(scores, same, folds)
        tar = tar_at_far(scores, same, 1e-2)
        print(
            f"{mode:<9} 10-fold acc {100 * acc.mean:6.2f}% ± {100 * acc.std:4.2f}  "
            f"TAR@FAR1e-2 {100 * tar.tar:6.2f}%  {ms:6.1f} ms/image",
            flush=True,
        )


if __name__ == "__main__":
    main()
