"""A camera's pipeline: reader -> recogniser -> tracker -> event builder -> sinks.

``CameraPipeline.step`` detects one frame's faces, follows them with the shared ``Tracker``
(which embeds only the faces that need it and names each track by the one decision,
``Recognizer.decide``, over the track's evidence) and feeds the ``EventBuilder``; ``serve``
runs one ``CameraWorker`` thread per camera around it, ``watch`` calls it in its own loop.
The newest labelled frame is kept (one per camera) for the cameras page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.events.builder import EventBuilder
from facemetric.events.model import EventSink
from facemetric.recognize.tracking import Tracker, TrackSettings
from facemetric.video.ffmpeg import recent_rate
from facemetric.video.motion import FairTurns
from facemetric.video.reader import CameraReader, Frame, Mode
from facemetric.video.sources import Camera

if TYPE_CHECKING:
    from facemetric.recognize.recognizer import Recognizer

log = logging.getLogger(__name__)


@dataclass
class PipelineOptions:
    """How frames are recognised and events built (the tracker's defaults are the live page's)."""

    threshold: float | None = None  # None: the recogniser's (calibrated) threshold
    detect_size: int | None = 640
    track_iou: float = 0.3
    track_max_missed: int = 5
    track_min_frames: int = 2
    track_reembed_s: float = 1.0  # 0: embed every face of every frame
    track_same_face: float | None = None  # None: the model's per-pair threshold
    event_gap: float = 2.0
    event_min_frames: int = 2


def track_settings(o: PipelineOptions) -> TrackSettings:
    """The tracker's settings from a pipeline's options (a lost track is found again within
    the event gap, so a missed frame never splits an event)."""
    return TrackSettings(
        iou_threshold=o.track_iou,
        same_face=o.track_same_face,
        min_frames=o.track_min_frames,
        max_missed=o.track_max_missed,
        lost_s=o.event_gap,
        reembed_s=o.track_reembed_s,
    )


@dataclass
class Labelled:
    """The newest recognised frame of a camera and its steadied faces."""

    frame: Frame
    faces: list[dict[str, Any]]
    _jpeg: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def jpeg(self, quality: int = 80) -> bytes:
        """The frame with boxes and names drawn, as JPEG (encoded once, on first request)."""
        with self._lock:
            if self._jpeg is None:
                import cv2

                bgr = draw_faces(self.frame.image, self.faces)
                ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
                self._jpeg = bytes(data.tobytes()) if ok else b""
            return self._jpeg


def draw_faces(image: np.ndarray, faces: list[dict[str, Any]]) -> np.ndarray:
    """A BGR copy of ``image`` with each face's box and its track's decided label and reason
    (green: named, amber: not named, with why)."""
    import cv2

    bgr = np.ascontiguousarray(image[:, :, ::-1])
    for face in faces:
        x1, y1, x2, y2 = (round(v) for v in face["box"])
        known = face.get("identity") is not None
        colour = (80, 200, 60) if known else (0, 170, 255)
        label = face.get("identity") or "unknown"
        if face.get("similarity") is not None:
            label += f" {float(face['similarity']):.2f}"
        if face.get("reason") and face.get("reason") != "match":
            label += f" ({face['reason']})"
        cv2.rectangle(bgr, (x1, y1), (x2, y2), colour, 2)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, y1 - th - 6)
        cv2.rectangle(bgr, (x1, top), (x1 + tw + 6, top + th + 6), colour, -1)
        cv2.putText(bgr, label, (x1 + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    return bgr


class CameraPipeline:
    """Recognises one camera's frames and turns its tracks into events."""

    def __init__(
        self,
        camera: Camera,
        recognizer: Recognizer,
        sinks: list[EventSink] | None = None,
        options: PipelineOptions | None = None,
    ) -> None:
        self.camera = camera
        self.recognizer = recognizer
        self.options = options or PipelineOptions()
        o = self.options
        self.tracker = Tracker(track_settings(o))
        self.builder = EventBuilder(
            camera.name,
            sinks if sinks is not None else [],
            gap=o.event_gap,
            min_frames=o.event_min_frames,
        )
        self.latest: Labelled | None = None
        self.recognised = 0
        self.errors = 0
        self.last_error: str | None = None
        self._times: deque[float] = deque(maxlen=64)
        self.step_ms: deque[float] = deque(maxlen=64)

    @property
    def threshold(self) -> float:
        o = self.options.threshold
        # the open-set decision's threshold for this gallery, as last calibrated
        return float(self.recognizer.last_threshold if o is None else o)

    def step(self, frame: Frame) -> list[dict[str, Any]]:
        """Recognise ``frame``, update the tracks and events; returns the steadied faces."""
        start = time.perf_counter()
        steady, embeddings = self.tracker.step(
            self.recognizer,
            frame.image,
            frame.time,
            self.options.threshold,
            self.options.detect_size,
            source=f"camera:{self.camera.name}",
        )
        self.builder.update(steady, frame.time, frame.image, embeddings)
        self.latest = Labelled(frame, steady)
        self.recognised += 1
        self._times.append(time.monotonic())
        self.step_ms.append((time.perf_counter() - start) * 1000)
        return steady

    def idle(self, now: float) -> None:
        """No frame came: let events of a camera that went quiet close on time."""
        self.builder.expire(now)

    @property
    def fps(self) -> float:
        """Frames a second recognised over the last few seconds."""
        return recent_rate(self._times)


