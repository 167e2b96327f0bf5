"""The one image loader: every format a user may have, and clear errors for the rest."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from facemetric.data.image import decode_image_bytes, is_image_path, load_image
from facemetric.errors import ImageReadError

ASTRONAUT = skdata.astronaut()  # 512x512 RGB, ships with scikit-image


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


@pytest.mark.parametrize(
    ("name", "mode", "kw"),
    [
        ("a.jpg", "RGB", {}),
        ("a.png", "RGB", {}),
        ("a.bmp", "RGB", {}),
        ("a.webp", "RGB", {"lossless": True}),
        ("a.pgm", "L", {}),
        ("cmyk.jpg", "CMYK", {}),
        ("alpha.png", "RGBA", {}),
        ("deep.png", "I;16", {}),
        ("pal.png", "P", {}),
    ],
)
def test_formats_decode_to_rgb_uint8(tmp_path: Path, name: str, mode: str, kw: dict) -> None:
    base = Image.fromarray(ASTRONAUT).resize((64, 48))
    if mode == "I;16":
        img = Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257)
    else:
        img = base.convert(mode)
    arr = load_image(_save(img, tmp_path / name, **kw))
    assert arr.dtype == np.uint8 and arr.shape == (48, 64, 3)
    grey = np.asarray(base.convert("L"), np.float32)
    # every format keeps the picture: its grey level correlates with the source
    corr = np.corrcoef(arr.mean(axis=2).ravel(), grey.ravel())[0, 1]
    assert corr > 0.9, f"{name}: decoded picture does not match the source"


def test_alpha_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert load_image(_save(img, tmp_path / "t.png"))[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
    ("orientation", "shape"), [(1, (30, 60, 3)), (6, (60, 30, 3)), (8, (60, 30, 3))]
)
def test_exif_orientation_applied(tmp_path: Path, orientation: int, shape: tuple) -> None:
    img = Image.fromarray(ASTRONAUT).resize((60, 30))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(img, tmp_path / "rot.jpg", exif=exif)
    assert load_image(path).shape == shape


def test_truncated_jpeg_names_the_file(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(ASTRONAUT).save(buf, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    with pytest.raises(ImageReadError, match="cut.jpg"):
        load_image(path)


def test_non_image_and_missing(tmp_path: Path) -> None:
    txt = tmp_path / "notes.jpg"
    txt.write_text("hello")
    with pytest.raises(ImageReadError, match="not an image"):
        load_image(txt)
    with pytest.raises(ImageReadError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="empty"):
        decode_image_bytes(b"")


def _png_header_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_decompression_bomb_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_claiming(50_000, 50_000))
    with pytest.raises(ImageReadError, match="decompression bomb"):
        load_image(bomb)


def test_bytes_round_trip_and_extension_check() -> None:
    buf = io.BytesIO()
    Image.fromarray(ASTRONAUT).save(buf, format="PNG")
    np.testing.assert_array_equal(decode_image_bytes(buf.getvalue()), ASTRONAUT)
    assert is_image_path("x/Y.JPEG") and not is_image_path("notes.txt")
