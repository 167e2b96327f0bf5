"""What an event is: one person (or one unknown face) seen by one camera, from first to last sight.

Consecutive sightings of one track become one event (``facemetric.events.builder``); events are
stored in the gallery database (``facemetric.events.history``), listed by the API and the CLI,
and sent to MQTT and webhooks (``facemetric.events.notify``). Times are Unix seconds (UTC) of the
frames' capture; for a video file they are the file's start time plus the frame's media time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np


def iso(ts: float | None) -> str | None:
    """Unix seconds as an ISO 8601 UTC time with milliseconds (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Event:
    """One sighting, open while its track is followed and closed once the track is gone.

    ``person`` is the name decided for the track (None: nobody matched, an unknown face);
    ``similarity`` the best similarity to that person (to the nearest person when unknown);
    ``decision`` says why it is or is not a match (the decision's own ``to_dict``). ``chip`` is
    the best frame's face crop (RGB uint8) and ``snapshot`` a small JPEG of that frame;
    ``embedding`` the best frame's embedding (kept for unknown faces, to group them);
    ``source`` where the frames came from: ``camera`` (server-side) or ``browser`` (a page's
    webcam, named by the page: it never speaks for a server camera).
    """

    camera: str
    person: str | None
    first_seen: float
    last_seen: float
    similarity: float
    track_id: int
    frames: int = 1
    nearest: str | None = None
    box: tuple[float, float, float, float] | None = None
    decision: dict[str, Any] = field(default_factory=dict)
    chip: np.ndarray | None = field(default=None, repr=False)
    snapshot: bytes | None = field(default=None, repr=False)
    embedding: np.ndarray | None = field(default=None, repr=False)
    id: int | None = None  # the store's id once saved
    closed: bool = False
    source: str = "camera"  # camera: a server-side camera; browser: a page's webcam stream

    @property
    def duration(self) -> float:
        return max(0.0, self.last_seen - self.first_seen)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of an event as the API, ``facemetric events --json``, ``watch --json``,
        MQTT and webhooks carry it (no pixels: images are fetched by id)."""
        return {
            "id": self.id,
            "camera": self.camera,
            "source": self.source,
            "person": self.person,
            "known": self.person is not None,
            "nearest": self.nearest,
            "similarity": None if self.similarity is None else round(float(self.similarity), 4),
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "duration_s": round(self.duration, 3),
            "frames": int(self.frames),
            "track_id": int(self.track_id),
            "box": None if self.box is None else [round(float(v), 1) for v in self.box],
            "decision": self.decision,
            "closed": bool(self.closed),
        }


@runtime_checkable
class EventSink(Protocol):
    """Where events go: the history store, MQTT, webhooks, ``watch --json``.

    ``update`` is called when an event opens or its best sighting improves (optional work: a
    sink may ignore it), ``close_event`` once when the track is gone; both return quickly and never
    raise into the recogniser (a sink that is slow or down queues and reports it itself).
    ``close`` flushes and stops the sink.
    """

    def update(self, event: Event) -> None: ...

    def close_event(self, event: Event) -> None: ...

    def close(self) -> None: ...
