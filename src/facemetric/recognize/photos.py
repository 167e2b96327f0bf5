"""Who is in each photo file: what ``facemetric identify`` runs on images (the CLI only
parses arguments into these calls), with its JSON, CSV and annotated-image outputs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.data.image import load_image
from facemetric.errors import GalleryError, ImageReadError
from facemetric.gallery.store import GalleryStore
from facemetric.recognize.recognizer import FaceMatch, Recognizer


@dataclass(frozen=True)
class PhotoResult:
    """Who is in one image: its faces, or why it could not be read (``error``)."""

    path: Path
    image: np.ndarray | None
    matches: list[FaceMatch]
    error: str | None = None


def require_faces(store: GalleryStore) -> None:
    """``GalleryError`` naming the gallery and how to build it when it holds no face: every
    face would be "unknown", which looks like an answer but is a mistake (a wrong ``--db``)."""
    if store.count_faces() == 0:
        raise GalleryError(
            f"{store.path}: the gallery is empty (no faces), every face would be unknown; "
            f"build it with: facemetric gallery build PHOTOS --db {store.path}"
        )


def identify_photos(
    recognizer: Recognizer,
    paths: Sequence[Path],
    threshold: float | None = None,
    top_k: int | None = None,
) -> Iterator[PhotoResult]:
    """Who is in each image of ``paths``, one at a time (an unreadable image comes back with
    its ``error`` and the rest go on); ``GalleryError`` at once when the gallery is empty
    (unless unknown faces are being kept: then an empty gallery is a start)."""
    if getattr(recognizer, "unknown_keeper", None) is None:
        require_faces(recognizer.store)
    return _identify_each(recognizer, list(paths), threshold, top_k)


def _identify_each(
    recognizer: Recognizer, paths: list[Path], threshold: float | None, top_k: int | None
) -> Iterator[PhotoResult]:
    for path in paths:
        try:
            image = load_image(path)
        except ImageReadError as exc:
            yield PhotoResult(path, None, [], exc.reason)
            continue
        yield PhotoResult(
            path, image, recognizer.recognize(image, threshold, top_k, source=str(path))
        )


def match_summary(m: FaceMatch) -> dict[str, Any]:
    """The JSON of one face as ``facemetric identify --json`` prints it."""
    d = m.to_dict()
    keys = ("box", "identity", "similarity", "is_match", "reason", "top_k", "decision")
    return {k: d[k] for k in keys}


def photo_summary(result: PhotoResult) -> dict[str, Any]:
    """The JSON object of one image as ``facemetric identify --json`` prints it."""
    out: dict[str, Any] = {
        "image": str(result.path),
        "faces": [match_summary(m) for m in result.matches],
    }
    if result.error is not None:
        out["error"] = result.error
    return out


CSV_COLUMNS = (
    "image", "face", "x1", "y1", "x2", "y2", "identity", "similarity", "is_match",
    "score", "threshold", "reason", "explanation",
)  # fmt: skip


def _decision_columns(m: FaceMatch) -> list[str]:
    """score (the one compared), threshold, reason, explanation: as the text and JSON say."""
    d = m.decision
    if d is None:
        return ["", "", "", ""]
    return [f"{d.compared:.4f}", f"{d.threshold:.4f}", d.reason, d.explain()]


def csv_rows(result: PhotoResult) -> list[list[str]]:
    """One ``CSV_COLUMNS`` row per face (face numbered from 1, largest first; identity
    "unknown" below the threshold); none for an image without faces."""
    return [
        [
            str(result.path),
            str(i),
            *(f"{v:.1f}" for v in m.box),
            m.identity if m.is_match and m.identity else "unknown",
            f"{m.similarity:.4f}",
            "true" if m.is_match else "false",
            *_decision_columns(m),
        ]
        for i, m in enumerate(result.matches, 1)
    ]


def label_height(height: int, width: int) -> int:
    """Pixel height of ``annotate``'s label text: 3 % of the photo's shorter side (at least
    14 px), so labels stay readable on a 6000 px photo as on a webcam frame."""
    return max(14, round(0.03 * min(height, width)))


def annotate(image: np.ndarray, matches: Sequence[FaceMatch], out: str | Path) -> Path:
    """Draw boxes, names and similarities on a copy of ``image`` and save it to ``out``.

    Labels are white on a box of the face's colour (green match, red unknown), sized by
    ``label_height``, above the face or below it when there is no room, kept inside the photo."""
    import cv2

    canvas = np.ascontiguousarray(image[:, :, ::-1].copy())  # RGB -> BGR for cv2
    h, w = canvas.shape[:2]
    text_h = label_height(h, w)
    font = cv2.FONT_HERSHEY_SIMPLEX
    thickness = max(1, round(text_h / 12))
    font_scale = cv2.getFontScaleFromHeight(font, text_h, thickness)
    pad = max(2, text_h // 4)
    for m in matches:
        x1, y1, x2, y2 = (round(v) for v in m.box)
        color = (60, 170, 60) if m.is_match else (40, 40, 220)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, max(2, thickness))
        label = f"{m.identity if m.is_match else 'unknown'} {m.similarity:.4f}"
        (tw, th), base = cv2.getTextSize(label, font, font_scale, thickness)
        box_w, box_h = tw + 2 * pad, th + base + 2 * pad
        top = y1 - box_h if y1 >= box_h else min(max(0, y2), max(0, h - box_h))
        left = min(max(0, x1), max(0, w - box_w))
        cv2.rectangle(canvas, (left, top), (left + box_w, top + box_h), color, cv2.FILLED)
        cv2.putText(
            canvas,
            label,
            (left + pad, top + pad + th),
            font,
            font_scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), canvas):
        raise GalleryError(f"{out}: cannot write the annotated image (use .jpg or .png)")
    return out
