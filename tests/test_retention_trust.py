"""Issue 28, point 8: retention must not let an untrusted source push out trusted records.
Strangers kept from anonymous ``/api/identify`` uploads evicted a camera's kept unknown faces,
and anonymous browser streams (``?camera=flood0..24``) evicted the server-side cameras' events
when the size cap pruned. Now what anyone can send is pruned first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemetric.events.history import EventStore
from facemetric.gallery.store import GalleryStore
from facemetric.unknown.keeper import UnknownKeeper
from facemetric.web.events import trusted_cameras
from facemetric.web.settings import WebSettings
from test_events_history import event


def test_a_stream_flood_does_not_push_out_camera_events(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "g.db")
    history = EventStore(store)
    for i in range(5):
        history.save(event(i, person="Ann", camera="door"))  # older, a server-side camera
    for i in range(5, 30):
        history.save(event(i, person=None, camera=f"flood{i % 25}"))  # newer, anyone's streams
    sizes = store.backend._con().execute("SELECT camera, bytes FROM events").fetchall()  # type: ignore[attr-defined]
    door = sum(int(b) for c, b in sizes if c == "door")
    history.prune(max_bytes=door + 1000, trusted=("door",))
    left = [r[0] for r in store.backend._con().execute("SELECT camera FROM events").fetchall()]  # type: ignore[attr-defined]
    assert left.count("door") == 5, left
    assert len(left) < 30
    store.close()


def test_anonymous_uploads_do_not_push_out_a_cameras_unknown_faces(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "g.db")
    keeper = UnknownKeeper(
        store, "key-test", max_days=None, max_faces=6, interval=0.0,
        trusted_sources=["camera:door"],
    )  # fmt: skip
    rng = np.random.default_rng(0)

    def keep(source: str) -> None:
        vector = rng.normal(size=32).astype(np.float32)
        chip = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
        assert keeper.keep_chip(chip, vector / np.linalg.norm(vector), source) is not None

    for _ in range(4):
        keep("camera:door")
    for _ in range(20):
        keep("web")  # anonymous /api/identify uploads
    sources = [
        r[0]
        for r in store.backend._con().execute("SELECT source FROM unknown_faces").fetchall()  # type: ignore[attr-defined]
    ]
    assert len(sources) <= 6 and sources.count("camera:door") == 4, sources
    store.close()


def test_trusted_cameras_are_the_server_side_ones() -> None:
    settings = WebSettings(cameras=["door=rtsp://127.0.0.1:9/s", "hall=x.mp4"])
    assert trusted_cameras(settings) == ("door", "hall")
    assert trusted_cameras(WebSettings()) == ()
