"""What a camera is: a name and a source, from ``--camera NAME=SOURCE`` or a TOML file.

A source is an RTSP URL (``rtsp://``, ``rtsps://``), an HTTP(S) MJPEG (or any FFmpeg-readable)
stream, a video file, or a local device (``/dev/videoN``, read with FFmpeg's v4l2 input). The
source as given may hold credentials: it is kept for opening only, and everything shown
(``Camera.public_source``, logs, the API) goes through ``facemetric.redact``.

``cameras.toml``::

    [[camera]]
    name = "door"
    source = "rtsp://user:password@192.168.1.20:554/stream1"
    fps = 5          # optional: frames a second handed to the recogniser (default 5)
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from facemetric.errors import ConfigError
from facemetric.redact import redact

Kind = Literal["rtsp", "http", "file", "device"]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_FPS = 5.0


@dataclass(frozen=True)
class Camera:
    """One camera: ``name`` (used in events and URLs), ``source`` (as given, may hold a
    password: never print it), ``fps`` (the frame budget: frames a second recognised at most)."""

    name: str
    source: str
    fps: float = DEFAULT_FPS

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ConfigError(
                f"camera name {self.name!r}: use letters, digits, '_', '-' or '.' (at most 64)"
            )
        if not self.source.strip():
            raise ConfigError(f"camera {self.name}: empty source")
        if not 0 < self.fps <= 120:
            raise ConfigError(f"camera {self.name}: fps must be in (0, 120], got {self.fps}")

    @property
    def kind(self) -> Kind:
        return source_kind(self.source)

    @property
    def public_source(self) -> str:
        """The source as it may be shown: without credentials (a file: its name, no server
        folders, as in every answer of the web app)."""
        if self.kind == "file":
            return Path(self.source.removeprefix("file://")).name
        return redact(self.source)

    @property
    def live(self) -> bool:
        """A live source (newest frame wins) rather than a file (every frame there is)."""
        return self.kind != "file"

    def __repr__(self) -> str:  # a repr in a log must not show the password either
        return f"Camera(name={self.name!r}, source={self.public_source!r}, fps={self.fps})"


def source_kind(source: str) -> Kind:
    """Which kind of source ``source`` is, from its scheme (no scheme: a file or a device)."""
    lower = source.lower()
    if lower.startswith(("rtsp://", "rtsps://", "rtmp://")):
        return "rtsp"
    if lower.startswith(("http://", "https://")):
        return "http"
    if "://" in source and not lower.startswith("file://"):
        scheme = source.split("://", 1)[0]
        raise ConfigError(
            f"{redact(source)}: unknown source scheme {scheme!r}; use rtsp://, http(s)://, "
            "a video file or /dev/videoN"
        )
    if re.match(r"^/dev/video\d+$", source):
        return "device"
    return "file"


def parse_camera(text: str, fps: float = DEFAULT_FPS) -> Camera:
    """``NAME=SOURCE`` (the ``--camera`` flag) -> ``Camera``."""
    name, sep, source = text.partition("=")
    if not sep or not name.strip() or not source.strip():
        raise ConfigError(
            f"--camera {redact(text)}: expected NAME=SOURCE (e.g. door=rtsp://host/stream)"
        )
    camera = Camera(name.strip(), source.strip(), fps)
    camera.kind  # noqa: B018  (an unknown scheme is an error now, not when it is opened)
    return camera


def load_cameras(path: str | Path) -> list[Camera]:
    """The cameras of a TOML file (``[[camera]]`` tables with name, source, optional fps)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: cameras file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    tables = data.get("camera")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{path}: no [[camera]] tables (each with name and source)")
    cameras = []
    for i, table in enumerate(tables, 1):
        cameras.append(_camera_from_table(path, i, table))
    check_unique(cameras, str(path))
    return cameras


def _camera_from_table(path: Path, i: int, table: Any) -> Camera:
    where = f"{path}: camera {i}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table with name and source")
    unknown = set(table) - {"name", "source", "fps"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    for key in ("name", "source"):
        if not isinstance(table.get(key), str):
            raise ConfigError(f"{where}: field {key!r} must be a string")
    fps = table.get("fps", DEFAULT_FPS)
    if not isinstance(fps, int | float) or isinstance(fps, bool):
        raise ConfigError(f"{where}: field 'fps' must be a number")
    try:
        camera = Camera(table["name"], table["source"], float(fps))
        camera.kind  # noqa: B018
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return camera


def check_unique(cameras: list[Camera], where: str = "cameras") -> None:
    seen: set[str] = set()
    for camera in cameras:
        if camera.name in seen:
            raise ConfigError(f"{where}: camera name {camera.name!r} given twice")
        seen.add(camera.name)


def startable_cameras(texts: list[str], file: str | None, fps: float) -> list[Camera]:
    """The cameras of ``--camera`` flags and a cameras file, checked by one rule before a server
    starts: whatever can be known wrong now (the flag's form, the scheme, a name given twice, a
    missing cameras file, a video file that does not exist) is a ``ConfigError`` naming it; what
    can only fail later (a network camera that does not answer, a device unplugged) is left to
    the camera's state."""
    cameras = [parse_camera(text, fps) for text in texts]
    if file:
        cameras += load_cameras(file)
    check_unique(cameras)
    for camera in cameras:
        if camera.kind == "file":
            path = Path(camera.source.removeprefix("file://")).expanduser()
            if not path.is_file():
                raise ConfigError(f"camera {camera.name}: {path}: video file not found")
    return cameras
