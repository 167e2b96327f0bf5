"""REST API: in-process TestClient against a real SQLite gallery and real photos, plus a real
``facemetric serve`` subprocess on 127.0.0.1."""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facemetric.cli import main
from facemetric.web.app import create_app
from facemetric.web.settings import WebSettings
from webutil import TOKEN, astronaut, encode, running_server, web_settings

REPO = Path(__file__).resolve().parents[1]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(tmp_path: Path, untrained_tiny_checkpoint: Path):
    with TestClient(create_app(web_settings(tmp_path, untrained_tiny_checkpoint))) as c:
        yield c


def photo(name: str = "astronaut.png") -> tuple[str, bytes, str]:
    return (name, encode(astronaut(), "PNG"), "image/png")


def test_no_model_is_reported_and_gallery_still_readable(tmp_path: Path) -> None:
    with TestClient(create_app(web_settings(tmp_path, None))) as c:
        health = c.get("/api/health").json()
        assert health["status"] == "no_model"
        assert "missing.pt" in health["message"] and not health["model_loaded"]
        model = c.get("/api/model").json()
        assert model["loaded"] is False and "missing.pt" in model["error"]
        assert c.get("/api/people").json() == []
        r = c.post("/api/identify", files={"file": photo()})
        assert r.status_code == 503 and "no model loaded" in r.json()["detail"]
        r = c.post("/api/people", data={"name": "x"}, files=[("files", photo())], headers=AUTH)
        assert r.status_code == 503


