"""Gallery jobs on photo files: what ``facemetric gallery build`` and ``gallery add`` run (the
CLI only parses arguments into these calls). Identifying photos is ``recognize/photos.py``."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from facemetric.data.image import is_image_path, load_image
from facemetric.enrol.screen import LowQualityError, QualityPolicy, enrol_checked
from facemetric.errors import DatasetError, FaceNotFoundError, GalleryError, ImageReadError
from facemetric.gallery.records import FaceRecord
from facemetric.recognize.recognizer import EnrolResult, Recognizer


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
    floors (``quality``: refused by default, see ``facemetric.enrol.screen``); the person is saved
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
