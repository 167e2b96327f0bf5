"""Gallery and identification jobs on photo files: what ``facemetric gallery`` and
``facemetric identify`` run (the CLI only parses arguments into these calls)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.data.image import is_image_path, load_image
from facemetric.errors import DatasetError, FaceNotFoundError, GalleryError, ImageReadError
from facemetric.gallery.records import FaceRecord
from facemetric.gallery.store import GalleryStore
from facemetric.recognize import EnrolResult, FaceMatch, Recognizer
from facemetric.screen import LowQualityError, QualityPolicy, enrol_checked


@dataclass
class BuildReport:
    """What building or adding did: faces added per person, photos already in the gallery, and
    photos skipped (unreadable, no face) with why."""

    added: dict[str, int] = field(default_factory=dict)  # person -> faces added
    duplicates: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # photo -> why it was left out
    flagged: dict[str, str] = field(default_factory=dict)  # photo saved below a quality floor

    def merge(self, result: EnrolResult, flagged: dict[str, str] | None = None) -> None:
        if result.added:
            self.added[result.name] = self.added.get(result.name, 0) + len(result.added)
        self.duplicates += result.duplicates
        self.skipped.update(result.skipped)
        self.flagged.update(flagged or {})


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_template(folder: Path) -> str | None:
    """The template of the crops under ``folder`` (its or its parent's ``prepare.json``)."""
    return _folder_template(str(folder.resolve()))


@functools.lru_cache(maxsize=256)  # asked once per photo while building a gallery
def _folder_template(folder: str) -> str | None:
    from facemetric.data.prepare import read_crop_settings

    for candidate in (Path(folder), Path(folder).parent):
        settings = read_crop_settings(candidate)
        if settings is not None:
            return str(settings["template"])
    return None


def face_from_photo(
    recognizer: Recognizer,
    path: Path,
    aligned: bool | None = None,
    content_sha256: str | None = None,
) -> FaceRecord:
    """The largest face of the photo at ``path``.

    ``aligned=True`` takes the image as an already aligned crop (of the template its folder's
    ``prepare.json`` names); ``None`` (auto) does so for crops made by ``facemetric data align``
    (their folder's ``prepare.json`` says which template: the gallery cuts any model's crop from
    them), and when no face is detected in a small square image (a crop too tight for the
    detector)."""
    image = load_image(path)
    digest = content_sha256 or file_sha256(path)
    size = recognizer.input_size
    if aligned is None and folder_template(path.parent) is not None:
        aligned = True
    if not aligned:
        try:
            return recognizer.face_record(image, str(path), digest)
        except FaceNotFoundError:
            h, w = image.shape[:2]
            if aligned is False or abs(h - w) > 0.1 * max(h, w) or max(h, w) > 2 * size:
                raise
    record = FaceRecord.from_crop(image, folder_template(path.parent), str(path))
    return replace(record, content_sha256=digest)


def collect_faces(
    recognizer: Recognizer, name: str, paths: Sequence[Path], aligned: bool | None
) -> tuple[list[FaceRecord], int, dict[str, str]]:
    """Records of ``paths`` for ``name``: photos it already has are not read again (counted),
    unreadable or faceless ones are skipped with why."""
    known = recognizer.store.known_photos(name)
    records: list[FaceRecord] = []
    duplicates = 0
    skipped: dict[str, str] = {}
    for path in paths:
        try:
            digest = file_sha256(path)
            if digest in known:
                duplicates += 1
                continue
            records.append(face_from_photo(recognizer, path, aligned, digest))
            known.add(digest)
        except FaceNotFoundError:
            skipped[str(path)] = "no face found"
        except ImageReadError as exc:
            skipped[str(path)] = exc.reason
        except OSError as exc:
            skipped[str(path)] = f"cannot read ({exc.strerror})"
    return records, duplicates, skipped


def add_photos(
    recognizer: Recognizer,
    name: str,
    paths: Sequence[str | Path],
    aligned: bool | None = None,
    quality: QualityPolicy | None = None,
) -> BuildReport:
    """Enrol the largest face of each photo (or of each image under a folder) as ``name``.

    Unreadable or faceless photos are skipped and reported, so are photos below the quality
    floors (``quality``: refused by default, see ``facemetric.screen``); the person is saved
    with the rest. ``GalleryError`` only when no photo is usable and none was there already."""
    files = expand_images(paths)
    if not files:
        raise GalleryError(f"no photos given for {name!r}: nothing to add")
    records, duplicates, skipped = collect_faces(recognizer, name, files, aligned)
    report = BuildReport(duplicates=duplicates, skipped=skipped)
    if records or not duplicates:
        result, flagged = enrol_checked(recognizer, name, records, skipped, quality)
        report.merge(replace(result, duplicates=result.duplicates + duplicates), flagged)
    return report


def expand_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files of ``paths``: files as given, folders searched recursively (sorted), hidden
    entries skipped; ``DatasetError`` names a path that does not exist."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(
                f
                for f in sorted(path.rglob("*"))
                if f.is_file()
                and is_image_path(f)
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
        elif path.exists():
            out.append(path)
        else:
            raise DatasetError(f"{path}: no such file or folder")
    return out


def identity_folders(root: Path) -> list[Path]:
    """The person folders of ``root`` (``root/person/...``), sorted, hidden ones left out;
    ``DatasetError`` when ``root`` is no folder or has none."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected root/person/photo.jpg)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{root}: no identity folders (expected root/person/photo.jpg)")
    return folders


def build_gallery(
    recognizer: Recognizer,
    root: str | Path,
    aligned: bool | None = None,
    quality: QualityPolicy | None = None,
) -> BuildReport:
    """Enrol every identity folder of ``root`` (``root/person/**``, images at any depth).

    Building again adds only photos that are new; unreadable or faceless photos are skipped
    and reported, so are photos below the quality floors (``quality``, as in ``add_photos``);
    a person with no usable photo is left out."""
    root = Path(root)
    report = BuildReport()
    for folder in identity_folders(root):
        records, duplicates, skipped = collect_faces(
            recognizer, folder.name, expand_images([folder]), aligned
        )
        report.duplicates += duplicates
        report.skipped.update(skipped)
        if records:
            try:
                report.merge(*enrol_checked(recognizer, folder.name, records, None, quality))
            except LowQualityError as exc:  # every new photo of this person refused
                report.skipped.update(exc.refused)
    if not report.added and not report.duplicates:
        if any(why.startswith("low quality") for why in report.skipped.values()):
            raise DatasetError(
                f"{root}: no photo passed the quality checks (see why above, or enrol them "
                f"anyway with --allow-low-quality)"
            )
        raise DatasetError(f"{root}: no face found in any photo")
    return report


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
