"""Decode any image a user may have into an upright 8-bit RGB array.

One loader for dataset photos, uploads and webcam frames, so every stage sees the same pixels.
Callers that face untrusted input (the web app) give a pixel budget: large photos are then
decoded reduced (JPEG at 1/2 to 1/8 scale while decoding, other formats scaled down right after)
and photos whose decoding alone would take more than ``max_decode_pixels`` are refused from their
header, before any pixel is decoded. Finding faces needs no more than a few megapixels.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from facemetric.catalog import IMAGE_EXTENSIONS  # listed in the catalog: no heavy import
from facemetric.errors import ImageReadError

# Pillow's own default (about 89 Mpx) only warns; we refuse at that size instead of decoding it.
MAX_PIXELS = 89_478_485
_CHUNK = 1 << 20  # pixels converted at a time, so deep images need no full-size temporaries

# EXIF orientation -> the transpose that makes the picture upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than the caller decodes, from ``max_decode_pixels`` up to
    Pillow's decompression-bomb limit: the web app answers 413 (``frame_too_large`` on the
    stream) whichever limit it is over."""


@dataclass(frozen=True)
class DecodedImage:
    """Upright RGB pixels, possibly reduced, and the image's own upright size.

    ``scale`` turns coordinates in ``pixels`` into coordinates in the image as it was sent.
    """

    pixels: np.ndarray  # HxWx3 uint8 RGB
    width: int
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) factors from ``pixels`` coordinates to the original image's."""
        return self.width / self.pixels.shape[1], self.height / self.pixels.shape[0]


def is_image_path(path: str | Path) -> bool:
    """True when the file extension is one facemetric reads as an image."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _fit(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size of the same shape with at most ``max_pixels`` pixels."""
    factor = math.sqrt(width * height / max_pixels)
    return max(1, int(width / factor)), max(1, int(height / factor))


