"""Issue 28, point 5: camera credentials in any form stay out of ``/api/cameras`` and serve's
start-up line: query values (``?loginuse=admin&loginpas=...``), a user part that is a token
(``http://TOKEN@host/``) and vendors' logins in the path (``/user=admin_password=..._``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facemetric.redact import redact, redact_text
from facemetric.web.app import create_app
from webutil import web_settings

SECRET = "tlJwpbo6"
SOURCES = {
    "cgi": f"http://127.0.0.1:9/videostream.cgi?loginuse=admin&loginpas={SECRET}",
    "xm": f"rtsp://127.0.0.1:9/user=admin_password={SECRET}_channel=1_stream=0.sdp?real_stream",
    "token": f"http://{SECRET}@127.0.0.1:9/mjpeg",
    "pw": f"rtsp://ada:{SECRET}@127.0.0.1:9/s",
    "odd": f"http://127.0.0.1:9/v?p={SECRET}&x=1",
}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (SOURCES["cgi"], "http://127.0.0.1:9/videostream.cgi?loginuse=***&loginpas=***"),
        (SOURCES["xm"], "rtsp://127.0.0.1:9/user=***_password=***_channel=1_stream=0.sdp"),
        (SOURCES["token"], "http://***@127.0.0.1:9/mjpeg"),
        (SOURCES["pw"], "rtsp://ada:***@127.0.0.1:9/s"),
        (SOURCES["odd"], "http://127.0.0.1:9/v?p=***&x=***"),
        ("rtsp://cam.lan:554/Streaming/Channels/101", "rtsp://cam.lan:554/Streaming/Channels/101"),
    ],
)
def test_every_secret_form_is_masked(url: str, shown: str) -> None:
    assert redact(url).startswith(shown)
    assert SECRET not in redact(url) and SECRET not in redact_text(f"cannot open {url}: 401")


def test_cameras_api_and_start_up_line_show_no_secret(
    tmp_path: Path, untrained_tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cameras = [f"{name}={url}" for name, url in SOURCES.items()]
    settings = web_settings(tmp_path, untrained_tiny_checkpoint, cameras=cameras)
    with TestClient(create_app(settings)) as client:
        answer = client.get("/api/cameras")
        assert answer.status_code == 200
        assert len(answer.json()["cameras"]) == len(SOURCES)
        assert SECRET not in answer.text
    err = capsys.readouterr().err
    assert "cameras:" in err and SECRET not in err
