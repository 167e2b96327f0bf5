"""One reader thread per camera: PyAV (FFmpeg) opens and decodes the source, the recogniser takes
frames from it.

Live sources (RTSP, HTTP, devices, and files played as a camera) hand over only the newest frame:
the reader keeps decoding so the network buffer never grows, converts to pixels only the frames
its budget (``fps``) lets through, and a frame not taken before the next one is dropped. No queue
can grow. A file read by ``watch`` (``mode="all"``) hands over every budgeted frame and waits
for the recogniser instead, so the file is read as fast as recognition goes and none is lost.

A source that fails or drops is reopened with exponential backoff (``backoff`` seconds, doubling
to ``max_backoff``); ``state`` says ``connecting``, ``live``, ``reconnecting`` (with the last
error), ``failed`` (it cannot work as given: a missing or corrupt file) or ``ended`` (a file
read to its end). Errors are redacted: a decoder's message often repeats the URL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facemetric.redact import redact_text
from facemetric.video.ffmpeg import describe, file_start, jpeg_size, open_options, recent_rate
from facemetric.video.motion import MotionGate, MotionSettings
from facemetric.video.sources import Camera

log = logging.getLogger(__name__)
Mode = Literal["live", "realtime", "all"]
State = Literal["connecting", "live", "reconnecting", "failed", "ended", "stopped"]


@dataclass(frozen=True)
class Frame:
    """A decoded frame: RGB pixels, when it was captured (Unix seconds; for a file the file's
    start plus its media time), its media time from the source's start, and its number."""

    image: np.ndarray
    time: float
    media_time: float
    index: int


class SourceError(Exception):
    """The source cannot be read as given (permanent: no point retrying)."""


