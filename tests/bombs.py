"""Decompression bombs as an attacker sends them (issue 23): small files whose headers claim
more pixels than any decoder here should hold."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + body))
    return struct.pack(">I", len(body)) + kind + body + crc


def png_of_zeros(width: int, height: int, rows_per_piece: int = 500) -> bytes:
    """A real, complete 8-bit greyscale PNG of zeros (20000x20000 is about 390 KB that decode
    to 400 MB). Rows of zeros compress to the same bytes each time once the compressor is reset,
    so one piece is compressed and repeated: quick, and never the picture in memory."""
    if height % rows_per_piece:
        raise ValueError(f"height {height} must be a multiple of {rows_per_piece}")
    packer = zlib.compressobj(9, wbits=-15)  # raw deflate; the zlib wrapper is added here
    piece = packer.compress(b"\0" * ((width + 1) * rows_per_piece)) + packer.flush(
        zlib.Z_FULL_FLUSH
    )
    final = zlib.compressobj(9, wbits=-15).flush()  # an empty last block
    raw_size = (width + 1) * height  # filter byte + pixels per row, every byte zero
    adler = (raw_size % 65521) << 16 | 1  # Adler-32 of zeros: A stays 1, B counts the bytes
    idat = b"\x78\xda" + piece * (height // rows_per_piece) + final + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is rewritten to claim ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 100, 110)).save(buf, format="JPEG", quality=80)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")  # length (2), precision (1), height (2), width (2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)
