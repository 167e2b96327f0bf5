"""The faces a gallery keeps, and how any model's crop is cut from them.

A gallery outlives its model: a fine-tune, a promoted ResNet50 or the pretrained dlib network
each want their own crop (template and size, ``ModelSpec.alignment`` and ``input_size``). So the
gallery keeps, per face, a loose *chip* (the ``gallery`` template of ``facemetric.data.align``,
200 px, room around the face) with the five landmarks' positions in it, and cuts each model's
crop from the chip when that model first embeds the face. At enrolment the model in use embeds
the crop cut straight from the photo (``FaceRecord.crop``), which is never stored.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.data.align import (
    AlignedFace,
    align_face,
    alignment_matrix,
    template,
    transform_points,
    warp_crop,
)

if TYPE_CHECKING:
    from facemetric.models.embedder import ModelSpec

CHIP_TEMPLATE = "gallery"
CHIP_SIZE = 200


@dataclass(frozen=True)
class FaceRecord:
    """A reference face to add to the gallery.

    ``chip``: what the gallery stores, cut with ``chip_template`` (None: a crop of unknown
    template, used as it is); ``chip_landmarks``: the five points in the chip (None: where the
    template puts them). ``crop``/``crop_for``: the model's own crop (template, size) cut from
    the photo, used for the first embedding and not stored. ``content_sha256`` names the photo
    (or, without one, the chip): a person never gets the same one twice.
    """

    chip: np.ndarray
    chip_template: str | None = None
    chip_landmarks: np.ndarray | None = None
    source: str | None = None
    box: tuple[float, float, float, float] | None = None
    landmarks: np.ndarray | None = None
    crop: np.ndarray | None = None
    crop_for: tuple[str, int] | None = None
    content_sha256: str | None = None
    quality: dict[str, Any] | None = None  # quality figures of the face (stored with it)
    chip_png: bytes | None = None  # the chip already encoded (imports): stored as it is

    @classmethod
    def from_photo(
        cls,
        image: np.ndarray,
        face: AlignedFace,
        source: str | None = None,
        crop_for: tuple[str, int] | None = None,
        content_sha256: str | None = None,
    ) -> FaceRecord:
        """The record of a detected ``face`` of ``image``; ``face.crop`` is the model's crop
        (cut for ``crop_for``: template, size)."""
        from facemetric.data.quality import face_quality

        det = face.detection
        marks = np.asarray(det.landmarks, dtype=np.float64)
        matrix = alignment_matrix(marks, CHIP_SIZE, CHIP_TEMPLATE)
        chip = warp_crop(image, matrix, CHIP_SIZE)
        return cls(
            chip=chip,
            chip_template=CHIP_TEMPLATE,
            chip_landmarks=transform_points(matrix, marks).astype(np.float32),
            source=source,
            box=tuple(float(v) for v in det.box),  # type: ignore[arg-type]
            landmarks=marks.astype(np.float32),
            crop=face.crop,
            crop_for=crop_for,
            content_sha256=content_sha256,
            quality=face_quality(chip, marks, det.box, det.score),
        )

    @classmethod
    def from_crop(
        cls, crop: np.ndarray, template_name: str | None = None, source: str | None = None
    ) -> FaceRecord:
        """An already aligned crop (``facemetric data align`` output): stored as it is."""
        return cls(chip=np.ascontiguousarray(crop), chip_template=template_name, source=source)

    @classmethod
    def from_aligned(cls, face: AlignedFace, source: str | None = None) -> FaceRecord:
        """A detector's aligned face with no photo at hand: its crop is the chip (template
        unknown to the gallery, so other models get it resized)."""
        det = face.detection
        box = tuple(float(v) for v in det.box)
        return cls(
            chip=face.crop,
            chip_template=None,
            source=source,
            box=box,  # type: ignore[arg-type]
            landmarks=np.asarray(det.landmarks, np.float32),
        )

    def digest(self) -> str:
        """``content_sha256``, else a hash of the chip's pixels."""
        if self.content_sha256:
            return self.content_sha256
        return chip_digest(self.chip)


