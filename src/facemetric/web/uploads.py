"""Checks on image bytes arriving over HTTP or the WebSocket: size, type by content, decoding.

The type is judged from the first bytes (never from the file name or the client's content type),
so a renamed text file is refused before any decoder sees it.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from facemetric.data.image import DecodedImage, decode_image
from facemetric.errors import ImageReadError

# (prefix, name); WebP is checked separately (RIFF....WEBP).
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"P5", "pgm"),
    (b"P6", "ppm"),
    (b"P2", "pgm"),
    (b"P3", "ppm"),
)
ACCEPTED = "JPEG, PNG, WebP, GIF, BMP, TIFF, PGM/PPM"


def sniff_image_type(data: bytes) -> str | None:
    """The image format the bytes start with, or None when they are not a known image."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for prefix, name in _MAGIC:
        if data.startswith(prefix):
            return name
    return None


def check_image_bytes(data: bytes, name: str, limit: int) -> None:
    """Raise ``ImageReadError`` naming ``name`` for empty, too big or non-image bytes."""
    if not data:
        raise ImageReadError(name, "empty upload")
    if len(data) > limit:
        raise ImageReadError(name, f"{len(data):,} bytes, over the {limit:,} byte limit")
    if sniff_image_type(data) is None:
        raise ImageReadError(name, f"not an image (accepted: {ACCEPTED})")


def decode_checked(
    data: bytes,
    name: str,
    limit: int,
    max_pixels: int | None = None,
    max_decode_pixels: int | None = None,
) -> DecodedImage:
    """Check then decode to HxWx3 uint8 RGB within the pixel budget (see ``decode_image``)."""
    check_image_bytes(data, name, limit)
    return decode_image(data, name, max_pixels=max_pixels, max_decode_pixels=max_decode_pixels)


def to_original(faces: list[dict[str, Any]], scale: tuple[float, float]) -> list[dict[str, Any]]:
    """Boxes and landmarks of faces found in a reduced image, in the original image's pixels."""
    sx, sy = scale
    if sx == 1.0 and sy == 1.0:
        return faces
    out = []
    for face in faces:
        face = dict(face)
        x1, y1, x2, y2 = face["box"]
        face["box"] = [round(x1 * sx, 2), round(y1 * sy, 2), round(x2 * sx, 2), round(y2 * sy, 2)]
        if face.get("landmarks") is not None:
            face["landmarks"] = [[round(x * sx, 2), round(y * sy, 2)] for x, y in face["landmarks"]]
        out.append(face)
    return out


def png_data_url(rgb: np.ndarray) -> str:
    """An RGB array as a ``data:image/png`` URL, for showing crops before they are saved."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 HxWx3 array
        raise ValueError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")