def _to_uint8_rows(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale to 8 bits (scaled by the maximum when it is over 255),
    a block of rows at a time: no float64 copy of the picture is ever made."""
    arr = np.asarray(img)
    out = np.empty(arr.shape, np.uint8)
    if arr.size == 0:
        return Image.fromarray(out, mode="L")
    # Float images are taken as 0..255 (as before), not rescaled.
    top = 255.0 if img.mode == "F" else float(arr.max())
    rows = max(1, _CHUNK // max(1, arr.shape[1]))
    if arr.dtype == np.uint16:
        # A lookup table maps every 16-bit value to 8 bits in one gather, without temporaries.
        values = np.arange(65536, dtype=np.uint32)
        lut = (values * 255 // int(top) if top > 255 else np.minimum(values, 255)).astype(np.uint8)
        for r in range(0, arr.shape[0], rows):
            out[r : r + rows] = lut[arr[r : r + rows]]
    else:
        scale = np.float32(255.0 / top) if top > 255 else np.float32(1.0)
        for r in range(0, arr.shape[0], rows):
            block = arr[r : r + rows].astype(np.float32) * scale
            out[r : r + rows] = np.clip(block, 0, 255).astype(np.uint8)
    return Image.fromarray(out, mode="L")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode.startswith("I") or img.mode == "F":
        img = _to_uint8_rows(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    ):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def _decode(
    source: Image.Image, name: str | Path, max_pixels: int | None, max_decode_pixels: int | None
) -> DecodedImage:
    w, h = source.size
    if w * h > MAX_PIXELS:
        raise ImageTooLargeError(
            name,
            f"image is {w}x{h} pixels, over the {MAX_PIXELS:,} pixel limit (decompression bomb?)",
        )
    if max_pixels is not None and w * h > max_pixels:
        source.draft(None, _fit(w, h, max_pixels))  # JPEG: decode at 1/2..1/8; others: no-op
    dw, dh = source.size
    if max_decode_pixels is not None and dw * dh > max_decode_pixels:
        hint = " or a JPEG (decoded reduced)" if max_pixels is not None else ""
        raise ImageTooLargeError(
            name,
            f"image is {w}x{h} pixels, over the {max_decode_pixels:,} pixels decoded at once: "
            f"send a smaller photo{hint}",
        )
    try:
        source.load()
        orientation = _orientation(source)  # after load(): a PNG's EXIF may follow its pixels
        img: Image.Image = source
        # Each step frees the image before it, so a large photo is held once, not twice.
        if img.mode in ("P", "PA", "1", "CMYK", "YCbCr", "LAB", "HSV"):
            has_alpha = img.mode == "PA" or "transparency" in img.info
            img = _replace(img, img.convert("RGBA" if has_alpha else "RGB"))  # resizable
        if max_pixels is not None and dw * dh > max_pixels:
            # reduce() (a box filter, no full-size temporary) first; it has no 16-bit mode.
            gap = None if img.mode.startswith("I;16") else 1.0
            size = _fit(dw, dh, max_pixels)
            img = _replace(img, img.resize(size, Image.Resampling.BILINEAR, reducing_gap=gap))
        if orientation in _UPRIGHT:
            img = _replace(img, img.transpose(_UPRIGHT[orientation]))
        if img.mode != "RGB":
            img = _replace(img, _to_rgb(img))
        pixels = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
        img.close()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(name, f"cannot decode image ({exc})") from exc
    upright = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    return DecodedImage(pixels, *upright)


def _replace(old: Image.Image, new: Image.Image) -> Image.Image:
    """``new``, after freeing ``old``'s pixels (when they are not shared)."""
    if new is not old:
        old.close()
    return new


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except (OSError, SyntaxError, ValueError, TypeError):
        return 1  # unreadable EXIF: keep the picture as stored


def _open(
    fp: str | Path | io.BytesIO,
    name: str | Path,
    max_pixels: int | None = None,
    max_decode_pixels: int | None = None,
) -> DecodedImage:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(fp) as img:
                return _decode(img, name, max_pixels, max_decode_pixels)
        except FileNotFoundError as exc:
            raise ImageReadError(name, "file not found") from exc
        except IsADirectoryError as exc:
            raise ImageReadError(name, "is a directory, not an image") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # Over the pixel budget, like any other image too large: one error type (issue 23).
            raise ImageTooLargeError(name, f"refused as a decompression bomb ({exc})") from exc
        except UnidentifiedImageError as exc:
            raise ImageReadError(name, "not an image file Pillow can read") from exc
        except ImageReadError:
            raise
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(name, f"cannot decode image ({exc})") from exc


def load_image(path: str | Path) -> np.ndarray:
    """Read ``path`` as an upright HxWx3 uint8 RGB array (EXIF orientation applied).

    Greyscale, CMYK, palette, 16-bit and alpha images are converted; alpha is composited on
    white. Raises ``ImageReadError`` naming the file for anything unreadable.
    """
    return _open(path, path).pixels


def decode_image_bytes(data: bytes, name: str = "<upload>") -> np.ndarray:
    """Like ``load_image`` for bytes received over the network or from a database."""
    return decode_image(data, name).pixels


def decode_image(
    data: bytes,
    name: str = "<upload>",
    *,
    max_pixels: int | None = None,
    max_decode_pixels: int | None = None,
) -> DecodedImage:
    """Decode untrusted bytes within a pixel budget.

    Images over ``max_pixels`` come back reduced to it (``DecodedImage.scale`` maps coordinates
    back); ``ImageTooLargeError`` when decoding would hold more than ``max_decode_pixels`` pixels
    at once (a PNG's full size; a JPEG's size at its largest reduction that still covers
    ``max_pixels``), judged from the header before anything is decoded.
    """
    if not data:
        raise ImageReadError(name, "empty image data")
    return _open(io.BytesIO(data), name, max_pixels, max_decode_pixels)
