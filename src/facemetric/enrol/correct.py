"""Correcting an answer from the photo (or frame) it was given for: what ``facemetric gallery
correct``, ``POST /api/corrections`` and the page's buttons run.

The face is found again in the image (the one whose box overlaps ``box`` most, else face
number ``face`` as ``identify`` numbers them, else the largest), embedded, scored against the
person as the decision scores it, and stored through ``facemetric.gallery.corrections``; the
recognizer's gallery is brought up to date at once, so the next answer already knows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facemetric.errors import ConfigError, FaceNotFoundError
from facemetric.gallery.corrections import Correction, CorrectionStore
from facemetric.gallery.records import FaceRecord
from facemetric.recognize.recognizer import Recognizer
from facemetric.recognize.tracking import iou

MIN_OVERLAP = 0.3  # a box given must overlap a detected face this much to pick it


def parse_box(text: str | None) -> tuple[float, float, float, float] | None:
    """``"x1,y1,x2,y2"`` -> a box; ``ConfigError`` naming the value when it is not one."""
    if text is None or not text.strip():
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1]:
        raise ConfigError(f"box: expected x1,y1,x2,y2 with x2 > x1 and y2 > y1, got {text!r}")
    return values[0], values[1], values[2], values[3]


def pick_face(
    recognizer: Recognizer,
    image: np.ndarray,
    box: Sequence[float] | None = None,
    face: int | None = None,
    source: str | None = None,
) -> FaceRecord:
    """The record of the face meant: by ``box`` (largest overlap), by number ``face`` (1 =
    the largest) or the largest; ``FaceNotFoundError`` names ``source`` when there is none."""
    faces = recognizer.detect(image)
    label = source or "photo"
    if not faces:
        raise FaceNotFoundError(label)
    chosen = faces[0]
    if box is not None:
        overlaps = [iou(list(box), list(f.detection.box)) for f in faces]
        best = int(np.argmax(overlaps))
        if overlaps[best] < MIN_OVERLAP:
            raise FaceNotFoundError(f"{label} (no face at box {','.join(f'{v:g}' for v in box)})")
        chosen = faces[best]
    elif face is not None:
        if not 1 <= face <= len(faces):
            raise ConfigError(f"face: {face} is not a face of {label} (it has {len(faces)})")
        chosen = faces[face - 1]
    return FaceRecord.from_photo(image, chosen, source, recognizer.crop_for)


def correct_face(
    recognizer: Recognizer,
    kind: str,
    person: str,
    record: FaceRecord,
    source: str | None = None,
    note: str | None = None,
) -> Correction:
    """Store a correction of ``person`` on ``record`` and bring the recognizer up to date."""
    from facemetric.gallery.records import record_crop

    with recognizer._lock:  # the embedder is not re-entrant across threads
        vector = recognizer.embedder.embed(record_crop(record, recognizer.embedder.spec)[None])
    similarity = None
    for cands, _ in recognizer.decide(vector, top_k=max(recognizer.top_k, 10)):
        similarity = next((c.similarity for c in cands if c.identity == person), None)
    with recognizer._lock:
        done = CorrectionStore(recognizer.store).add(
            kind, person, record, recognizer.embedder, vector[0], similarity, source, note
        )
    recognizer.reload()
    return done


def correct_photo(
    recognizer: Recognizer,
    image: np.ndarray,
    kind: str,
    person: str,
    box: Sequence[float] | None = None,
    face: int | None = None,
    source: str | None = None,
    note: str | None = None,
) -> Correction:
    """Mark the answer for one face of ``image`` ``wrong`` ("not ``person``") or
    ``confirmed``."""
    record = pick_face(recognizer, image, box, face, source)
    return correct_face(recognizer, kind, person, record, source, note)


def undo_correction(recognizer: Recognizer, correction_id: int) -> Correction:
    """Take a correction back and bring the recognizer up to date."""
    done = CorrectionStore(recognizer.store).undo(correction_id)
    recognizer.reload()
    return done
