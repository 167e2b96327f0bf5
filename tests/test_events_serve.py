"""The real console script: ``facemetric serve --mqtt --webhook`` announces the gallery's people
to Home Assistant on a real mosquitto, reports its notifiers in /api/health without secrets and
says ``offline`` when stopped; ``gallery remove --keep-events``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from facemetric.cli import main
from facemetric.events.history import EventStore
from facemetric.gallery.store import FaceRecord, GalleryStore
from test_events_history import event
from test_events_notify import Subscriber, mosquitto, needs_mosquitto, wait_for
from webutil import free_port, running_server


@needs_mosquitto
@pytest.mark.slow
def test_serve_announces_people_and_reports_notifiers(tmp_path: Path) -> None:
    db = tmp_path / "gallery.db"
    store = GalleryStore(db)
    store.add_faces("Ann Lee", [FaceRecord(np.full((112, 112, 3), 9, np.uint8))])
    store.close()
    hook = f"http://127.0.0.1:{free_port()}/hook/s3cret"
    with mosquitto(tmp_path) as port:
        sub = Subscriber(port)
        args = ("--db", str(db), "--model", str(tmp_path / "none.pt"), "--admin-token", "t")
        args += ("--mqtt", f"mqtt://127.0.0.1:{port}", "--webhook", hook)
        args += ("--events-keep-days", "7")
        with running_server(tmp_path, *args) as srv:
            config = wait_for(lambda: sub.on("homeassistant/sensor/facemetric/ann_lee/config"))
            assert json.loads(config[-1][0])["name"] == "Ann Lee"
            assert wait_for(lambda: sub.on("facemetric/status"))[-1][0] == b"online"
            health = wait_for(
                lambda: (
                    (h := httpx.get(srv.url + "/api/health").json())["notifications"]
                    and h["notifications"][0]["state"] == "ok"
                    and h
                )
            )
            kinds = {n["kind"]: n for n in health["notifications"]}
            assert kinds["mqtt"]["target"] == f"mqtt://127.0.0.1:{port}"
            assert kinds["webhook"]["target"].endswith("/...") and "s3cret" not in json.dumps(
                health
            )
            assert health["events"]["keep_days"] == 7.0
            assert "s3cret" not in srv.log.read_text()
        assert wait_for(lambda: sub.on("facemetric/status")[-1][0] == b"offline" or None)
        sub.close()


def test_gallery_remove_keeps_events_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "g.db"
    store = GalleryStore(db)
    for name, v in (("Ann", 1), ("Bob", 2)):
        store.add_faces(name, [FaceRecord(np.full((112, 112, 3), v, np.uint8))])
        EventStore(store).save(event(v, person=name))
    store.close()
    assert main(["gallery", "remove", "Ann", "--db", str(db)]) == 0
    assert "and their past events" in capsys.readouterr().out
    assert main(["gallery", "remove", "Bob", "--db", str(db), "--keep-events"]) == 0
    assert "kept" in capsys.readouterr().out
    with GalleryStore(db) as store:
        history = EventStore(store)
        assert history.count(person="Ann") == 0 and history.count(person="Bob") == 1
