"""The one image loader: every format a user may have, and clear errors for the rest."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from bombs import jpeg_claiming, png_of_zeros
from facemetric.data.image import (
    ImageTooLargeError,
    decode_image,
    decode_image_bytes,
    is_image_path,
    load_image,
)
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


# ---- pixel budget for untrusted bytes (issue 15) -------------------------------------------------
def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_large_images_are_decoded_reduced_within_budget(fmt: str) -> None:
    big = Image.fromarray(ASTRONAUT).resize((2400, 1800), Image.Resampling.BICUBIC)
    decoded = decode_image(_encoded(big, fmt), "big", max_pixels=500_000)
    h, w, c = decoded.pixels.shape
    assert c == 3 and decoded.pixels.dtype == np.uint8
    assert w * h <= 500_000 and w * h > 400_000  # reduced to the budget, not far below it
    assert (decoded.width, decoded.height) == (2400, 1800)
    sx, sy = decoded.scale
    assert sx == pytest.approx(2400 / w) and sy == pytest.approx(1800 / h)
    assert sx == pytest.approx(sy, rel=0.01)
    reference = np.asarray(big.resize((w, h), Image.Resampling.BILINEAR), np.float32)
    corr = np.corrcoef(decoded.pixels.astype(np.float32).ravel(), reference.ravel())[0, 1]
    assert corr > 0.95
    small = decode_image(_encoded(big, fmt), "big")  # no budget: full size, as before
    assert small.pixels.shape == (1800, 2400, 3) and small.scale == (1.0, 1.0)


def test_reduced_decode_keeps_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: stored 1200x600, shown 600x1200
    data = _encoded(Image.fromarray(ASTRONAUT).resize((1200, 600)), "JPEG", exif=exif)
    decoded = decode_image(data, "rot.jpg", max_pixels=100_000)
    assert (decoded.width, decoded.height) == (600, 1200)
    h, w, _ = decoded.pixels.shape
    assert h > w and w * h <= 100_000


def test_too_many_pixels_refused_from_header_before_decoding() -> None:
    """The header claims 9000x9000; the pixel data is garbage that would fail to decode."""
    with pytest.raises(ImageTooLargeError, match=r"claims.png: image is 9000x9000"):
        decode_image(_png_header_claiming(9000, 9000), "claims.png", max_decode_pixels=16_000_000)
    # A JPEG is decoded at 1/2 to 1/8 scale (here 1/4: 1500x1500), so a 36 Mpx one fits a
    # 2.5 Mpx decode budget.
    jpeg = _encoded(Image.new("RGB", (6000, 6000), (10, 20, 30)), "JPEG")
    decoded = decode_image(jpeg, "big.jpg", max_pixels=1_000_000, max_decode_pixels=2_500_000)
    assert decoded.pixels.shape[0] * decoded.pixels.shape[1] <= 1_000_000
    with pytest.raises(ImageTooLargeError, match="big.jpg"):
        decode_image(jpeg, "big.jpg", max_pixels=1_000_000, max_decode_pixels=100_000)


def test_sixteen_bit_images_convert_without_float64_copies() -> None:
    """16-bit pictures went through float64 arrays (8 bytes a pixel, several times over)."""
    ramp = (np.arange(2000 * 2000, dtype=np.uint32) % 60000).astype(np.uint16).reshape(2000, 2000)
    data = _encoded(Image.fromarray(ramp), "PNG")
    tracemalloc.start()
    try:
        decoded = decode_image(data, "deep.png")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.pixels.shape == (2000, 2000, 3)
    expected = (ramp.astype(np.uint32) * 255 // int(ramp.max())).astype(np.uint8)
    np.testing.assert_array_equal(decoded.pixels[..., 0], expected)
    pixels = ramp.size
    # The RGB result alone is 3 bytes a pixel; the float64 path traced about 25.
    assert peak < 10 * pixels, f"{peak / pixels:.1f} bytes a pixel traced"


# ---- one answer over the pixel budget (issue 23) ------------------------------------------------
@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("zeros.png", lambda: png_of_zeros(20_000, 20_000)),  # 390 KB -> 400 Mpx
        ("claims.jpg", lambda: jpeg_claiming(65_000, 65_000)),  # over 2x Pillow's limit
        ("claims-108mpx.jpg", lambda: jpeg_claiming(12_000, 9_000)),  # over Pillow's limit
    ],
)
def test_decompression_bombs_are_too_large_not_unreadable(name: str, make) -> None:
    """These were ImageReadError (the web app's 415 "unreadable") while a 25 Mpx PNG was
    ImageTooLargeError (413): over the pixel budget is one error, with or without a budget."""
    data = make()
    for budget in ({}, {"max_pixels": 4_000_000, "max_decode_pixels": 16_000_000}):
        with pytest.raises(ImageTooLargeError, match=name) as info:
            decode_image(data, name, **budget)
        assert "pixel" in str(info.value)


def test_bomb_files_are_too_large_too(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_claiming(50_000, 50_000))
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        load_image(bomb)
    bomb.write_bytes(_png_header_claiming(10_000, 9_000))  # 90 Mpx: just over Pillow's limit
    with pytest.raises(ImageTooLargeError, match="90000000 pixels"):
        load_image(bomb)