def test_empty_gallery_then_enrol_identify_remove(client: TestClient, tmp_path: Path) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "empty_gallery" and "enrol" in health["message"]
    model = client.get("/api/model").json()
    assert model["loaded"] and model["backbone"] == "tiny" and model["embedding_dim"] == 32

    r = client.post(
        "/api/people", data={"name": "Eileen Collins"}, files=[("files", photo())], headers=AUTH
    )
    assert r.status_code == 201, r.text
    person = r.json()
    assert person["name"] == "Eileen Collins" and person["face_count"] == 1
    face_id = person["faces"][0]["id"]
    assert person["faces"][0]["image_url"].startswith(f"/api/faces/{face_id}/image?v={face_id}-")

    health = client.get("/api/health").json()
    assert health["status"] == "ok"
    if health["gallery"]["index"] is not None:  # the server's copy is loaded: 1 face, exact
        assert health["gallery"]["index"] == "exact" and health["gallery"]["index_entries"] == 1
    people = client.get("/api/people").json()
    assert [p["name"] for p in people] == ["Eileen Collins"]
    faces = client.get("/api/people/Eileen Collins/faces").json()
    assert [f["id"] for f in faces] == [face_id]
    img = client.get(f"/api/faces/{face_id}/image")
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(img.content)).size == (200, 200)  # the gallery chip (JPEG)

    # The very photo that was enrolled must come back as that person, similarity ~1.
    r = client.post("/api/identify", files={"file": photo()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["width"] == 512 and body["server_ms"] > 0
    (face,) = body["faces"]
    assert face["identity"] == "Eileen Collins" and face["is_match"] is True
    assert face["similarity"] > 0.99 and face["gallery_face_id"] == face_id
    assert face["top_k"][0]["identity"] == "Eileen Collins"

    # The rows really are in the SQLite file.
    db = tmp_path / "gallery.db"
    assert db.is_file()

    r = client.delete("/api/people/Eileen Collins", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"name": "Eileen Collins", "faces_removed": 1}
    assert client.get("/api/people").json() == []
    assert client.get(f"/api/faces/{face_id}/image").status_code == 404
    r = client.delete("/api/people/Eileen Collins", headers=AUTH)
    assert r.status_code == 404 and "Eileen Collins" in r.json()["detail"]
    assert client.get("/api/people/nobody/faces").status_code == 404


def test_face_ids_are_never_reused_and_images_never_served_stale(client: TestClient) -> None:
    """Issue 23 item 2: enrol one person, remove them, enrol another: the new face gets a new
    id (it got the removed face's id, 19 in the report), and a browser that kept the old
    picture revalidates it (bare URL) or asks for another URL (the API's, with ?v=)."""
    first = client.post("/api/people", data={"name": "A"}, files=[("files", photo())], headers=AUTH)
    old = first.json()["faces"][0]
    old_image = client.get(old["image_url"])
    assert "immutable" in old_image.headers["cache-control"]
    bare = client.get(f"/api/faces/{old['id']}/image")
    assert bare.headers["cache-control"] == "private, no-cache" and bare.headers["etag"]
    etag = bare.headers["etag"]
    again = client.get(f"/api/faces/{old['id']}/image", headers={"If-None-Match": etag})
    assert again.status_code == 304
    client.delete("/api/people/A", headers=AUTH)
    flipped = np.ascontiguousarray(astronaut()[:, ::-1])
    second = client.post(
        "/api/people",
        data={"name": "B"},
        files=[("files", ("b.png", encode(flipped, "PNG"), "image/png"))],
        headers=AUTH,
    )
    new = second.json()["faces"][0]
    assert new["id"] > old["id"] and new["image_url"] != old["image_url"]
    assert client.get(old["image_url"]).status_code == 404
    stale = client.get(f"/api/faces/{new['id']}/image", headers={"If-None-Match": etag})
    assert stale.status_code == 200  # another face's tag never validates this one


def test_preview_shows_aligned_crops_without_saving(client: TestClient) -> None:
    frame = np.full((480, 640, 3), 80, np.uint8)  # a photo without any face
    files = [("files", photo()), ("files", ("empty.jpg", encode(frame), "image/jpeg"))]
    r = client.post("/api/enroll/preview", files=files)
    assert r.status_code == 200, r.text
    first, empty = r.json()["photos"]
    assert first["filename"] == "astronaut.png" and (first["width"], first["height"]) == (512, 512)
    assert first["faces"][0]["selected"] is True
    crop = first["faces"][0]["crop"]
    assert crop.startswith("data:image/png;base64,")
    import base64

    assert Image.open(io.BytesIO(base64.b64decode(crop.split(",", 1)[1]))).size == (112, 112)
    assert empty["faces"] == []
    assert client.get("/api/people").json() == []  # nothing saved


def test_enrol_photo_without_face_is_refused(client: TestClient) -> None:
    blank = ("blank.jpg", encode(np.full((200, 200, 3), 128, np.uint8)), "image/jpeg")
    r = client.post("/api/people", data={"name": "ghost"}, files=[("files", blank)], headers=AUTH)
    assert r.status_code == 422 and "no face" in r.json()["detail"]
    assert client.get("/api/people").json() in ([], [{"name": "ghost", "face_count": 0}])


def test_face_images_by_id_only(client: TestClient) -> None:
    for path in (
        "/api/faces/..%2F..%2Fpyproject.toml/image",
        "/api/faces/../../pyproject.toml/image",
        "/api/faces/-1/image",
        "/api/faces/1.5/image",
        "/static/../../pyproject.toml",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
    ):
        r = client.get(path)
        assert r.status_code in (404, 422), path
        assert b"[project]" not in r.content
    assert client.get("/api/faces/999/image").status_code == 404


@pytest.mark.parametrize("name", ["", "   ", "a/b", "x" * 101, "tab\there"])
def test_bad_names_are_refused(client: TestClient, name: str) -> None:
    r = client.post("/api/people", data={"name": name}, files=[("files", photo())], headers=AUTH)
    assert r.status_code == 422
    assert client.get("/api/people").json() == []


def test_size_limits(tmp_path: Path, untrained_tiny_checkpoint: Path) -> None:
    s = web_settings(tmp_path, untrained_tiny_checkpoint, max_upload_bytes=200_000, max_photos=2)
    with TestClient(create_app(s)) as c:
        big = ("big.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 300_000, "image/png")
        r = c.post("/api/identify", files={"file": big})
        assert r.status_code == 413 and "200,000" in r.json()["detail"]
        small = ("a.jpg", encode(astronaut()[::4, ::4]), "image/jpeg")
        r = c.post("/api/enroll/preview", files=[("files", small)] * 3)
        assert r.status_code == 413 and "3 photos" in r.json()["detail"]


def test_cors_closed_by_default_and_opened_by_setting(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(web_settings(tmp_path, untrained_tiny_checkpoint))) as c:
        r = c.options("/api/identify", headers=headers)
        assert "access-control-allow-origin" not in r.headers
        r = c.get("/api/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    s = web_settings(tmp_path, untrained_tiny_checkpoint, cors_origins=["https://app.example"])
    with TestClient(create_app(s)) as c:
        r = c.get("/api/health", headers={"Origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_pages_and_openapi(client: TestClient) -> None:
    for path in ("/", "/gallery"):
        r = client.get(path)
        assert r.status_code == 200 and "/static/app.js" in r.text
        assert "/static/webcam.js" in r.text  # the camera and stream code both pages share
    assert "getUserMedia" in client.get("/static/webcam.js").text
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/api/identify",
        "/api/people",
        "/api/people/{name}",
        "/api/health",
        "/api/model",
        "/api/faces/{face_id}/image",
        "/api/enroll/preview",
    ):
        assert p in paths
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "PersonPublic" in schemas and "HealthPublic" in schemas


def test_every_setting_is_documented() -> None:
    doc = (REPO / "docs" / "web.md").read_text()
    section = doc.split("## Settings", 1)[1]
    documented = set(re.findall(r"^\| `(\w+)` \| `FACEMETRIC_", section, flags=re.M))
    fields = set(WebSettings.model_fields)
    assert fields - documented == set(), "settings missing from docs/web.md"
    assert documented - fields == set(), "docs/web.md lists settings that do not exist"
    for name, field in WebSettings.model_fields.items():
        assert field.description, f"{name} has no description"
        assert f"`FACEMETRIC_{name.upper()}`" in section


def test_serve_help_states_the_settings_defaults() -> None:
    """``serve --help`` writes its defaults out (the settings cost ~1 s to import, too much for
    every command's parser): each one must be the setting's own default."""
    import argparse

    from facemetric.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    checked = []
    for action in sub.choices["serve"]._actions:
        field = WebSettings.model_fields.get(action.dest)
        default = None if field is None else field.default
        if isinstance(default, bool) or not isinstance(default, str | int | float):
            continue
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        assert f"default {shown}" in (action.help or ""), f"--{action.dest}: help {action.help!r}"
        checked.append(action.dest)
    assert {"port", "stream_detect_size", "events_keep_days", "unknown_max_faces"} <= set(checked)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEMETRIC_ADMIN_TOKEN", "from-env")
    monkeypatch.setenv("FACEMETRIC_PORT", "9123")
    monkeypatch.setenv("FACEMETRIC_CORS_ORIGINS", '["http://a.example"]')
    s = WebSettings()
    assert s.admin_token is not None and s.admin_token.get_secret_value() == "from-env"
    assert s.port == 9123 and s.cors_origins == ["http://a.example"]
    assert "from-env" not in repr(s)  # the token is never printed by accident


def test_serve_cli_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("facemetric: error: serve settings: port") and "Traceback" not in err
    assert main(["serve", "--detector", "nonexistent", "--port", "0"]) == 2
    assert "nonexistent" in capsys.readouterr().err


def test_real_server_generates_and_prints_admin_token(
    tmp_path: Path, untrained_tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console script serves on 127.0.0.1; without a token it prints a fresh one."""
    monkeypatch.delenv("FACEMETRIC_ADMIN_TOKEN", raising=False)
    db = tmp_path / "real.db"
    args = ("--model", str(untrained_tiny_checkpoint), "--db", str(db))
    with running_server(tmp_path, *args) as srv:
        log = srv.log.read_text()
        match = re.search(r"admin token for this run .*: (\S+)", log)
        assert match, log
        token = match.group(1)
        assert httpx.get(srv.url + "/api/health").json()["status"] == "empty_gallery"
        files = [("files", photo())]
        r = httpx.post(
            srv.url + "/api/people",
            data={"name": "A"},
            files=files,
            headers={"Authorization": "Bearer nope"},
        )
        assert r.status_code == 403
        r = httpx.post(
            srv.url + "/api/people",
            data={"name": "A"},
            files=files,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        r = httpx.post(srv.url + "/api/identify", files={"file": photo()}, timeout=60)
        assert r.json()["faces"][0]["identity"] == "A"
    with sqlite3.connect(db) as con:  # the real file holds the enrolled face
        tables = [t for (t,) in con.execute("select name from sqlite_master where type='table'")]
        assert tables


def test_model_says_whether_its_threshold_was_calibrated(
    tmp_path: Path, untrained_tiny_checkpoint: Path
) -> None:
    """Issue 14 item 1: the live page called a stranger a match with a threshold never
    calibrated (0.5), and nothing said so."""
    import shutil

    from facemetric.models.checkpoint import update_checkpoint

    with TestClient(create_app(web_settings(tmp_path, untrained_tiny_checkpoint))) as c:
        model = c.get("/api/model").json()
    assert model["threshold_calibrated"] is False and model["threshold_source"] == "uncalibrated"
    assert model["calibration"] is None and model["threshold"] == pytest.approx(0.5)
    warning = model["warning"]
    assert "tiny.pt: match threshold 0.5000 was never calibrated" in warning
    assert "facemetric evaluate tiny.pt --identify PEOPLE --calibrate" in warning
    assert str(untrained_tiny_checkpoint.parent) not in warning  # never a server folder

    calibrated = tmp_path / "models" / "calibrated.pt"
    calibrated.parent.mkdir()
    shutil.copy(untrained_tiny_checkpoint, calibrated)
    calibration = {
        "method": "far",
        "target_far": 1e-3,
        "threshold": 0.61,
        "tar": 0.8,
        "far": 0.001,
        "impostor_pairs": 5000,
        "folder": str(tmp_path / "secret"),
    }
    update_checkpoint(calibrated, threshold=0.61, calibration=calibration)
    with TestClient(create_app(web_settings(tmp_path, calibrated))) as c:
        r = c.get("/api/model")
    model = r.json()
    assert model["threshold_calibrated"] is True and model["threshold_source"] == "calibrated"
    assert model["warning"] is None and model["threshold"] == pytest.approx(0.61)
    assert model["calibration"]["target_far"] == pytest.approx(1e-3)
    assert model["calibration"]["impostor_pairs"] == 5000
    assert "secret" not in r.text  # where it was calibrated is a server folder: left out

    with TestClient(create_app(web_settings(tmp_path, calibrated, threshold=0.8))) as c:
        model = c.get("/api/model").json()
    assert model["threshold_calibrated"] is False and model["threshold_source"] == "given"
    assert model["threshold"] == pytest.approx(0.8)
    assert "0.8000 set in the server's settings" in model["warning"]
    assert "calibrated threshold is 0.6100" in model["warning"]


def test_enrol_answers_what_it_did(client: TestClient) -> None:
    """What the gallery page shows after saving: faces added, photos already there, photos
    skipped and why (issue 14 item 4)."""
    blank = ("blank.jpg", encode(np.full((200, 260, 3), 128, np.uint8)), "image/jpeg")
    files = [("files", photo("a.png")), ("files", photo("again.png")), ("files", blank)]
    r = client.post("/api/people", data={"name": "Eileen"}, files=files, headers=AUTH)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["added"], body["duplicates"], body["face_count"]) == (1, 1, 1)
    assert body["skipped"] == {"blank.jpg": "no face found"}
