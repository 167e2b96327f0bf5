"""The event history on both backends: saving and updating, queries with paging, images, retention
that really deletes (rows and bytes), events across re-embeds and person removal, the writer
thread, and the ``facemetric events`` command."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from facemetric.cli import main
from facemetric.errors import ConfigError, GalleryError
from facemetric.events.history import EventStore
from facemetric.events.model import Event
from facemetric.events.times import parse_time
from facemetric.events.writer import HistorySink
from facemetric.gallery.store import FaceRecord, GalleryStore

T0 = 1_764_750_000.0  # 2025-12-03T08:20:00Z
DIM = 8


class KeyEmbedder:
    """A deterministic embedder over chips (no torch)."""

    model_key = "key-test"
    spec = type("Spec", (), {"alignment": "arcface", "input_size": 112, "embedding_dim": DIM})()

    def __init__(self, key: str = "key-test") -> None:
        self.model_key = key

    def embed(self, faces: np.ndarray, flip: bool = False) -> np.ndarray:
        v = faces.reshape(len(faces), -1)[:, :DIM].astype(np.float32) + 1
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def jpeg(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def event(i: int, person: str | None = "Ann", camera: str = "door", **kw: object) -> Event:
    rng = np.random.default_rng(i)
    values: dict[str, object] = {
        "camera": camera,
        "person": person,
        "first_seen": T0 + 60 * i,
        "last_seen": T0 + 60 * i + 5,
        "similarity": 0.9,
        "track_id": i,
        "frames": 10,
        "nearest": person or "Bob",
        "box": (1.0, 2.0, 30.0, 40.0),
        "decision": {"rule": "threshold", "threshold": 0.5},
        "chip": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
        "snapshot": jpeg(i),
        "closed": True,
    }
    values.update(kw)
    return Event(**values)  # type: ignore[arg-type]


def test_times_are_read_as_people_type_them() -> None:
    assert parse_time("2025-12-03T08:20:00Z") == T0
    assert parse_time("2025-12-03 08:20") == T0  # no zone: UTC
    assert parse_time("2025-12-03T09:20:00+01:00") == T0
    assert parse_time(str(T0)) == T0
    assert parse_time("2h", now=T0) == T0 - 7200
    assert parse_time("", "since") is None
    with pytest.raises(ConfigError, match="since: 'yesterday' is not a time"):
        parse_time("yesterday", "since")


def test_save_update_query_and_paging(gallery_at: str) -> None:
    store = GalleryStore(gallery_at)
    store.add_faces("Ann", [FaceRecord(np.full((112, 112, 3), 7, np.uint8))])
    history = EventStore(store)
    open_one = event(0, closed=False)
    first_id = history.save(open_one)
    assert open_one.id == first_id
    open_one.last_seen += 10
    open_one.frames = 30
    open_one.closed = True
    assert history.save(open_one) == first_id  # an update, not a second row
    got = history.get(first_id)
    assert got.event.frames == 30 and got.event.closed and got.has_chip and got.has_snapshot
    assert got.event.decision == {"rule": "threshold", "threshold": 0.5}
    assert got.event.box == (1.0, 2.0, 30.0, 40.0)
    for i in range(1, 12):
        history.save(event(i, person=None if i % 4 == 0 else "Ann", camera=("door", "hall")[i % 2]))

    page = history.query(limit=5)
    assert [s.event.track_id for s in page.events] == [11, 10, 9, 8, 7]  # newest first
    seen = [s.event.track_id for s in page.events]
    while page.next_before:
        page = history.query(limit=5, before=page.next_before)
        seen += [s.event.track_id for s in page.events]
    assert seen == list(range(11, -1, -1))  # every event once, in order
    assert {s.event.track_id for s in history.iterate(page_size=3, camera="hall")} == {
        1, 3, 5, 7, 9, 11
    }  # fmt: skip
    assert [s.event.track_id for s in history.iterate(known=False)] == [8, 4]
    assert history.count(person="Ann") == 10
    # since/until: events overlapping the window
    window = history.query(since=T0 + 60 * 3 + 4, until=T0 + 60 * 5)
    assert [s.event.track_id for s in window.events] == [5, 4, 3]
    assert history.image(first_id, "snapshot") == event(0).snapshot
    from facemetric.gallery.records import decode_png

    assert np.array_equal(decode_png(history.image(first_id, "chip")), event(0).chip)
    with pytest.raises(GalleryError, match="event 99999"):
        history.image(99999, "chip")
    with pytest.raises(ConfigError, match="before"):
        history.query(before="nonsense")
    with pytest.raises(ConfigError, match="limit"):
        history.query(limit=0)
    d = history.get(first_id).to_dict()
    assert d["snapshot_url"] == f"/api/events/{first_id}/snapshot.jpg" and d["person"] == "Ann"
    store.close()


def test_retention_by_age_and_size_leaves_nothing_behind(gallery_at: str) -> None:
    store = GalleryStore(gallery_at)
    history = EventStore(store)
    for i in range(10):
        history.save(event(i))
    n, _ = history.totals()
    assert n == 10
    # by age: events last seen before T0 + 60*4 go
    pruned = history.prune(keep_days=(60 * 6) / 86400, now=T0 + 60 * 10)
    assert pruned.events == 4
    assert [s.event.track_id for s in history.iterate()] == list(range(9, 3, -1))
    # by size: the oldest go until what is left fits
    with store.backend.read() as con:
        sizes = [int(r[0]) for r in con.execute("SELECT bytes FROM events ORDER BY first_seen")]
    limit = sum(sizes) - sizes[0] - 1  # the two oldest must go to fit, and no more
    pruned = history.prune(max_bytes=limit)
    assert pruned.events == 2 and pruned.bytes == sizes[0] + sizes[1]
    assert [s.event.track_id for s in history.iterate()] == [9, 8, 7, 6]
    assert history.totals()[1] == sum(sizes[2:]) <= limit
    with store.backend.read() as con:  # no image without its event
        rows = con.execute(
            "SELECT COUNT(*) FROM events WHERE chip_png IS NOT NULL OR snapshot_jpeg IS NOT NULL"
        ).fetchone()
    assert int(rows[0]) == 4
    if store.kind == "sqlite":  # the bytes are gone from the files, not only from the rows
        data = b"".join(p.read_bytes() for p in Path(gallery_at).parent.glob("gallery.db*"))
        assert event(9).snapshot[-300:-236] in data  # kept: still there
        for i in range(6):
            assert event(i).snapshot[-300:-236] not in data, f"event {i}'s snapshot left on disk"
    assert history.delete([s.event.id for s in history.iterate()]) == 4  # type: ignore[misc]
    assert history.totals() == (0, 0)
    store.close()


def test_events_survive_reembed_and_removal_keeps_them_only_if_asked(gallery_at: str) -> None:
    store = GalleryStore(gallery_at)
    for name, value in (("Ann", 5), ("Bob", 9)):
        store.add_faces(name, [FaceRecord(np.full((112, 112, 3), value, np.uint8))], KeyEmbedder())
    history = EventStore(store)
    for i in range(3):
        history.save(event(i, person="Ann"))
        history.save(event(10 + i, person="Bob"))
    store.reembed(KeyEmbedder("another-model"))
    assert history.count(person="Ann") == 3 and history.count(person="Bob") == 3
    store.remove_person("Ann")  # default: her events go with her
    assert history.count(person="Ann") == 0
    store.remove_person("Bob", keep_events=True)
    assert history.count(person="Bob") == 3  # kept, with the name
    with store.backend.read() as con:
        ids = con.execute("SELECT DISTINCT person_id FROM events").fetchall()
    assert [r[0] for r in ids] == [None]
    store.close()


def test_history_sink_writes_from_its_thread_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = GalleryStore(tmp_path / "g.db")
    history = EventStore(store)
    sink = HistorySink(history)
    live = event(1, closed=False)
    start = time.perf_counter()
    for n in range(200):  # many updates of one open event: handed over, merged
        live.frames = n + 1
        sink.update(live)
    handed = time.perf_counter() - start
    sink.close_event(live)
    assert sink.flush(10)
    assert handed < 1.0  # never waited for the database (loose: the machine is shared)
    stored = list(history.iterate())
    assert len(stored) == 1 and stored[0].event.frames == 200 and stored[0].event.closed
    assert live.id == stored[0].event.id

    # the database refuses writes (locked by another writer): reported, then written
    import sqlite3

    monkeypatch.setattr("facemetric.gallery.sqlite.BUSY_TIMEOUT_MS", 50)
    slow = GalleryStore(tmp_path / "g.db", create=False)
    blocker = sqlite3.connect(tmp_path / "g.db", timeout=0.1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    sink2 = HistorySink(EventStore(slow), max_backoff=0.2)
    sink2.close_event(event(2))
    deadline = time.monotonic() + 20
    while sink2.status()["state"] == "ok" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink2.status()["state"] == "retrying" and sink2.status()["pending"] == 1
    blocker.execute("ROLLBACK")
    assert sink2.flush(20)
    assert sink2.status() == {"state": "ok", "saved": 1, "pending": 0, "dropped": 0, "error": None}
    assert history.count() == 2
    sink.close()
    sink2.close()
    store.close()
    slow.close()


def test_events_command_lists_json_and_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "g.db"
    store = GalleryStore(db)
    history = EventStore(store)
    for i in range(4):
        history.save(event(i, person="Ann" if i % 2 else None, camera=("door", "hall")[i % 2]))
    store.close()
    assert main(["events", "--db", str(db), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["track_id"] for e in lines] == [3, 2, 1, 0]
    assert main(["events", "--db", str(db), "--person", "Ann", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["track_id"] for r in rows] == ["3", "1"] and rows[0]["camera"] == "hall"
    assert rows[0]["first_seen"] == "2025-12-03T08:23:00.000Z"
    since = "2025-12-03T08:21:30Z"
    assert main(["events", "--db", str(db), "--camera", "door", "--since", since]) == 0
    out = capsys.readouterr().out
    assert "door" in out and "unknown" in out and "hall" not in out and "1 event" in out
    assert main(["events", "--db", str(db), "--since", "soon"]) == 2
    assert "--since: 'soon' is not a time" in capsys.readouterr().err
    assert main(["events", "--db", str(tmp_path / "none.db")]) == 2
    assert not (tmp_path / "none.db").exists()  # reading never creates a gallery
    assert main(["events", "--db", str(db), "--prune", "--keep-days", "0"]) == 0
    assert "pruned 4 events" in capsys.readouterr().out


def test_events_console_script_runs_and_every_argument_has_help(tmp_path: Path) -> None:
    import subprocess
    import sys

    from facemetric.cli import build_parser

    db = tmp_path / "g.db"
    store = GalleryStore(db)
    EventStore(store).save(event(1))
    store.close()
    console = Path(sys.executable).with_name("facemetric")
    done = subprocess.run(
        [str(console), "events", "--db", str(db), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["person"] == "Ann"
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    events_parser = sub.choices["events"]  # type: ignore[attr-defined]
    assert events_parser.description
    for action in events_parser._actions:
        assert action.help, f"events {action.dest} has no help text"


def test_numpy_values_in_a_decision_are_stored_as_numbers(tmp_path: Path) -> None:
    with GalleryStore(tmp_path / "g.db") as store:
        history = EventStore(store)
        decision = {"threshold": np.float32(0.5), "margins": np.array([0.25, 0.5])}
        got = history.get(history.save(event(1, decision=decision)))
        assert got.event.decision == {"threshold": 0.5, "margins": [0.25, 0.5]}


def test_an_unknown_face_on_an_empty_gallery_still_gets_its_images() -> None:
    """No one to be nearest to (similarity -1, nearest None): the builder kept no best frame,
    so such events reached the history without chip or snapshot."""
    from facemetric.events.builder import EventBuilder

    got: list[Event] = []

    class Keep:
        def update(self, e: Event) -> None:
            got.append(e)

        close_event = update

        def close(self) -> None:
            pass

    builder = EventBuilder("porch", [Keep()], gap=1.0)
    frame = np.zeros((240, 320, 3), np.uint8)
    face = {"track_id": 1, "identity": None, "similarity": None, "box": [100, 50, 180, 150]}
    for i in range(3):
        builder.update([face], T0 + 0.2 * i, frame)
    builder.close_all()
    assert got and got[-1].closed
    assert got[0].chip is not None and got[0].snapshot is not None


def test_an_event_the_database_refuses_is_dropped_not_retried_forever(tmp_path: Path) -> None:
    with GalleryStore(tmp_path / "g.db") as store:
        sink = HistorySink(EventStore(store), max_backoff=0.05)
        bad = event(1)
        bad.decision = {"x": object()}  # cannot be stored as JSON
        sink.close_event(bad)
        sink.close_event(event(2))
        assert sink.flush(20)
        assert sink.status()["dropped"] == 1 and sink.status()["saved"] == 1
        assert [s.event.track_id for s in EventStore(store).iterate()] == [2]
        sink.close()
