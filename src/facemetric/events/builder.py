"""Tracks -> events: one followed face (one track) on one camera is one ``Event``.

The builder is fed each recognised frame's faces as ``recognize.tracking.Tracker`` reports
them (``track_id``, ``identity``, ``reason``, ``decision``, ``box``, ``top_k``, ``raw``) with
the frame and the faces' embeddings. An event opens at a track's ``min_frames``-th sighting and
stays open while the face is seen; it closes once nothing of it was seen for ``gap`` seconds.
Tracks are joined only by the tracker, and only by the same face (its embedding): a track
lost for a moment and found again keeps its id, so missed frames never split an event, and a
different face at the same place (a cut) is a new track, so an event never spans two people.

An event's person is its track's decision over the track's evidence (``Recognizer.decide``),
never a label seen once and kept: when more evidence names an unknown face, or no longer names
a person, the event changes person and the sinks get an ``update``. Each event keeps its best
sighting: the highest frame similarity to the person decided (the nearest one when unknown),
that frame's face chip, a small JPEG snapshot of that frame and its embedding (to group unknown
faces later). Sinks (``EventSink``: history, notifiers, ``watch --json``) get ``update`` when
an event opens, changes person or its best sighting improves (at most once a second), and
``close_event`` once. A sink that raises is logged and skipped; recognition goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facemetric.events.model import Event, EventSink

log = logging.getLogger(__name__)
CHIP_SIZE = 150
SNAPSHOT_SIDE = 320


@dataclass
class _Open:
    event: Event
    tracks: set[int]
    best_frame: np.ndarray | None = None
    best_box: tuple[float, float, float, float] | None = None
    best_label: str | None = None  # the person the best sighting was scored for
    emitted: bool = False
    last_update: float = float("-inf")
    dirty: bool = False


class EventBuilder:
    """Builds one camera's events from its tracked faces and sends them to ``sinks``."""

    def __init__(
        self,
        camera: str,
        sinks: Iterable[EventSink] = (),
        gap: float = 2.0,
        min_frames: int = 2,
        update_every: float = 1.0,
        snapshot_side: int = SNAPSHOT_SIDE,
        source: str = "camera",
    ) -> None:
        if gap <= 0:
            raise ValueError(f"gap: must be positive, got {gap}")
        self.camera = camera
        self.source = source
        self.sinks = (
            sinks if isinstance(sinks, list) else list(sinks)
        )  # shared: sinks added later count
        self.gap = gap
        self.min_frames = max(1, min_frames)
        self.update_every = update_every
        self.snapshot_side = snapshot_side
        self.open: list[_Open] = []
        self.closed: list[Event] = []  # kept only when ``keep_closed`` (watch, tests)
        self.keep_closed = False
        self._now = float("-inf")

    # ---- feeding --------------------------------------------------------------------------------
    def update(
        self,
        faces: Sequence[dict[str, Any]],
        t: float,
        frame: np.ndarray | None = None,
        embeddings: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        """One recognised frame at time ``t``: its steadied faces (and the frame's pixels and
        the faces' embeddings, for the best sighting's images)."""
        self._now = t
        for i, face in enumerate(faces):
            emb = embeddings[i] if embeddings is not None and i < len(embeddings) else None
            self._sighting(face, t, frame, emb)
        self.expire(t)

    def expire(self, t: float) -> None:
        """Close the events whose face was not seen for ``gap`` seconds before ``t`` (call it
        also when no frame comes, so a camera that went away closes its events)."""
        for item in [o for o in self.open if t - o.event.last_seen > self.gap]:
            self._close(item)

    def close_all(self) -> None:
        """Close every open event (the source ended or the server stops)."""
        for item in list(self.open):
            self._close(item)

    # ---- internals ------------------------------------------------------------------------------
    def _find(self, face: dict[str, Any]) -> _Open | None:
        track = int(face["track_id"])
        for item in self.open:
            if track in item.tracks:
                return item
        return None

    def _sighting(
        self, face: dict[str, Any], t: float, frame: np.ndarray | None, emb: np.ndarray | None
    ) -> None:
        item = self._find(face)
        box = tuple(float(v) for v in face["box"])
        if item is None:
            event = Event(
                camera=self.camera,
                person=None,
                first_seen=t,
                last_seen=t,
                similarity=-1.0,
                track_id=int(face["track_id"]),
                frames=0,
                source=self.source,
            )
            item = _Open(event, {int(face["track_id"])})
            self.open.append(item)
        item.tracks.add(int(face["track_id"]))
        event = item.event
        event.last_seen = max(event.last_seen, t)
        event.frames += 1
        event.box = box  # type: ignore[assignment]
        person = face.get("identity")  # the track's decision now (None: not named)
        changed = person != event.person
        event.person = person
        if face.get("decision"):
            event.decision = dict(face["decision"])
        scored_for = person if person is not None else face.get("nearest")
        similarity = _similarity(face, scored_for)
        first = item.best_frame is None and frame is not None  # an empty gallery: no score
        seen = face.get("raw") is not None or item.best_frame is None  # embedded this frame
        better = seen and similarity > event.similarity
        if first or changed or item.best_label != scored_for or better:
            event.similarity = similarity
            event.nearest = scored_for
            item.best_frame = frame
            item.best_box = box  # type: ignore[assignment]
            item.best_label = scored_for
            if emb is not None or event.embedding is None:
                event.embedding = None if emb is None else np.asarray(emb, np.float32)
            event.chip = None
            event.snapshot = None
            item.dirty = True
        if event.frames < self.min_frames:
            return
        if (
            not item.emitted
            or changed
            or (item.dirty and t - item.last_update >= self.update_every)
        ):
            self._images(item)
            item.emitted = True
            item.last_update = t
            item.dirty = False
            self._send("update", event)

    def _images(self, item: _Open) -> None:
        event = item.event
        if event.chip is None and item.best_frame is not None and item.best_box is not None:
            event.chip = face_chip(item.best_frame, item.best_box)
        if event.snapshot is None and item.best_frame is not None:
            event.snapshot = snapshot_jpeg(item.best_frame, self.snapshot_side)

    def _close(self, item: _Open) -> None:
        self.open.remove(item)
        if not item.emitted:
            return  # too short to be an event (a detector's blip)
        self._images(item)
        item.best_frame = None
        event = item.event
        event.closed = True
        if self.keep_closed:
            self.closed.append(event)
        self._send("close_event", event)

    def _send(self, method: str, event: Event) -> None:
        for sink in self.sinks:
            try:
                getattr(sink, method)(event)
            except Exception:  # a sink's failure must not stop recognition
                log.exception("event sink %s.%s failed", type(sink).__name__, method)


def _similarity(face: dict[str, Any], person: str | None) -> float:
    """This frame's own similarity to ``person`` (its top-k entry when it was embedded), else
    the track's."""
    raw = face.get("raw") or {}
    for source in (raw.get("top_k") or [], face.get("top_k") or []):
        for cand in source:
            if cand.get("identity") == person:
                return float(cand["similarity"])
    value = face.get("similarity")
    return float(value) if value is not None else -1.0


def face_chip(frame: np.ndarray, box: Sequence[float], size: int = CHIP_SIZE) -> np.ndarray:
    """The face of ``box`` with a margin, as a square RGB chip of ``size`` pixels."""
    import cv2

    h, w = frame.shape[:2]
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * 1.3
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    c, d = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    if c <= a or d <= b:
        return np.zeros((size, size, 3), np.uint8)
    return np.ascontiguousarray(
        cv2.resize(frame[b:d, a:c], (size, size), interpolation=cv2.INTER_AREA)
    )


def snapshot_jpeg(frame: np.ndarray, side: int = SNAPSHOT_SIDE, quality: int = 80) -> bytes:
    """A small JPEG of the whole frame (longest side ``side``)."""
    import cv2

    h, w = frame.shape[:2]
    scale = min(1.0, side / max(h, w))
    small = frame
    if scale < 1.0:
        small = cv2.resize(
            frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
    ok, data = cv2.imencode(
        ".jpg", np.ascontiguousarray(small[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("snapshot: JPEG encoding failed")
    return bytes(data.tobytes())
