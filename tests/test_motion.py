"""The motion gate and fair turns (``facemetric.video.motion``): a still, noisy scene is held
back but refreshed, a moving one goes through, on grey images and on a real H.264 clip read as a
camera; cameras sharing the recogniser take turns, none starved."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facemetric.errors import ConfigError
from facemetric.video.motion import FairTurns, MotionGate, MotionSettings, small_grey
from facemetric.video.reader import CameraReader
from facemetric.video.sources import Camera
from videoclip import Segment, make_clip


def noisy(base: np.ndarray, rng: np.random.Generator, sigma: float = 1.5) -> np.ndarray:
    # the gate's image averages ~100 camera pixels each: sensor noise of sigma 15 grey levels
    # at full size is about 1.5 here
    return np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8)


def test_gate_holds_a_still_noisy_scene_and_passes_motion() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, (48, 64)).astype(np.float64)
    gate = MotionGate(MotionSettings(pixel=12, area=0.002, refresh=1.0))
    assert gate.check(noisy(base, rng), now=0.0)  # the first frame always goes on
    held = [gate.check(noisy(base, rng), now=0.01 * i) for i in range(1, 60)]
    assert not any(held) and gate.still == 59  # sensor noise is not motion
    moved = base.copy()
    moved[10:20, 20:30] += 60  # something 10x10 grey pixels big changed
    assert gate.check(noisy(moved, rng), now=0.7) and gate.last_moved > 0.02
    assert not gate.check(noisy(moved, rng), now=0.8)  # the new scene is the reference now
    assert gate.check(noisy(moved, rng), now=1.75)  # still, but the refresh is due
    assert gate.passed == 3


def test_gate_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="motion area"):
        MotionSettings(area=1.5)
    with pytest.raises(ConfigError, match="motion refresh"):
        MotionSettings(refresh=0)
    with pytest.raises(ConfigError, match="camera slots"):
        FairTurns(0)


def test_small_grey_of_a_decoded_frame() -> None:
    import av

    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[:, 320:] = 255
    grey = small_grey(av.VideoFrame.from_ndarray(rgb, format="rgb24"), 64)
    assert grey.shape == (48, 64) and grey.dtype == np.uint8
    assert grey[:, :30].max() < 30 and grey[:, 34:].min() > 225


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("motion")
    photo = folder / "pattern.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).resize(
        (240, 180), Image.NEAREST
    ).save(photo)
    return {
        "still": make_clip(folder / "still.mp4", [Segment(None, 0.0, 4.0)]),
        "moving": make_clip(folder / "moving.mp4", [Segment("x", 0.0, 4.0, photo)]),
    }


def delivered(clip: Path, motion: MotionSettings) -> CameraReader:
    reader = CameraReader(
        Camera("c", str(clip), fps=15), mode="realtime", loop=False, motion=motion
    )
    reader.start()
    deadline = time.monotonic() + 30
    while not reader.done and time.monotonic() < deadline:
        reader.get(0.2)
    reader.stop()
    return reader


def test_a_still_camera_hands_over_about_one_frame_a_second(clips: dict[str, Path]) -> None:
    reader = delivered(clips["still"], MotionSettings(refresh=1.0))
    assert reader.decoded == 60
    assert 3 <= reader.delivered <= 6  # 4 s: the first frame and a refresh a second
    assert reader.status()["frames_still"] == 60 - reader.delivered
    off = delivered(clips["still"], MotionSettings(enabled=False))
    assert off.delivered == 60 and off.status()["frames_still"] == 0


def test_a_moving_scene_goes_through(clips: dict[str, Path]) -> None:
    # no refresh within the clip: only motion lets frames through
    still = delivered(clips["still"], MotionSettings(refresh=10.0))
    assert still.delivered == 1
    # the pattern drifts sideways by 0-1.7 px a frame (~70 px in all): a frame goes on once
    # the drift since the last one adds up to a few pixels
    reader = delivered(clips["moving"], MotionSettings(refresh=10.0))
    assert 15 <= reader.delivered <= 60, reader.status()


def test_watch_mode_is_never_gated(clips: dict[str, Path]) -> None:
    reader = CameraReader(Camera("c", str(clips["still"]), fps=15), mode="all")
    assert reader.gate is None


def test_fair_turns_serve_every_camera_alike() -> None:
    turns = FairTurns(slots=1)
    stop = threading.Event()
    inside = []
    lock = threading.Lock()

    def camera(name: str, work: float) -> None:
        while not stop.is_set():
            with turns.turn(name):
                with lock:
                    inside.append(name)
                    assert inside.count(name) == 1 and len(inside) == 1  # one slot
                time.sleep(work)
                with lock:
                    inside.remove(name)

    threads = [threading.Thread(target=camera, args=(f"cam{i}", 0.002 * (i + 1))) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    counts = [turns.turns[f"cam{i}"] for i in range(4)]
    # round robin whatever each one's work (the slowest works 4x the fastest); a thread the
    # loaded machine does not run for a while may miss a round or two
    assert min(counts) >= 10 and min(counts) >= 0.7 * max(counts), counts
