"""The event history over HTTP (in-process TestClient, a real SQLite gallery): JSON pages, CSV,
images, the viewer token whenever the server listens beyond 127.0.0.1, notifications in
/api/health, and person removal with or without their events."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import WebSocket
from fastapi.testclient import TestClient

from facemetric.events.model import Event
from facemetric.web.app import create_app
from webutil import TOKEN, free_port, web_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}
VIEWER = "test-viewer-token"
T0 = 1_764_750_000.0


def feed(client: TestClient, n: int, person: str | None = "Ann", camera: str = "door") -> None:
    """Hand events to the server's own sink, as the cameras do, and wait until written."""
    outputs = client.app.state.events  # type: ignore[attr-defined]
    rng = np.random.default_rng(n)
    for i in range(n):
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
        ev = Event(
            camera=camera,
            person=person,
            first_seen=T0 + 60 * i,
            last_seen=T0 + 60 * i + 3,
            similarity=0.7,
            track_id=i,
            chip=rng.integers(0, 255, (24, 24, 3), dtype=np.uint8),
            snapshot=buf.getvalue(),
        )
        outputs.sink.update(ev)
        outputs.sink.close_event(ev)
    assert outputs.history_sink.flush(10)


def app_client(tmp_path: Path, **kw: Any) -> TestClient:
    """The app; the events here are of 2025, so no age limit unless a test sets one."""
    return TestClient(create_app(web_settings(tmp_path, None, **{"events_keep_days": 0, **kw})))