class CameraWorker(threading.Thread):
    """A camera served live: its reader thread plus this thread, which recognises the newest
    frame whenever the previous one is done (so a slow recogniser drops frames, never queues)."""

    def __init__(
        self,
        camera: Camera,
        recognizer: Recognizer,
        sinks: list[EventSink] | None = None,
        options: PipelineOptions | None = None,
        mode: Mode | None = None,
        turns: FairTurns | None = None,
        **reader_kw: Any,
    ) -> None:
        super().__init__(name=f"facemetric-recognise-{camera.name}", daemon=True)
        self.camera = camera
        self.turns = turns  # shared by a hub's cameras: they recognise in fair turns
        self.reader = CameraReader(camera, mode=mode, **reader_kw)
        self.pipeline = CameraPipeline(camera, recognizer, sinks, options)
        self._halt = threading.Event()

    def run(self) -> None:
        self.reader.start()
        p = self.pipeline
        try:
            while not self._halt.is_set():
                frame = self.reader.get(timeout=0.5)
                if frame is None:
                    p.idle(time.time())
                    if self.reader.done:
                        break
                    continue
                try:
                    with self._turn():
                        # the newest frame once it is this camera's turn (waiting ages it)
                        frame = self.reader.get(timeout=0) or frame
                        p.step(frame)
                except Exception as exc:  # one bad frame must not stop the camera
                    p.errors += 1
                    p.last_error = type(exc).__name__
                    log.exception("camera %s: frame %d failed", self.camera.name, frame.index)
        finally:
            p.builder.close_all()

    def _turn(self) -> Any:
        return self.turns.turn(self.camera.name) if self.turns is not None else nullcontext()

    def stop(self, wait: float = 5.0) -> None:
        self._halt.set()
        self.reader.stop(wait)
        if self.is_alive():
            self.join(wait)

    def status(self) -> dict[str, Any]:
        s = self.reader.status()
        p = self.pipeline
        latest = p.latest
        s.update(
            recognised_fps=round(p.fps, 2),
            frames_recognised=p.recognised,
            faces_embedded=p.tracker.embedded,
            frame_errors=p.errors,
            faces=len(latest.faces) if latest else 0,
            last_frame=round(latest.frame.time, 3) if latest else None,
            open_events=len(p.builder.open),
        )
        return s


class CameraHub:
    """Every camera of a server: started and stopped together, looked up by name."""

    def __init__(self, workers: list[CameraWorker] | None = None, slots: int = 0) -> None:
        self.workers: dict[str, CameraWorker] = {}
        # slots > 0: the cameras' recognitions take fair turns, that many at once (off by
        # default: four moving cameras recognised 6.7 frames/s each in turns of one against
        # 8.6-10.7 without, and as evenly; benchmarks/motion_gate.py)
        self.turns = FairTurns(slots) if slots > 0 else None
        self.sinks: list[EventSink] = []  # shared by every camera's builder: add sinks here
        self.add(workers or [])

    def add(self, workers: list[CameraWorker]) -> None:
        for worker in workers:
            self.workers[worker.camera.name] = worker
            if worker.turns is None:
                worker.turns = self.turns

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()

    def stop(self) -> None:
        for worker in self.workers.values():
            worker._halt.set()
            worker.reader.stop(0)
        for worker in self.workers.values():
            worker.stop()

    def get(self, name: str) -> CameraWorker | None:
        return self.workers.get(name)

    def status(self) -> list[dict[str, Any]]:
        return [w.status() for w in self.workers.values()]
