"""Decode any image a user may have into an upright 8-bit RGB array.

One loader for dataset photos, uploads and webcam frames, so every stage sees the same pixels.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facemetric.errors import ImageReadError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pbm", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
)
# Pillow's own default (about 89 Mpx) only warns; we refuse at that size instead of decoding it.
MAX_PIXELS = 89_478_485


def is_image_path(path: str | Path) -> bool:
    """True when the file extension is one facemetric reads as an image."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if arr.size else 0.0
        scale = 255.0 / top if top > 255 else 1.0
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def _decode(source: Image.Image, name: str | Path) -> np.ndarray:
    w, h = source.size
    if w * h > MAX_PIXELS:
        raise ImageReadError(
            name,
            f"image is {w}x{h} pixels, over the {MAX_PIXELS:,} pixel limit (decompression bomb?)",
        )
    try:
        source.load()
        upright = ImageOps.exif_transpose(source) or source
        return np.ascontiguousarray(np.asarray(_to_rgb(upright), dtype=np.uint8))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(name, f"cannot decode image ({exc})") from exc


def _open(fp: str | Path | io.BytesIO, name: str | Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(fp) as img:
                return _decode(img, name)
        except FileNotFoundError as exc:
            raise ImageReadError(name, "file not found") from exc
        except IsADirectoryError as exc:
            raise ImageReadError(name, "is a directory, not an image") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageReadError(name, f"refused as a decompression bomb ({exc})") from exc
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
    return _open(path, path)


def decode_image_bytes(data: bytes, name: str = "<upload>") -> np.ndarray:
    """Like ``load_image`` for bytes received over the network or from a database."""
    if not data:
        raise ImageReadError(name, "empty image data")
    return _open(io.BytesIO(data), name)