def test_events_json_pages_csv_and_images(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        assert client.get("/api/events").json() == {
            "events": [],
            "next_before": None,
            "next_url": None,
        }
        feed(client, 5)
        feed(client, 2, person=None, camera="hall")
        page = client.get("/api/events", params={"limit": 3, "person": "Ann"}).json()
        assert [e["track_id"] for e in page["events"]] == [4, 3, 2]
        assert page["next_url"].startswith("/api/events?")
        rest = client.get(page["next_url"]).json()
        assert [e["track_id"] for e in rest["events"]] == [1, 0] and rest["next_before"] is None
        unknown = client.get("/api/events", params={"known": "false"}).json()["events"]
        assert {e["camera"] for e in unknown} == {"hall"} and unknown[0]["person"] is None
        window = {"since": "2025-12-03T08:21:30Z", "until": "2025-12-03T08:23:00Z"}
        got = client.get("/api/events", params={**window, "camera": "door"}).json()["events"]
        assert [e["track_id"] for e in got] == [3, 2]
        r = client.get("/api/events", params={"since": "yesterday"})
        assert r.status_code == 400 and "since" in r.json()["detail"]
        assert client.get("/api/events", params={"limit": 5000}).status_code == 422

        r = client.get("/api/events.csv", params={"camera": "door"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [row["track_id"] for row in rows] == ["4", "3", "2", "1", "0"]
        assert rows[0]["first_seen"] == "2025-12-03T08:24:00.000Z"

        event = page["events"][0]
        snap = client.get(event["snapshot_url"])
        assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
        assert snap.content[:2] == b"\xff\xd8" and "private" in snap.headers["cache-control"]
        chip = client.get(event["chip_url"])
        assert chip.status_code == 200 and chip.content[:4] == b"\x89PNG"
        assert client.get("/api/events/999999/snapshot.jpg").status_code == 404
        assert client.get("/api/events/0/chip.png").status_code == 422
        assert client.get(f"/api/events/{event['id']}").json()["track_id"] == 4
        facets = client.get("/api/events/facets").json()
        assert facets == {"cameras": ["door", "hall"], "people": ["Ann"]}

        # deleting needs the admin token; the images go with the event
        assert client.delete(f"/api/events/{event['id']}").status_code == 401
        assert client.delete(f"/api/events/{event['id']}", headers=AUTH).status_code == 200
        assert client.get(event["snapshot_url"]).status_code == 404
        assert client.post("/api/events/prune", headers=AUTH).json()["events"] == 0
        client.app.state.events.keep_days = 30  # type: ignore[attr-defined]
        assert client.post("/api/events/prune", headers=AUTH).json()["events"] == 6
        assert client.get("/api/events").json()["events"] == []


def test_viewer_token_needed_beyond_localhost(tmp_path: Path) -> None:
    settings: dict[str, Any] = {"host": "0.0.0.0", "viewer_token": VIEWER}
    with app_client(tmp_path, **settings) as client:
        feed(client, 1)
        r = client.get("/api/events")
        assert r.status_code == 401 and "viewer token required" in r.json()["detail"]
        event_id = client.get("/api/events", headers=AUTH).json()["events"][0]["id"]
        viewer = {"Authorization": f"Bearer {VIEWER}"}
        for path in ("/api/events", "/api/events.csv", f"/api/events/{event_id}/snapshot.jpg",
                     f"/api/events/{event_id}/chip.png", "/api/events/facets"):  # fmt: skip
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 403
            assert (
                client.get(path, headers={"Authorization": f"Bearer {VIEWER}"}).status_code == 200
            )
            assert client.get(path, headers=AUTH).status_code == 200  # the admin token too
        # a viewer cannot change anything
        assert client.delete(f"/api/events/{event_id}", headers=viewer).status_code == 403
        # the page signs in once: a cookie (not the token itself) opens the images
        assert client.get("/api/session").json() == {"required": True, "authorized": False}
        assert client.post("/api/session", json={"token": "nope"}).status_code == 403
        r = client.post("/api/session", json={"token": VIEWER})
        assert r.status_code == 200 and r.json()["authorized"]
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and VIEWER not in cookie
        assert client.get(f"/api/events/{event_id}/snapshot.jpg").status_code == 200
        assert client.get("/api/session").json() == {"required": True, "authorized": True}
        client.delete("/api/session")
        assert client.get("/api/events").status_code == 401
        # what is not personal data stays open
        assert client.get("/api/health").status_code == 200


def test_viewer_token_generated_and_local_server_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with app_client(tmp_path, host="0.0.0.0") as client:  # no viewer token set: one is made
        assert client.get("/api/events").status_code == 401
        token = client.app.state.viewer_token  # type: ignore[attr-defined]
        assert token in capsys.readouterr().err  # printed for the operator
        assert client.get("/api/events", headers={"Authorization": f"Bearer {token}"}).is_success
    with app_client(tmp_path) as client:  # 127.0.0.1: the machine's own user
        assert client.get("/api/events").status_code == 200
        assert client.get("/api/session").json() == {"required": False, "authorized": True}
    with app_client(tmp_path, viewer_token_required="always", viewer_token=VIEWER) as client:
        assert client.get("/api/events").status_code == 401


def test_health_reports_notifications_without_secrets(tmp_path: Path) -> None:
    port = free_port()  # nobody listens there: the webhook is down
    hook = f"http://127.0.0.1:{port}/hook/s3cret-path"
    mqtt = f"mqtt://ada:pw-s3cret@127.0.0.1:{free_port()}"
    with app_client(tmp_path, webhook=[hook], mqtt=mqtt, events_keep_days=30) as client:
        feed(client, 1)
        import time

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            health = client.get("/api/health").json()
            states = {n["kind"]: n for n in health["notifications"]}
            if states["webhook"]["error"] and "cannot connect" in (states["mqtt"]["error"] or ""):
                break
            time.sleep(0.2)
        assert states["webhook"]["state"] == "retrying" and states["webhook"]["queued"] >= 1
        assert states["webhook"]["target"] == f"http://127.0.0.1:{port}/..."
        assert states["mqtt"]["state"] in ("connecting", "retrying")
        assert states["mqtt"]["target"].startswith("mqtt://ada:***@127.0.0.1")
        assert "s3cret" not in json.dumps(health)
        assert health["events"]["state"] == "ok" and health["events"]["saved"] >= 1
        assert health["events"]["keep_days"] == 30.0


def test_bad_notification_urls_are_refused_with_the_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from facemetric.cli import main

    assert main(["serve", "--mqtt", "http://user:pw@broker"]) == 2
    err = capsys.readouterr().err
    assert "mqtt" in err and "mqtt://" in err and "pw" not in err
    assert main(["serve", "--webhook", "ftp://x/secret-part"]) == 2
    err = capsys.readouterr().err
    assert "webhook" in err and "secret-part" not in err


def test_remove_person_with_or_without_their_events(tmp_path: Path) -> None:
    from facemetric.gallery.store import FaceRecord, GalleryStore

    store = GalleryStore(tmp_path / "gallery.db")
    for name, v in (("Ann", 3), ("Bob", 4)):
        store.add_faces(name, [FaceRecord(np.full((112, 112, 3), v, np.uint8))])
    store.close()
    with app_client(tmp_path) as client:
        feed(client, 2, person="Ann")
        feed(client, 2, person="Bob", camera="hall")
        assert client.delete("/api/people/Ann", headers=AUTH).status_code == 200
        assert client.get("/api/events", params={"person": "Ann"}).json()["events"] == []
        r = client.delete("/api/people/Bob", params={"keep_events": "true"}, headers=AUTH)
        assert r.status_code == 200
        kept = client.get("/api/events", params={"person": "Bob"}).json()["events"]
        assert len(kept) == 2 and client.get(kept[0]["snapshot_url"]).status_code == 200


def test_require_viewer_guards_websockets_too() -> None:
    """What camera picture routes rely on: the same dependency on a WebSocket route (the
    annotation of ``ws`` must resolve at module level, hence the import at the top)."""
    from fastapi import Depends, FastAPI
    from starlette.testclient import WebSocketDenialResponse

    from facemetric.web.security import require_viewer

    app = FastAPI()
    app.state.viewer_required = True
    app.state.viewer_token = VIEWER
    app.state.admin_token = TOKEN

    @app.websocket("/ws/picture", dependencies=[Depends(require_viewer)])
    async def picture(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("frame")
        await ws.close()

    client = TestClient(app)
    with (
        pytest.raises(WebSocketDenialResponse) as denied,  # refused at the handshake
        client.websocket_connect("/ws/picture") as ws,
    ):
        ws.receive_text()
    assert denied.value.status_code == 401
    with client.websocket_connect(
        "/ws/picture", headers={"Authorization": f"Bearer {VIEWER}"}
    ) as ws:
        assert ws.receive_text() == "frame"
