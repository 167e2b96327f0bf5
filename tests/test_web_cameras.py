"""Cameras in the web app without a camera server: flags and settings, a bad camera refused
before the server starts, the API and page when the cameras cannot run (no model), and a video
file played as a camera by the tiny untrained model (plumbing, not accuracy)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facemetric.cli import main
from facemetric.web.app import create_app
from webutil import web_settings


def test_camera_flags_become_settings() -> None:
    from facemetric.cli import build_parser
    from facemetric.cli.serve import settings_from_args

    args = build_parser().parse_args(
        ["serve", "--camera", "door=rtsp://u:p@h/s", "--camera", "hall=x.mp4",
         "--cameras", "cams.toml"]
    )  # fmt: skip
    settings = settings_from_args(args)
    assert settings.cameras == ["door=rtsp://u:p@h/s", "hall=x.mp4"]
    assert settings.cameras_file == "cams.toml"


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--camera", "door"], "expected NAME=SOURCE"),
        (["--camera", "a=x.mp4", "--camera", "a=y.mp4"], "camera name 'a' given twice"),
        (["--cameras", "missing.toml"], "missing.toml: cameras file not found"),
        (["--camera", "door=gopher://u:pw@h/"], "unknown source scheme"),
        # one rule (issue 29): a video file that is not there stops serve too, as a bad flag
        (
            ["--camera", "hall=no-such-clip.mp4"],
            "camera hall: no-such-clip.mp4: video file not found",
        ),
    ],
)
def test_a_bad_camera_stops_serve_before_it_starts(
    flags: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--port", "0", *flags])
    err = capsys.readouterr().err
    assert code == 2 and says in err and ":pw@" not in err
    assert len(err.strip().splitlines()) == 1


def test_cameras_without_a_model_say_why(tmp_path: Path) -> None:
    settings = web_settings(
        tmp_path, None, cameras=["door=rtsp://ada:s3cret@127.0.0.1:9/s", f"clip={tmp_path}/c.mp4"]
    )
    with TestClient(create_app(settings)) as client:
        answer = client.get("/api/cameras")
        assert answer.status_code == 200
        door, clip = answer.json()["cameras"]
        assert door["source"] == "rtsp://ada:***@127.0.0.1:9/s" and door["state"] == "failed"
        assert door["error"].startswith("no model loaded")
        assert clip["source"] == "c.mp4" and str(tmp_path) not in answer.text
        assert "s3cret" not in answer.text
        assert client.get("/api/cameras/door/frame.jpg").status_code == 503
        assert client.get("/api/cameras/nope/frame.jpg").status_code == 404
        page = client.get("/cameras")
        assert page.status_code == 200 and "/static/cameras.js" in page.text
        assert client.get("/static/cameras.js").status_code == 200


def test_no_cameras_is_an_empty_list(tmp_path: Path) -> None:
    with TestClient(create_app(web_settings(tmp_path, None))) as client:
        assert client.get("/api/cameras").json() == {"cameras": []}


def test_a_video_file_as_a_camera(tmp_path: Path, untrained_tiny_checkpoint: Path) -> None:
    from videoclip import Segment, make_clip
    from webutil import astronaut

    frame = tmp_path / "astronaut.png"
    from PIL import Image

    Image.fromarray(astronaut()).save(frame)
    clip = make_clip(tmp_path / "astro.mp4", [Segment(None, 0.0, 2.0, frame)], fps=10)
    settings = web_settings(tmp_path, untrained_tiny_checkpoint, cameras=[f"astro={clip}"])
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            (cam,) = client.get("/api/cameras").json()["cameras"]
            if cam.get("frames_recognised"):
                break
            time.sleep(0.2)
        assert cam["state"] == "live" and cam["kind"] == "file" and cam["source"] == "astro.mp4"
        assert cam["frames_recognised"] > 0 and cam["width"] == 640
        picture = client.get("/api/cameras/astro/frame.jpg")
        assert picture.status_code == 200 and picture.content[:2] == b"\xff\xd8"
        assert picture.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("motion", [True, False])
def test_a_still_camera_is_gated_as_set(
    tmp_path: Path, untrained_tiny_checkpoint: Path, motion: bool
) -> None:
    from videoclip import Segment, make_clip

    clip = make_clip(tmp_path / "still.mp4", [Segment(None, 0.0, 2.0)], fps=10)
    settings = web_settings(
        tmp_path,
        untrained_tiny_checkpoint,
        cameras=[f"still={clip}"],
        camera_fps=10.0,
        camera_motion=motion,
        camera_motion_refresh=0.5,
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            (cam,) = client.get("/api/cameras").json()["cameras"]
            if cam.get("frames_decoded", 0) >= 30:
                break
            time.sleep(0.2)
    assert cam["frames_decoded"] >= 30
    if motion:  # one frame, then one each refresh: most are held back, never converted
        assert cam["frames_still"] >= 15
        assert cam["frames_delivered"] <= cam["frames_decoded"] // 2
    else:
        assert cam["frames_still"] == 0 and cam["frames_delivered"] >= 25
