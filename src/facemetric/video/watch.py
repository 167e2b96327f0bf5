"""``facemetric watch VIDEO_OR_URL``: the camera pipeline headless, events printed as they close.

A file is read as fast as recognition goes (every frame the budget ``fps`` lets through, none
dropped) with progress on stderr; a URL or device is followed live until ``duration`` or Ctrl-C.
``--json`` prints one JSON line per event (``Event.to_dict()``, plus ``start_s``/``end_s``: the
media times in seconds for a file); ``--annotate out.mp4`` writes the recognised frames with
their boxes and names (a file: every frame at its own rate, labels carried between the
recognised ones).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from facemetric.errors import ConfigError, FacemetricError
from facemetric.events.model import Event, EventSink
from facemetric.redact import redact
from facemetric.video.pipeline import CameraPipeline, PipelineOptions, draw_faces
from facemetric.video.reader import CameraReader
from facemetric.video.sources import Camera


@dataclass
class WatchConfig:
    source: str
    db: str | None = None
    model: str | None = None
    engine: str = "auto"
    detector: str = "retinaface"
    threshold: float | None = None
    fps: float = 5.0
    detect_size: int = 640
    gap: float = 2.0
    min_frames: int = 2
    json: bool = False
    annotate: str | None = None
    duration: float | None = None  # live sources: stop after this many seconds
    camera: str = "video"
    progress: bool = True
    sinks: list[EventSink] = field(default_factory=list)  # more sinks (history, notifiers)


def clock(seconds: float) -> str:
    """Media time as ``HH:MM:SS.s``."""
    h, rest = divmod(max(0.0, seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:04.1f}"


class PrintSink:
    """Prints each closed event: one JSON line, or one line for people to read."""

    def __init__(self, out: IO[str], as_json: bool, origin: float | None) -> None:
        self.out = out
        self.as_json = as_json
        self.origin = origin  # a file's time origin: its events also get media times
        self.count = 0

    def update(self, event: Event) -> None:
        pass  # only closed events are printed

    def close_event(self, event: Event) -> None:
        self.count += 1
        data = event.to_dict()
        if self.origin is not None:
            data["start_s"] = round(event.first_seen - self.origin, 3)
            data["end_s"] = round(event.last_seen - self.origin, 3)
        if self.as_json:
            print(json.dumps(data), file=self.out, flush=True)
            return
        who = event.person or f"unknown (nearest {event.nearest or '-'})"
        if self.origin is not None:
            when = f"{clock(data['start_s'])}-{clock(data['end_s'])}"
        else:
            when = f"{data['first_seen']} - {data['last_seen']}"
        print(
            f"{when}  {event.camera}  {who}  similarity {event.similarity:.3f}  "
            f"({event.frames} frames)",
            file=self.out,
            flush=True,
        )

    def close(self) -> None:
        self.out.flush()


class Annotator:
    """Writes the labelled video (H.264 in MP4 by default).

    For a video file (``source``), at the input's own frame rate: recognition runs on the frames
    the budget lets through, so the labels of each recognised frame are kept and, when the run
    ends, every frame of the file is read again and drawn with the labels of the latest
    recognised frame (carried for at most ``carry`` seconds). A live source has no second read:
    its recognised frames are written as they come, at the budget's rate."""

    def __init__(self, path: str, fps: float, source: str | None = None) -> None:
        self.path = path
        self.fps = fps
        self.source = source
        self.carry = max(1.0, 2.0 / fps)
        self.labels: list[tuple[float, list[dict[str, Any]]]] = []  # (media time, faces)
        self._out: Any = None
        self._stream: Any = None

    def write(self, image: Any, faces: list[dict[str, Any]], media_time: float = 0.0) -> None:
        if self.source is not None:
            self.labels.append((media_time, faces))
            return
        self._encode(draw_faces(image, faces), self.fps)

    def _encode(self, bgr: Any, rate: Any) -> None:
        import av

        if self._out is None:
            try:
                self._out = av.open(self.path, "w")
            except (OSError, av.error.FFmpegError) as exc:
                raise ConfigError(f"--annotate {self.path}: cannot write it ({exc})") from None
            codec = "libx264" if Path(self.path).suffix.lower() in (".mp4", ".mkv") else "mpeg4"
            from fractions import Fraction

            self._stream = self._out.add_stream(codec, rate=Fraction(rate).limit_denominator())
            self._stream.height, self._stream.width = bgr.shape[:2]
            self._stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def _rewrite_source(self) -> None:
        """Every frame of the file, at its own rate, with the labels carried to it."""
        import bisect

        import av

        times = [t for t, _ in self.labels]
        with av.open(self.source, "r") as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or self.fps
            first: float | None = None
            for n, frame in enumerate(container.decode(stream)):
                media = float(frame.time) if frame.time is not None else n / float(rate)
                first = media if first is None else first
                media -= first
                i = bisect.bisect_right(times, media + 1e-6) - 1
                fresh = i >= 0 and media - times[i] <= self.carry
                faces = self.labels[i][1] if fresh else []
                self._encode(draw_faces(frame.to_ndarray(format="rgb24"), faces), rate)

    def close(self) -> None:
        if self.source is not None and self.labels:
            self._rewrite_source()
        if self._out is not None:
            for packet in self._stream.encode():
                self._out.mux(packet)
            self._out.close()
            self._out = None


