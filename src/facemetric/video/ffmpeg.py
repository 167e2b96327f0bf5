"""What facemetric tells FFmpeg (PyAV) and reads back from it: open options per kind of
camera, a recording's start time, a failure's reason in FFmpeg's words, and a JPEG's size read
from its header before anything decodes it (MJPEG pixel-bomb guard)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from facemetric.video.sources import Camera

# A live stream's format is known from its first packets (RTSP: from its SDP): FFmpeg's default
# probing reads 5 s of it first, which delays the first frame and every reconnection.
LOW_DELAY = {"fflags": "nobuffer", "flags": "low_delay", "analyzeduration": "500000",
             "probesize": "500000"}  # fmt: skip


def open_options(camera: Camera) -> dict[str, Any]:
    """FFmpeg options per kind: RTSP over TCP (no lost packets, no smeared frames), low delay."""
    if camera.kind == "rtsp" and camera.source.lower().startswith("rtsp"):
        return {"options": {"rtsp_transport": "tcp", **LOW_DELAY}}
    if camera.kind == "rtsp":  # rtmp://: a stream of its own kind, no RTSP transport
        return {"options": dict(LOW_DELAY)}
    if camera.kind == "http":
        return {"options": {"reconnect": "0", **LOW_DELAY}}
    if camera.kind == "device":
        return {"format": "v4l2"}
    return {}


def file_start(container: Any) -> float:
    """When a recording began (its ``creation_time`` tag, Unix seconds), else 0: a file's event
    times are then its media times."""
    from datetime import datetime

    tag = (container.metadata or {}).get("creation_time")
    if tag:
        try:
            return datetime.fromisoformat(tag.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return 0.0


def describe(exc: BaseException) -> str:
    """A short reason for a failure (FFmpeg's own words when it has them)."""
    import av

    if isinstance(exc, av.error.FFmpegError):
        text = exc.strerror or str(exc)
        return text
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, without decoding; None if not a JPEG."""
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF:
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None


def recent_rate(times: Iterable[float], window: float = 5.0) -> float:
    """Events a second over the last ``window`` seconds of monotonic ``times`` (0 for fewer
    than two)."""
    now = time.monotonic()
    recent = [t for t in times if now - t <= window]
    if len(recent) < 2:
        return 0.0
    return len(recent) / max(now - recent[0], 1e-6)
