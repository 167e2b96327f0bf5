"""Issue 28, point 9: a PostgreSQL outage. After a 25 s outage, writes got 503 for 21-44 s after
the database was back (the pool's reconnection backs off to 32 s); the event history's error in
the unauthenticated /api/health showed ``postgresql://fm@127.0.0.1:PORT/faces``."""

from __future__ import annotations

import time

import numpy as np
import pytest

import pgserver
from facemetric.errors import GalleryError
from facemetric.events.history import EventStore
from facemetric.events.writer import HistorySink
from facemetric.gallery.store import GalleryStore
from test_events_history import event
from test_gallery_backends import chips

pytestmark = pytest.mark.slow
OUTAGE = 10.0  # long enough for the pool's backoff to reach 8 s


def test_writes_come_back_within_2_s_and_no_address_is_shown() -> None:
    why = pgserver.available()
    if why:
        pytest.skip(why)
    server = pgserver.PostgresServer()  # its own: this test stops it
    store = GalleryStore(server.new_database())
    sink = HistorySink(EventStore(store))
    try:
        vectors = np.eye(1, 8, dtype=np.float32)
        store.add_faces("Ann", chips(1, 1), "key-test", vectors=vectors)
        server.stop()
        stopped = time.monotonic()
        while time.monotonic() - stopped < OUTAGE:  # writes during the outage fail
            with pytest.raises(GalleryError):
                store.add_faces("Bob", chips(2, 1), "key-test", vectors=vectors)
            time.sleep(0.5)
        sink.update(event(1))
        sink.close_event(event(1))
        deadline = time.monotonic() + 10
        while sink.status()["error"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sink.status()["error"] == "database unavailable", sink.status()
        server.start()
        back = time.monotonic()
        while True:
            try:
                store.add_faces("Bob", chips(2, 1), "key-test", vectors=vectors)
                break
            except GalleryError:
                assert time.monotonic() - back < 10, "writes never came back"
                time.sleep(0.1)
        took = time.monotonic() - back
        assert took < 2.0, f"writes came back {took:.1f} s after the database"
    finally:
        sink.close(1)
        store.close()
        server.close()
