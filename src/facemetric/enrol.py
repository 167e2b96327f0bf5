"""Gallery and identification jobs on photo files: what ``facemetric gallery`` and
``facemetric identify`` run (the CLI only parses arguments into these calls)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.data.image import is_image_path, load_image
from facemetric.errors import DatasetError, FaceNotFoundError, GalleryError
from facemetric.gallery.store import FaceRecord
from facemetric.recognize import FaceMatch, Recognizer


@dataclass
class BuildReport:
    added: dict[str, int] = field(default_factory=dict)  # person -> faces added
    skipped: list[str] = field(default_factory=list)  # photos without a usable face


def face_from_photo(recognizer: Recognizer, path: Path, aligned: bool | None = None) -> FaceRecord:
    """The largest face of the photo at ``path``.

    ``aligned=True`` takes the image as an already aligned crop; ``None`` (auto) does so only
    when no face is detected in a small square image (a crop too tight for the detector)."""
    image = load_image(path)
    size = recognizer.input_size
    if not aligned:
        faces = recognizer.detect(image)
        if faces:
            det = faces[0].detection
            return FaceRecord(faces[0].crop, str(path), det.box, det.landmarks)
        h, w = image.shape[:2]
        if aligned is False or abs(h - w) > 0.1 * max(h, w) or max(h, w) > 2 * size:
            raise FaceNotFoundError(path)
    import cv2

    crop = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return FaceRecord(np.ascontiguousarray(crop), str(path))


def add_photos(
    recognizer: Recognizer, name: str, paths: Sequence[str | Path], aligned: bool | None = None
) -> list[int]:
    """Enrol the largest face of each photo as ``name`` (all photos or none)."""
    if not paths:
        raise GalleryError(f"no photos given for {name!r}: nothing to add")
    records = [face_from_photo(recognizer, Path(p), aligned) for p in paths]
    return recognizer.add_faces(name, records)


def build_gallery(
    recognizer: Recognizer, root: str | Path, aligned: bool | None = None
) -> BuildReport:
    """Enrol every identity folder of ``root`` (``root/person/*.jpg``); faceless photos are
    skipped and listed, a person with no usable photo is left out."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected root/person/photo.jpg)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{root}: no identity folders (expected root/person/photo.jpg)")
    report = BuildReport()
    for folder in folders:
        records = []
        for path in sorted(p for p in folder.iterdir() if is_image_path(p)):
            try:
                records.append(face_from_photo(recognizer, path, aligned))
            except FaceNotFoundError:
                report.skipped.append(str(path))
        if records:
            recognizer.add_faces(folder.name, records)
            report.added[folder.name] = len(records)
    if not report.added:
        raise DatasetError(f"{root}: no face found in any photo")
    return report


def identify_photo(
    recognizer: Recognizer,
    path: str | Path,
    threshold: float | None = None,
    top_k: int | None = None,
) -> tuple[np.ndarray, list[FaceMatch]]:
    image = load_image(path)
    return image, recognizer.recognize(image, threshold=threshold, top_k=top_k)


def match_summary(m: FaceMatch) -> dict[str, Any]:
    """The JSON of one face as ``facemetric identify --json`` prints it."""
    d = m.to_dict()
    return {k: d[k] for k in ("box", "identity", "similarity", "is_match", "top_k")}


def annotate(image: np.ndarray, matches: Sequence[FaceMatch], out: str | Path) -> Path:
    """Draw boxes, names and similarities on a copy of ``image`` and save it to ``out``."""
    import cv2

    canvas = np.ascontiguousarray(image[:, :, ::-1].copy())  # RGB -> BGR for cv2
    scale = max(0.4, min(image.shape[:2]) / 800)
    for m in matches:
        x1, y1, x2, y2 = (round(v) for v in m.box)
        color = (60, 200, 60) if m.is_match else (40, 40, 230)
        label = f"{m.identity if m.is_match else 'unknown'} {m.similarity:.2f}"
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, max(1, int(2 * scale)))
        cv2.putText(
            canvas,
            label,
            (x1, max(12, y1 - 6)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6 * scale,
            color,
            max(1, int(2 * scale)),
            cv2.LINE_AA,
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), canvas):
        raise GalleryError(f"{out}: cannot write the annotated image (use .jpg or .png)")
    return out
