"""Doing only the work a camera's frames need: a motion gate, and fair turns across cameras.

**Motion gate** (``MotionGate``): before a budgeted frame is converted to RGB pixels and
recognised, the reader shrinks it to a small grey image (``width`` pixels wide, straight from
the decoder's luma by FFmpeg's area scaler: ~0.1 ms) and compares it with the last frame it let
through. The frame goes on when at least ``area`` of the pixels changed by ``pixel`` grey
levels or more (shrinking averages the sensor noise away), or when ``refresh`` seconds passed
since the last one went on (a still scene is still recognised now and then: labels and events
stay alive, an event's gap is 2 s). A still camera then costs its decoding and the gate, not a
recognition per frame. ``MotionSettings(enabled=False)`` (or ``FACEMETRIC_MOTION=0``) turns it
off; ``watch`` reads every budgeted frame of a file and never gates.

**Fair turns** (``FairTurns``): the cameras' recognising threads take turns, at most ``slots``
at once, the one served least recently first, so a camera is never starved by the others
grabbing the recogniser's locks again and again (Python's locks are not fair), and the cores
are not split between more frames than they can run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from facemetric.errors import ConfigError

MOTION_ENV = "FACEMETRIC_MOTION"


@dataclass(frozen=True)
class MotionSettings:
    """The motion gate's settings (defaults measured in docs/cameras.md)."""

    enabled: bool = True
    width: int = 64  # the grey image's width in pixels (height: the frame's aspect)
    pixel: int = 12  # grey levels (0-255) a pixel must change by to count as moved
    area: float = 0.002  # the fraction of pixels that must move (0.002 of 64x48: 6 pixels)
    refresh: float = 1.0  # seconds after which a still scene is let through anyway

    def __post_init__(self) -> None:
        if self.width < 8:
            raise ConfigError(f"motion width: must be at least 8 pixels, got {self.width}")
        if not 0 < self.pixel < 256:
            raise ConfigError(f"motion pixel: must be within 1..255 grey levels, got {self.pixel}")
        if not 0.0 <= self.area < 1.0:
            raise ConfigError(f"motion area: must be within [0, 1), got {self.area}")
        if self.refresh <= 0:
            raise ConfigError(f"motion refresh: must be above 0 seconds, got {self.refresh}")

    @classmethod
    def from_env(cls) -> MotionSettings:
        """The defaults, off when ``FACEMETRIC_MOTION`` is ``0``/``off``/``false``."""
        raw = os.environ.get(MOTION_ENV, "").strip().lower()
        return cls(enabled=raw not in ("0", "off", "false", "no"))


def small_grey(frame: Any, width: int, reformatter: Any = None) -> np.ndarray:
    """A decoded PyAV video frame as a ``width``-pixel-wide uint8 grey image (area scaling;
    a ``reformatter`` kept between frames reuses FFmpeg's scaler: 0.1 ms instead of 0.2)."""
    height = max(2, round(frame.height * width / max(1, frame.width)))
    args = {"width": width, "height": height, "format": "gray", "interpolation": "AREA"}
    small = reformatter.reformat(frame, **args) if reformatter else frame.reformat(**args)
    return np.asarray(small.to_ndarray(), np.uint8)


class MotionGate:
    """Says which frames of one camera moved enough to be recognised (see the module)."""

    def __init__(self, settings: MotionSettings | None = None) -> None:
        self.settings = settings or MotionSettings()
        self._reference: np.ndarray | None = None
        self._passed_at = float("-inf")
        self.passed = 0
        self.still = 0  # frames held back: nothing moved
        self.last_moved = 0.0  # the fraction of pixels that moved in the last frame checked
        self._reformatter: Any = None

    def moved(self, grey: np.ndarray) -> float:
        """The fraction of ``grey``'s pixels that changed by ``pixel`` levels or more since
        the last frame let through (1.0 for the first, or after a change of size)."""
        ref = self._reference
        if ref is None or ref.shape != grey.shape:
            return 1.0
        diff = np.abs(grey.astype(np.int16) - ref)
        return float(np.count_nonzero(diff >= self.settings.pixel)) / diff.size

    def check(self, grey: np.ndarray, now: float | None = None) -> bool:
        """True: let this frame through (it moved, or a refresh is due); it becomes the
        reference the next frames are compared with."""
        now = time.monotonic() if now is None else now
        s = self.settings
        self.last_moved = self.moved(grey)
        if self.last_moved > s.area or now - self._passed_at >= s.refresh:
            self._reference = grey.astype(np.int16)
            self._passed_at = now
            self.passed += 1
            return True
        self.still += 1
        return False

    def check_frame(self, frame: Any, now: float | None = None) -> bool:
        """``check`` on a decoded PyAV frame (shrunk to the gate's grey image first)."""
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        return self.check(small_grey(frame, self.settings.width, self._reformatter), now)


class FairTurns:
    """Cameras' recognitions, at most ``slots`` at once, least recently served first."""

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ConfigError(f"camera slots: must be at least 1, got {slots}")
        self.slots = slots
        self._cond = threading.Condition()
        self._busy = 0
        self._waiting: dict[str, float] = {}  # camera -> when it was last served
        self._served: dict[str, float] = {}
        self.turns: dict[str, int] = {}

    def _next(self) -> str:
        return min(self._waiting, key=lambda name: (self._waiting[name], name))

    @contextmanager
    def turn(self, camera: str) -> Iterator[None]:
        """Wait for ``camera``'s turn, then hold one slot while the block runs."""
        with self._cond:
            self._waiting[camera] = self._served.get(camera, float("-inf"))
            try:
                while self._busy >= self.slots or self._next() != camera:
                    self._cond.wait()
            finally:
                del self._waiting[camera]
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._served[camera] = time.monotonic()
                self.turns[camera] = self.turns.get(camera, 0) + 1
                self._cond.notify_all()
