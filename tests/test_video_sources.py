"""Cameras from flags and TOML files, source kinds, and credentials kept out of everything shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from facemetric.errors import ConfigError
from facemetric.gallery.backend import redact as gallery_redact
from facemetric.redact import redact, redact_text
from facemetric.video.sources import Camera, load_cameras, parse_camera, source_kind


def test_parse_camera_flag_and_kinds() -> None:
    cam = parse_camera("door=rtsp://ada:s3cret@10.0.0.5:554/stream1", fps=3)
    assert (cam.name, cam.kind, cam.fps, cam.live) == ("door", "rtsp", 3, True)
    assert cam.public_source == "rtsp://ada:***@10.0.0.5:554/stream1"
    assert "s3cret" not in repr(cam) and "s3cret" not in str(cam)
    assert parse_camera("hall=http://cam/video.mjpg").kind == "http"
    assert parse_camera("usb=/dev/video0").kind == "device"
    clip = parse_camera("clip=/srv/videos/clip.mp4")
    assert (clip.kind, clip.live, clip.public_source) == ("file", False, "clip.mp4")
    assert source_kind("file:///x/y.mkv") == "file"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("door", "expected NAME=SOURCE"),
        ("=rtsp://x/y", "expected NAME=SOURCE"),
        ("bad name=rtsp://x/y", "camera name 'bad name'"),
        ("door=ftp://ada:pw@x/y", "unknown source scheme 'ftp'"),
    ],
)
def test_bad_camera_flags_are_one_clear_error(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        parse_camera(text)
    assert "pw@" not in str(info.value)


def test_cameras_toml(tmp_path: Path) -> None:
    path = tmp_path / "cameras.toml"
    path.write_text(
        '[[camera]]\nname = "door"\nsource = "rtsp://u:p@h/s"\nfps = 2\n'
        '[[camera]]\nname = "hall"\nsource = "hall.mp4"\n'
    )
    door, hall = load_cameras(path)
    assert door == Camera("door", "rtsp://u:p@h/s", 2.0) and hall.fps == 5.0
    for body, says in [
        ('[[camera]]\nname = "a"\n', "field 'source' must be a string"),
        ('[[camera]]\nname = "a"\nsource = "x.mp4"\nzoom = 1\n', "unknown field"),
        ('[[camera]]\nname = "a"\nsource = "x.mp4"\n' * 2, "given twice"),
        ('[[camera]]\nname = "a"\nsource = "x.mp4"\nfps = 0\n', "fps must be in"),
        ("name = 1\n", "no \\[\\[camera\\]\\] tables"),
        ("[[camera]\n", "not valid TOML"),
    ]:
        path.write_text(body)
        with pytest.raises(ConfigError, match=says) as info:
            load_cameras(path)
        assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="cameras file not found"):
        load_cameras(tmp_path / "missing.toml")


def test_one_redaction_helper_for_databases_and_cameras() -> None:
    assert gallery_redact is redact  # the gallery's old name is the same helper
    assert redact("postgresql://ada:pw@h:5/db") == "postgresql://ada:***@h:5/db"
    assert redact("rtsp://admin:12345@[fe80::1]:554/s") == "rtsp://admin:***@[fe80::1]:554/s"
    assert redact("http://cam/snap.cgi?user=a&pwd=12345&chn=1") == (
        "http://cam/snap.cgi?user=***&pwd=***&chn=***"  # every value (issue 28)
    )
    assert redact("http://cam/video.mjpg") == "http://cam/video.mjpg"
    assert redact("/videos/clip.mp4") == "/videos/clip.mp4"
    text = "Connection refused: 'rtsp://admin:12345@cam/s' (after rtsp://x:y@z/)"
    assert "12345" not in redact_text(text) and ":y@" not in redact_text(text)
    # a source spelled so urlsplit reads no password still goes, when it is named
    odd = "rtsp://admin:p@ss word@cam/s"
    assert "p@ss word" not in redact_text(f"failed: {odd}", odd)