class CameraReader(threading.Thread):
    """Reads one camera in its own thread; ``get`` hands its frames to one consumer."""

    def __init__(
        self,
        camera: Camera,
        mode: Mode | None = None,
        open_timeout: float = 5.0,
        read_timeout: float = 5.0,
        backoff: float = 0.5,
        max_backoff: float = 4.0,
        loop: bool = True,
        time_origin: float | None = None,
        motion: MotionSettings | None = None,
        max_pixels: int | None = None,
    ) -> None:
        super().__init__(name=f"facemetric-camera-{camera.name}", daemon=True)
        self.camera = camera
        self.mode: Mode = mode or ("live" if camera.live else "realtime")
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.loop = loop and self.mode != "all"  # a file played as a camera starts over
        self.time_origin = time_origin  # ``all`` mode: frame times are this plus media time
        self.state: State = "connecting"
        self.error: str | None = None
        self.since = time.time()  # when the state last changed
        self.connects = 0
        self.decoded = 0
        self.delivered = 0
        self.dropped = 0
        self.bad_packets = 0
        self.skipped = 0  # intra-only packets over the budget, never decoded
        # Frames of more pixels are skipped and counted, never converted (a 12000 x 12000
        # MJPEG frame took 1.6 GiB): the uploads' max_decode_pixels, for cameras too.
        self.max_pixels = max_pixels
        self.oversized = 0
        self._next_budget = 0.0
        self._start_mono = time.monotonic()
        self.width: int | None = None
        self.height: int | None = None
        self.duration: float | None = None  # a file's length in seconds, when known
        self.media_time = 0.0  # how far into the source the newest frame is
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._halt = threading.Event()
        self._index = 0
        self._taken = 0  # frames handed over (``all`` mode) / newest index taken
        self._times: deque[float] = deque(maxlen=64)
        # live cameras only: a still scene's frames are not converted nor recognised
        motion = motion if motion is not None else MotionSettings.from_env()
        live_like = self.mode != "all"
        self.gate = MotionGate(motion) if live_like and motion.enabled else None

    # ---- consumer side --------------------------------------------------------------------------
    def get(self, timeout: float = 1.0) -> Frame | None:
        """The next frame (the newest one in live modes), or None if none came in ``timeout``
        seconds or the reader is done (``done``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None:
                if self.done:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            frame, self._latest = self._latest, None
            self._cond.notify_all()  # ``all`` mode: the reader may decode the next one
            return frame

    @property
    def done(self) -> bool:
        """Nothing more will come: stopped, failed or at the end of a file."""
        return self.state in ("failed", "ended", "stopped")

    @property
    def fps(self) -> float:
        """Frames a second handed to the recogniser over the last few seconds."""
        return recent_rate(self._times)

    def stop(self, wait: float = 5.0) -> None:
        self._halt.set()
        with self._cond:
            self._cond.notify_all()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(wait)

    def status(self) -> dict[str, Any]:
        """The reader's state for ``/api/cameras`` (source without credentials)."""
        return {
            "name": self.camera.name,
            "source": self.camera.public_source,
            "kind": self.camera.kind,
            "state": self.state,
            "error": self.error,
            "since": round(self.since, 3),
            "fps_budget": self.camera.fps,
            "fps": round(self.fps, 2),
            "width": self.width,
            "height": self.height,
            "connects": self.connects,
            "frames_decoded": self.decoded,
            "frames_delivered": self.delivered,
            "frames_dropped": self.dropped,
            "bad_packets": self.bad_packets,
            "packets_skipped": self.skipped,
            "frames_still": self.gate.still if self.gate is not None else 0,
            "frames_oversized": self.oversized,
        }

    # ---- reader thread --------------------------------------------------------------------------
    def _set(self, state: State, error: str | None = None) -> None:
        if state != self.state or error != self.error:
            self.since = time.time()
            level = logging.WARNING if error else logging.INFO
            log.log(
                level, "camera %s: %s%s", self.camera.name, state, f" ({error})" if error else ""
            )
        self.state = state
        self.error = error
        with self._cond:
            self._cond.notify_all()

    def run(self) -> None:
        delay = self.backoff
        try:
            while not self._halt.is_set():
                was_live = False
                try:
                    was_live = self._read_once()
                    if self._halt.is_set():
                        break
                    if not self.loop:
                        self._set("ended")
                        return
                    if self.camera.live:
                        raise ConnectionError("the stream ended")
                except SourceError as exc:
                    self._set("failed", self._clean(str(exc)))
                    return
                except Exception as exc:  # network, decoder: retried
                    if self._halt.is_set():
                        break
                    if self.camera.kind == "file":  # reading it again would fail again
                        name = Path(self.camera.source).name
                        self._set("failed", self._clean(f"{name}: {describe(exc)}"))
                        return
                    self._set("reconnecting", self._clean(describe(exc)))
                if was_live:
                    delay = self.backoff
                if self.camera.live or self.state == "reconnecting":
                    self._halt.wait(delay)
                    delay = min(delay * 2, self.max_backoff)
        finally:
            if not self.done:
                self._set("stopped", self.error)

    def _clean(self, text: str) -> str:
        return redact_text(text, self.camera.source)

    def _open(self) -> Any:
        import av

        source = self.camera.source
        if self.camera.kind == "file":
            path = Path(source.removeprefix("file://"))
            if not path.is_file():
                raise SourceError(f"{path.name}: video file not found")
        try:
            return av.open(
                source, timeout=(self.open_timeout, self.read_timeout), **open_options(self.camera)
            )
        except av.error.InvalidDataError as exc:
            if self.camera.kind == "file":
                name = Path(source).name
                raise SourceError(f"{name}: not a readable video ({describe(exc)})") from None
            raise

    def _read_once(self) -> bool:
        """Open the source and read it to its end (or a failure); True once it delivered."""
        container = self._open()
        live = False
        try:
            if not container.streams.video:
                if self.camera.kind == "file":
                    raise SourceError(f"{Path(self.camera.source).name}: no video stream in it")
                raise ConnectionError("no video stream in the source")
            stream = container.streams.video[0]
            # Frame threads hold frames back (latency); a live source decodes slice-parallel.
            stream.thread_type = "SLICE" if self.mode == "live" else "AUTO"
            if stream.duration is not None and stream.time_base is not None:
                self.duration = float(stream.duration * stream.time_base)
            elif container.duration:
                self.duration = container.duration / 1_000_000
            self.connects += 1
            start_wall = self.time_origin if self.time_origin is not None else file_start(container)
            start_mono = time.monotonic()
            first_pts: float | None = None
            budget = 1.0 / self.camera.fps
            self._next_budget = next_budget = 0.0
            self._start_mono = start_mono
            for frame in self._frames(container, stream):
                if self._halt.is_set():
                    break
                self.decoded += 1
                if frame.time is not None:
                    media = float(frame.time)
                else:  # no timestamps (MJPEG over HTTP): arrival time, or 25 a second in a file
                    live_clock = time.monotonic() - start_mono
                    media = live_clock if self.mode == "live" else self.decoded / 25.0
                if first_pts is None:
                    first_pts = media
                media -= first_pts
                if not live:
                    live = True
                    self._set("live")
                if self.mode == "realtime":  # a file played as a camera: at its own pace
                    wait = media - (time.monotonic() - start_mono)
                    if wait > 0 and self._halt.wait(wait):
                        break
                # The budget runs on media time for files, on arrival time for live sources
                # (their timestamps may be missing or jump when the camera restarts).
                clock = media if self.mode != "live" else time.monotonic() - start_mono
                if clock + 1e-6 < next_budget:
                    continue  # over the budget: never converted to pixels
                next_budget = max(next_budget + budget, clock + budget / 2)
                self._next_budget = next_budget
                if self.gate is not None and not self.gate.check_frame(frame):
                    continue  # nothing moved since the last frame handed over
                image = frame.to_ndarray(format="rgb24")
                self.height, self.width = image.shape[:2]
                self.media_time = media
                when = start_wall + media if self.mode == "all" else time.time()
                self._deliver(Frame(image, when, media, self._index))
                self._index += 1
        finally:
            container.close()
        return live

    def _frames(self, container: Any, stream: Any) -> Any:
        """The stream's decoded frames; a packet the decoder cannot use (a corrupt frame) is
        counted and skipped, as a player does; the container's own errors end the read."""
        import av

        # Intra-only codecs (MJPEG): a packet over the budget is not even decoded.
        intra = bool(getattr(stream.codec_context.codec, "intra_only", False))
        first: float | None = None
        for packet in container.demux(stream):
            if intra:
                at: float | None = None
                if self.mode == "live":
                    at = time.monotonic() - self._start_mono
                elif packet.pts is not None and packet.time_base is not None:
                    pts = float(packet.pts * packet.time_base)
                    first = pts if first is None else first
                    at = pts - first
                if at is not None and self.decoded and at + 1e-6 < self._next_budget:
                    self.skipped += 1
                    continue
            if self._too_large(packet, stream, intra):
                self.oversized += 1
                if self.mode == "realtime":  # a file played as a camera: skipped at its pace
                    self._halt.wait(1.0 / self.camera.fps)
                continue
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                self.bad_packets += 1
                continue
            for frame in frames:
                if self.max_pixels is not None and frame.width * frame.height > self.max_pixels:
                    self.oversized += 1  # decoded (an inter codec), never converted
                    continue
                yield frame

    def _too_large(self, packet: Any, stream: Any, intra: bool) -> bool:
        """Is this packet's picture over ``max_pixels``, judged before decoding? A JPEG
        packet by its own header; others by the size the stream announces."""
        if self.max_pixels is None:
            return False
        size = jpeg_size(bytes(packet)) if intra else None
        if size is None:
            ctx = stream.codec_context
            size = (ctx.width or 0, ctx.height or 0)
        return size[0] * size[1] > self.max_pixels

    def _deliver(self, frame: Frame) -> None:
        with self._cond:
            if self.mode == "all":
                while self._latest is not None and not self._halt.is_set():
                    self._cond.wait(0.5)
            elif self._latest is not None:
                self.dropped += 1  # the recogniser did not take the previous one: newest wins
            self._latest = frame
            self.delivered += 1
            self._times.append(time.monotonic())
            self._cond.notify_all()
