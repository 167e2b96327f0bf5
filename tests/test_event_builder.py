"""Tracks -> events: one event per followed face (track), missed frames never split it, a gap
closes it, a new face at the same place is a new event, and the event's person follows the
track's decision both ways (unknown -> named, named -> unknown).

The faces are fed as ``recognize.tracking.Tracker`` reports them (the tracker's own maths is
in test_tracking_decision.py; real clips in test_video_watch.py). Earlier versions fed the old
hysteresis tracker and expected a lost track to join the same *name*'s event and an unknown
face to join any overlapping unknown event: joining is now the tracker's, by face only."""

from __future__ import annotations

import numpy as np
import pytest

from facemetric.events.builder import EventBuilder, face_chip, snapshot_jpeg
from facemetric.events.model import Event, EventSink


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


def face(
    person: str | None,
    sim: float,
    box: tuple[float, ...] = (100, 100, 200, 220),
    track: int = 1,
    nearest: str = "stranger-ish",
) -> dict:
    """A frame's face as the tracker reports it: its track's decided label and reason."""
    who = person or nearest
    top = [{"identity": who, "similarity": sim, "face_id": 1}]
    reason = "match" if person is not None else "below_threshold"
    return {
        "box": list(box),
        "identity": person,
        "similarity": sim,
        "is_match": person is not None,
        "top_k": top,
        "nearest": who,
        "reason": reason,
        "decision": {"reason": reason, "identity": person, "is_match": person is not None},
        "track_id": track,
        "raw": {"top_k": top, "similarity": sim},
    }


FRAME = np.full((240, 320, 3), 90, np.uint8)


def feed(builder: EventBuilder, frames: list[list[dict]], fps: float = 5.0) -> None:
    for i, faces in enumerate(frames):
        builder.update(faces, i / fps, FRAME, [np.ones(4)] * len(faces))


def test_sink_protocol() -> None:
    assert isinstance(ListSink(), EventSink)


def test_one_sighting_is_one_event_with_its_best_frame() -> None:
    sink = ListSink()
    builder = EventBuilder("door", [sink], gap=1.0)
    sims = [0.92, 0.95, 0.97, 0.94, 0.93]
    feed(builder, [[face("ada", s)] for s in sims] + [[]] * 10)
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
    feed(builder, frames + [[]] * 15)
    assert [e.person for e in sink.closed] == ["ada"]
    assert sink.closed[0].frames == 10


def test_a_new_face_at_the_same_place_is_a_new_event_and_never_named_after_the_last() -> None:
    """A cut from Ada to a stranger at the same box: the tracker starts a new track, and the
    builder a new event that stays unknown (it never inherits Ada's name)."""
    sink = ListSink()
    builder = EventBuilder("door", [sink], gap=2.0)
    frames = [[face("ada", 0.95, track=1)]] * 5 + [[face(None, 0.91, track=2)]] * 5
    feed(builder, frames + [[]] * 15)
    assert [(e.person, e.track_id) for e in sink.closed] == [("ada", 1), (None, 2)]
    ada, stranger = sink.closed
    assert ada.last_seen == pytest.approx(0.8) and stranger.first_seen == pytest.approx(1.0)
    assert stranger.decision["reason"] == "below_threshold" and not stranger.to_dict()["known"]


def test_the_events_person_follows_the_tracks_decision_both_ways() -> None:
    sink = ListSink()
    builder = EventBuilder("door", [sink], gap=2.0)
    frames = [[face(None, 0.92)]] * 3 + [[face("ada", 0.95)]] * 3 + [[face(None, 0.93)]] * 3
    feed(builder, frames + [[]] * 15)
    (event,) = sink.closed
    assert [e for e in sink.updates if e is event]
    assert event.person is None and event.decision["reason"] == "below_threshold"
    assert event.frames == 9


def test_updates_say_each_change_of_person() -> None:
    class Recording(ListSink):
        def __init__(self) -> None:
            super().__init__()
            self.people: list[str | None] = []

        def update(self, event: Event) -> None:
            self.people.append(event.person)

    sink = Recording()
    builder = EventBuilder("door", [sink], gap=2.0, update_every=100.0)
    frames = [[face(None, 0.92)]] * 3 + [[face("ada", 0.95)]] * 3 + [[face(None, 0.93)]] * 3
    feed(builder, frames + [[]] * 15)
    assert sink.people == [None, "ada", None]


def test_a_gap_closes_and_people_get_their_own_events() -> None:
    sink = ListSink()
    builder = EventBuilder("door", [sink], gap=1.0)
    frames = (
        [[face("ada", 0.95)]] * 5
        + [[]] * 8
        + [[face("ada", 0.95, track=2)]] * 5
        + [
            [
                face("bob", 0.93, (10, 10, 60, 70), track=3),
                face(None, 0.5, (250, 10, 300, 70), track=4),
            ]
        ]
        * 5
    )
    feed(builder, frames + [[]] * 10)
    people = sorted((e.person or "-", round(e.first_seen, 1)) for e in sink.closed)
    assert people == [("-", 3.6), ("ada", 0.0), ("ada", 2.6), ("bob", 3.6)]
    unknown = next(e for e in sink.closed if e.person is None)
    assert unknown.embedding is not None and unknown.nearest == "stranger-ish"


def test_a_blip_is_no_event_and_a_broken_sink_stops_nothing() -> None:
    good, broken = ListSink(), BrokenSink()
    builder = EventBuilder("door", [broken, good], gap=1.0, min_frames=2)
    feed(builder, [[face("ada", 0.95)]] + [[]] * 10 + [[face("bob", 0.95, track=2)]] * 3)
    builder.close_all()
    assert [e.person for e in good.closed] == ["bob"]


def test_images() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    assert face_chip(frame, (600, 440, 700, 520)).shape == (150, 150, 3)  # off the edge
    assert face_chip(frame, (900, 900, 950, 950)).shape == (150, 150, 3)
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(snapshot_jpeg(frame))).size == (320, 240)
