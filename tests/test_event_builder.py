"""Tracks -> events: one event per sighting, missed frames never split it, a gap closes it."""

from __future__ import annotations

import numpy as np
import pytest

from facemetric.events.builder import EventBuilder, face_chip, snapshot_jpeg
from facemetric.events.model import Event, EventSink
from facemetric.tracking import Tracker


class ListSink:
    def __init__(self) -> None:
        self.updates: list[Event] = []
        self.closed: list[Event] = []
        self.stopped = False

    def update(self, event: Event) -> None:
        self.updates.append(event)

    def close_event(self, event: Event) -> None:
        self.closed.append(event)

    def close(self) -> None:
        self.stopped = True


class BrokenSink(ListSink):
    def close_event(self, event: Event) -> None:
        raise RuntimeError("the broker is down")


def face(person: str | None, sim: float, box: tuple[float, ...] = (100, 100, 200, 220)) -> dict:
    """A frame's raw face as the recogniser reports it (``FaceMatch.to_dict()`` shape)."""
    top = [{"identity": person or "stranger-ish", "similarity": sim, "face_id": 1}]
    return {
        "box": list(box),
        "identity": person if sim >= 0.9 else None,
        "similarity": sim,
        "is_match": sim >= 0.9,
        "top_k": top,
    }


FRAME = np.full((240, 320, 3), 90, np.uint8)


def feed(builder: EventBuilder, tracker: Tracker, frames: list[list[dict]], fps: float = 5.0):
    for i, faces in enumerate(frames):
        builder.update(tracker.update(faces, 0.9), i / fps, FRAME, [np.ones(4)] * len(faces))


def test_sink_protocol() -> None:
    assert isinstance(ListSink(), EventSink)


def test_one_sighting_is_one_event_with_its_best_frame() -> None:
    sink = ListSink()
    builder = EventBuilder("door", [sink], gap=1.0)
    sims = [0.92, 0.95, 0.97, 0.94, 0.93]
    feed(builder, Tracker(), [[face("ada", s)] for s in sims] + [[]] * 10)
    (event,) = sink.closed
    assert event.person == "ada" and event.camera == "door" and event.closed
    assert event.similarity == pytest.approx(0.97)
    assert event.first_seen == pytest.approx(0.0) and event.last_seen == pytest.approx(0.8)
    assert event.frames == 5
    assert event.chip is not None and event.chip.shape == (150, 150, 3)
    assert event.snapshot is not None and event.snapshot[:2] == b"\xff\xd8"
    assert sink.updates and sink.updates[0] is event  # opened before it closed
    assert event.to_dict()["person"] == "ada"


@pytest.mark.parametrize("missing", [1, 3])
def test_missed_frames_never_split_an_event(missing: int) -> None:
    sink = ListSink()
    builder = EventBuilder("door", [sink], gap=2.0)
    frames = [[face("ada", 0.95)]] * 5 + [[]] * missing + [[face("ada", 0.95)]] * 5
    feed(builder, Tracker(), frames + [[]] * 15)
    assert [e.person for e in sink.closed] == ["ada"]
    assert sink.closed[0].frames == 10


def test_a_track_the_tracker_lost_continues_the_same_persons_event() -> None:
    """The tracker gives up after max_missed frames; the event goes on within the gap."""
    sink = ListSink()
    builder = EventBuilder("door", [sink], gap=2.0)
    tracker = Tracker(max_missed=1)
    frames = [[face("ada", 0.95)]] * 4 + [[]] * 4 + [[face("ada", 0.95, (140, 100, 240, 220))]] * 4
    feed(builder, tracker, frames + [[]] * 15)
    (event,) = sink.closed
    assert event.frames == 8 and event.duration == pytest.approx(11 / 5)


def test_a_gap_closes_and_people_get_their_own_events() -> None:
    sink = ListSink()
    builder = EventBuilder("door", [sink], gap=1.0)
    frames = (
        [[face("ada", 0.95)]] * 5
        + [[]] * 8
        + [[face("ada", 0.95)]] * 5
        + [[face("bob", 0.93, (10, 10, 60, 70)), face(None, 0.5, (250, 10, 300, 70))]] * 5
    )
    feed(builder, Tracker(), frames + [[]] * 10)
    people = sorted((e.person or "-", round(e.first_seen, 1)) for e in sink.closed)
    assert people == [("-", 3.6), ("ada", 0.0), ("ada", 2.6), ("bob", 3.6)]
    unknown = next(e for e in sink.closed if e.person is None)
    assert unknown.embedding is not None and unknown.nearest == "stranger-ish"


def test_a_blip_is_no_event_and_a_broken_sink_stops_nothing() -> None:
    good, broken = ListSink(), BrokenSink()
    builder = EventBuilder("door", [broken, good], gap=1.0, min_frames=2)
    feed(builder, Tracker(), [[face("ada", 0.95)]] + [[]] * 10 + [[face("bob", 0.95)]] * 3)
    builder.close_all()
    assert [e.person for e in good.closed] == ["bob"]


def test_images() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    assert face_chip(frame, (600, 440, 700, 520)).shape == (150, 150, 3)  # off the edge
    assert face_chip(frame, (900, 900, 950, 950)).shape == (150, 150, 3)
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(snapshot_jpeg(frame))).size == (320, 240)
