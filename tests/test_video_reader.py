"""The camera reader on real video files (no server, no model): the frame budget, newest frame
wins, intra-only streams decoded only as far as used, pacing, missing and corrupt files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from facemetric.video.motion import MotionSettings
from facemetric.video.reader import CameraReader
from facemetric.video.sources import Camera
from videoclip import Segment, make_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    timeline = [Segment(None, 0.0, 3.0)]
    return {
        "h264": make_clip(folder / "c.mp4", timeline, fps=15),
        "mjpeg": make_clip(folder / "c.avi", timeline, fps=15, codec="mjpeg"),
    }


def read_all(reader: CameraReader, timeout: float = 30.0, pause: float = 0.0) -> list:
    reader.start()
    frames, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = reader.get(0.5)
        if frame is None:
            if reader.done:
                break
            continue
        frames.append(frame)
        time.sleep(pause)
    reader.stop()
    return frames


@pytest.mark.parametrize("kind", ["h264", "mjpeg"])
def test_a_file_hands_over_every_budgeted_frame(clips: dict[str, Path], kind: str) -> None:
    reader = CameraReader(Camera("c", str(clips[kind]), fps=5), mode="all")
    frames = read_all(reader, pause=0.01)
    assert reader.state == "ended" and reader.error is None
    assert len(frames) == 15 and reader.dropped == 0  # 3 s at 5 a second, none lost
    assert [round(f.media_time, 3) for f in frames[:3]] == [0.0, 0.2, 0.4]
    assert frames[0].image.shape == (480, 640, 3)
    assert reader.duration == pytest.approx(3.0, abs=0.1)
    if kind == "mjpeg":  # each frame stands alone: the others are never decoded
        assert reader.decoded == 15 and reader.skipped == 30
    else:  # H.264 needs every frame decoded, but converts only the budget's
        assert reader.decoded == 45


def test_newest_frame_wins_when_the_consumer_is_slow(clips: dict[str, Path]) -> None:
    # the clip is a still scene: without the motion gate, so every budgeted frame is handed on
    still_too = MotionSettings(enabled=False)
    reader = CameraReader(
        Camera("c", str(clips["h264"]), fps=15), mode="realtime", loop=False, motion=still_too
    )
    start = time.monotonic()
    frames = read_all(reader, pause=0.3)  # a recogniser taking 0.3 s a frame
    assert time.monotonic() - start >= 2.5  # played at its own pace
    assert reader.dropped > 20 and len(frames) < 15  # dropped, never queued
    assert reader.dropped + len(frames) == reader.delivered


def test_missing_and_corrupt_files_fail_once(tmp_path: Path) -> None:
    reader = CameraReader(Camera("c", str(tmp_path / "nope.mp4")))
    read_all(reader)
    assert reader.state == "failed" and reader.error == "nope.mp4: video file not found"
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    reader = CameraReader(Camera("c", str(bad)))
    read_all(reader)
    assert reader.state == "failed" and reader.error is not None
    assert reader.error.startswith("bad.mp4: not a readable video") and str(tmp_path) not in (
        reader.error
    )
    assert reader.connects == 0