CHIP_FORMATS = ("png", "jpeg", "webp")
# Chosen by benchmarks/chip_format.py (docs/shared-gallery.md): JPEG at quality 95 re-embeds
# within noise of the lossless PNG (CFP FF/FP accuracy and open-set rates; every face's
# embedding at cosine >= 0.9995 of its PNG chip's) at a quarter of the bytes (12.8 KB against
# 49.6 KB) and a sixth of the encoding time; WebP is smaller still but 10-20x slower to encode.
DEFAULT_CHIP_FORMAT = "jpeg"
CHIP_QUALITY = {"jpeg": 95, "webp": 95}  # the lossy formats' default quality
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"))
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def check_chip_format(fmt: str) -> str:
    """``fmt`` lower-cased when it is one of ``CHIP_FORMATS`` (``jpg`` is ``jpeg``), else
    ``GalleryError`` naming it."""
    name = str(fmt).strip().lower()
    name = "jpeg" if name == "jpg" else name
    if name not in CHIP_FORMATS:
        from facemetric.errors import GalleryError

        raise GalleryError(f"chip format: {fmt!r} is not one of {', '.join(CHIP_FORMATS)}")
    return name


def encode_chip(
    crop: np.ndarray, fmt: str = DEFAULT_CHIP_FORMAT, quality: int | None = None
) -> bytes:
    """A chip's stored bytes: ``png`` (lossless), ``jpeg`` or ``webp`` (lossy, at ``quality``,
    default ``CHIP_QUALITY``). Decoding tells the format from the bytes (``chip_format``), so a
    gallery may hold chips of every format."""
    from PIL import Image

    fmt = check_chip_format(fmt)
    img = Image.fromarray(np.ascontiguousarray(crop, dtype=np.uint8))
    buf = io.BytesIO()
    if fmt == "png":
        # Level 1: a third of the default level's time (16 -> 5 ms a chip here) for 6 % more bytes.
        img.save(buf, format="PNG", compress_level=1)
    elif fmt == "jpeg":
        img.save(buf, format="JPEG", quality=quality or CHIP_QUALITY["jpeg"])
    else:
        img.save(buf, format="WEBP", quality=quality or CHIP_QUALITY["webp"], method=4)
    return buf.getvalue()


def encode_png(crop: np.ndarray) -> bytes:
    """A lossless PNG of ``crop`` (event chips, pages' previews, ``--chip-format png``)."""
    return encode_chip(crop, "png")


def chip_format(data: bytes) -> str | None:
    """The format of stored chip bytes by their magic bytes: ``png``, ``jpeg``, ``webp`` or
    None when none of them."""
    head = bytes(data[:12])
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def chip_media_type(data: bytes) -> str:
    """The HTTP media type of stored chip bytes (``image/png`` when unknown: old galleries)."""
    return MEDIA_TYPES.get(chip_format(data) or "png", "image/png")


def decode_chip(data: bytes) -> np.ndarray:
    """Stored chip bytes (PNG, JPEG or WebP) as (S, S, 3) uint8 RGB."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


decode_png = decode_chip  # the name older callers use; every chip format decodes


def chip_digest(chip: np.ndarray) -> str:
    arr = np.ascontiguousarray(chip, dtype=np.uint8)
    h = hashlib.sha256(str(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def cut_for_model(
    chip: np.ndarray,
    chip_template: str | None,
    chip_landmarks: np.ndarray | None,
    spec: ModelSpec,
) -> np.ndarray:
    """The crop ``spec``'s model needs, cut from a stored chip (or the chip itself, resized,
    when its template is unknown or already the model's)."""
    size = spec.input_size
    if chip_template is None or (chip_template == spec.alignment and chip_landmarks is None):
        if chip.shape[0] == size and chip.shape[1] == size:
            return chip
        import cv2

        return cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA)
    marks = (
        np.asarray(chip_landmarks, np.float64)
        if chip_landmarks is not None
        else template(chip.shape[0], chip_template).astype(np.float64)
    )
    return align_face(chip, marks, size, spec.alignment)


def record_crop(record: FaceRecord, spec: ModelSpec) -> np.ndarray:
    """The crop to embed a new record with: its own model crop when cut for ``spec``'s
    template and size, else one cut from its chip."""
    if record.crop is not None and record.crop_for == (spec.alignment, spec.input_size):
        return record.crop
    return cut_for_model(record.chip, record.chip_template, record.chip_landmarks, spec)