def watch(config: WatchConfig, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run the pipeline over ``config.source``; returns the number of events printed."""
    from facemetric.recognize.recognizer import Recognizer

    out = out or sys.stdout
    err = err or sys.stderr
    camera = Camera(config.camera, config.source, config.fps)
    if config.db is not None and "://" not in config.db and not Path(config.db).exists():
        raise ConfigError(f"--db {config.db}: gallery not found (enrol people first)")
    recognizer = Recognizer.from_paths(
        config.model,
        config.db,
        engine=config.engine,  # type: ignore[arg-type]
        detector=config.detector,
        create=False,
        threshold=config.threshold,
    )
    warning = recognizer.threshold_warning(config.model)
    if warning:
        print(f"facemetric watch: warning: {warning}", file=err)
    is_file = camera.kind == "file"
    if is_file:  # its failure is the command's one error line, not a log line besides
        logging.getLogger("facemetric.video.reader").setLevel(logging.ERROR)
    reader = CameraReader(camera, mode="all" if is_file else "live", time_origin=None)
    printer = PrintSink(out, config.json, None)
    options = PipelineOptions(
        threshold=config.threshold,
        detect_size=config.detect_size,
        event_gap=config.gap,
        event_min_frames=config.min_frames,
    )
    pipeline = CameraPipeline(camera, recognizer, [printer, *config.sinks], options)
    annotator = None
    if config.annotate:  # a file is written again at its own rate; a live source as it comes
        source = config.source.removeprefix("file://") if is_file else None
        annotator = Annotator(config.annotate, config.fps, source)
    started = time.monotonic()
    last_report = started
    origin_set = False
    reader.start()
    try:
        while True:
            frame = reader.get(timeout=1.0)
            now = time.monotonic()
            if frame is None:
                if reader.done:
                    break
                if not is_file:  # a file's clock is its media time: only frames move it
                    pipeline.idle(time.time())
                if config.duration is not None and now - started >= config.duration:
                    break
                continue
            if is_file and not origin_set:
                printer.origin = frame.time - frame.media_time
                origin_set = True
            faces = pipeline.step(frame)
            if annotator is not None:
                annotator.write(frame.image, faces, frame.media_time)
            if config.progress and now - last_report >= 2.0:
                last_report = now
                print(progress(reader, now - started, printer.count), file=err, flush=True)
            if config.duration is not None and now - started >= config.duration:
                break
    except KeyboardInterrupt:
        pass
    finally:
        reader.stop()
        pipeline.builder.close_all()
        if annotator is not None:
            annotator.close()
        for sink in pipeline.builder.sinks:
            try:
                sink.close()
            except Exception as exc:  # a sink must not hide the run's own outcome
                print(f"facemetric watch: {type(sink).__name__}: {exc}", file=err)
        recognizer.close()
    if reader.state == "failed":  # a file's reason names it already
        raise FacemetricError(
            reader.error if is_file else f"{camera.public_source}: {reader.error}"
        )
    if reader.connects == 0 and reader.error:
        raise FacemetricError(f"{camera.public_source}: {reader.error}")
    elapsed = time.monotonic() - started
    if config.progress:
        summary = progress(reader, elapsed, printer.count, final=True)
        print(summary, file=err, flush=True)
    return printer.count


def progress(reader: CameraReader, elapsed: float, events: int, final: bool = False) -> str:
    """One progress line: media time read, share of the file, speed against real time (a live
    source: time followed and frames recognised a second)."""
    head = "watch: done," if final else "watch:"
    if reader.mode == "live":
        rate = reader.delivered / elapsed if elapsed > 0 else 0.0
        return (
            f"{head} {reader.state} for {elapsed:.1f} s, {reader.delivered} frames recognised "
            f"({rate:.1f}/s), {events} events ({redact(reader.camera.source)})"
        )
    media = reader.media_time
    speed = media / elapsed if elapsed > 0 else 0.0
    share = f" ({100 * media / reader.duration:.0f}%)" if reader.duration else ""
    total = f"/{reader.duration:.1f}" if reader.duration else ""
    return (
        f"{head} {media:.1f}{total} s{share} in {elapsed:.1f} s, {speed:.2f}x real time, "
        f"{reader.delivered} frames recognised, {events} events ({redact(reader.camera.source)})"
    )
