"""Issue 28, point 6: camera frames have the uploads' pixel budget. 12000 x 12000 MJPEG frames
took the server's RSS from 875 to 2,529 MiB; frames over ``max_decode_pixels`` are now skipped
(JPEG packets judged by their header, before decoding) and counted in ``/api/cameras``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from facemetric.video.ffmpeg import jpeg_size
from facemetric.video.reader import CameraReader
from facemetric.video.sources import Camera
from test_video_reader import read_all
from videoclip import Segment, make_clip

PIXELS = 640 * 480  # the clips' frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pixels")
    timeline = [Segment(None, 0.0, 1.0)]
    return {
        "h264": make_clip(folder / "c.mp4", timeline, fps=10),
        "mjpeg": make_clip(folder / "c.avi", timeline, fps=10, codec="mjpeg"),
    }


@pytest.mark.parametrize("kind", ["mjpeg", "h264"])
def test_frames_over_the_pixel_budget_are_skipped_and_counted(
    clips: dict[str, Path], kind: str
) -> None:
    camera = Camera("big", str(clips[kind]), fps=10)
    over = CameraReader(camera, mode="all", loop=False, max_pixels=PIXELS - 1)
    assert read_all(over) == []
    assert over.oversized >= 5 and over.status()["frames_oversized"] == over.oversized
    within = CameraReader(camera, mode="all", loop=False, max_pixels=PIXELS)
    frames = read_all(within)
    assert len(frames) >= 5 and within.oversized == 0


@pytest.mark.parametrize("size", [(1, 1), (640, 480), (12000, 9000)])
def test_jpeg_size_from_the_header(size: tuple[int, int]) -> None:
    buf = io.BytesIO()
    small = Image.new("RGB", (min(size[0], 64), min(size[1], 64)), (10, 20, 30))
    small.save(buf, "JPEG", quality=80)
    data = bytearray(buf.getvalue())
    # write the claimed size into the frame header (a bomb's header is all that is read)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = size[1].to_bytes(2, "big") + size[0].to_bytes(2, "big")
    assert jpeg_size(bytes(data)) == size
    assert jpeg_size(b"\x89PNG\r\n") is None
