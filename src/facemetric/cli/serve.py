"""``facemetric serve``: the live webcam web app and REST API (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from facemetric import catalog
from facemetric.cli.options import DB_HELP, ENGINES, MODEL_HELP
from facemetric.errors import ConfigError


def settings_from_args(args: argparse.Namespace) -> Any:
    """Flags override ``FACEMETRIC_*`` environment variables, which override defaults."""
    from pydantic import ValidationError

    from facemetric.web.settings import WebSettings

    given = {
        key: value
        for key in (
            "model",
            "db",
            "host",
            "port",
            "admin_token",
            "engine",
            "detector",
            "stream_detect_size",
            "threshold",
            "unknown_days",
            "unknown_max_faces",
            "unknown_threshold",
            "viewer_token",
            "events_keep_days",
            "events_max_mb",
            "mqtt",
        )
        if (value := getattr(args, key, None)) is not None
    }
    for key in ("admin_token", "viewer_token"):
        path = getattr(args, f"{key}_file", None)
        if path is not None:
            given[key] = read_token_file(path, f"--{key.replace('_', '-')}-file")
    if getattr(args, "webhook", None):
        given["webhook"] = list(args.webhook)
    if getattr(args, "camera", None):
        given["cameras"] = list(args.camera)
    if getattr(args, "cameras", None):
        given["cameras_file"] = args.cameras
    if getattr(args, "keep_unknown", False):
        given["keep_unknown"] = True
    if getattr(args, "allowed_hosts", None):
        given["allowed_hosts"] = [h.strip() for h in args.allowed_hosts.split(",") if h.strip()]
    try:
        return WebSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"serve settings: {problems}") from None


def read_token_file(path: str, flag: str) -> str:
    """The token in ``path`` (its first line, trimmed): unlike a flag's value, a file's content
    is not shown by ``ps`` to every user of the machine."""
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(f"{flag} {path}: cannot read it ({why})") from None
    lines = text.strip().splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigError(f"{flag} {path}: the file is empty")
    return token


def need_gallery(settings: Any) -> None:
    """Refuse a gallery that does not exist, as ``identify`` and ``gallery list`` do: a mistyped
    ``--db`` would otherwise serve an empty gallery that recognises nobody."""
    from facemetric.gallery.store import GalleryStore
    from facemetric.paths import default_gallery_path, gallery_location

    location = gallery_location(settings.db) if settings.db else default_gallery_path()
    if isinstance(location, Path):
        if not location.exists():
            raise ConfigError(
                f"{location}: no gallery there; build one with: facemetric gallery build PHOTOS "
                f"--db {location} (or serve an empty one: add --create)"
            )
        return  # opened (and checked) when the server starts
    GalleryStore(location, create=False).close()  # PostgreSQL: its tables must be there


def run_serve(args: argparse.Namespace) -> int:
    from facemetric.video.sources import startable_cameras

    settings = settings_from_args(args)
    # What can be known wrong is said before the web stack and the model load: cameras first
    # (one rule for all), then the gallery.
    startable_cameras(settings.cameras, settings.cameras_file, settings.camera_fps)
    # a typo is answered before the gallery or a model
    catalog.check_name(settings.detector, catalog.DETECTORS, "--detector")
    if not args.create:
        need_gallery(settings)
    from facemetric.web.app import serve

    serve(settings)
    return 0


def register(sub: Any) -> None:
    """Add ``facemetric serve``."""
    p = sub.add_parser(
        "serve",
        help="serve the live webcam page, gallery page and REST API",
        description="Serve the live webcam recognition page (/), the gallery page (/gallery), "
        "the REST API (/docs) and the WebSocket stream (/ws/stream). Every flag can also be set "
        "with a FACEMETRIC_* environment variable (see docs/web.md).",
    )
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--db", help=DB_HELP)
    p.add_argument(
        "--create",
        action="store_true",
        help="serve an empty gallery when --db does not exist yet (without it, a missing gallery "
        "is refused, as by identify and gallery list)",
    )
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default 8000)")
    admin = p.add_mutually_exclusive_group()
    admin.add_argument(
        "--admin-token",
        help="bearer token for gallery changes (default: $FACEMETRIC_ADMIN_TOKEN, else "
        "generated). A flag's value shows in ps to every user: set $FACEMETRIC_ADMIN_TOKEN "
        "or use --admin-token-file instead",
    )
    admin.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="read the admin token from FILE (its first line): the safe way, with "
        "$FACEMETRIC_ADMIN_TOKEN",
    )
    p.add_argument("--engine", choices=ENGINES, help="inference engine (default auto)")
    p.add_argument("--detector", help="face detector by registered name (default retinaface)")
    p.add_argument(
        "--stream-detect-size",
        type=int,
        help="live stream: longest side frames are scaled to for detection (default 320)",
    )
    p.add_argument("--threshold", type=float, help="match threshold (default: calibrated)")
    p.add_argument(
        "--allowed-hosts",
        metavar="NAMES",
        help="comma-separated host names answered besides the bound host and localhost "
        "(e.g. myhost.lan,192.168.1.5; '*' = any, open to DNS rebinding)",
    )
    events = p.add_argument_group("events: history, notifications and access (docs/events.md)")
    viewer = events.add_mutually_exclusive_group()
    viewer.add_argument(
        "--viewer-token",
        help="token to read people, faces, events and camera pictures when listening beyond "
        "127.0.0.1 (default: $FACEMETRIC_VIEWER_TOKEN, else generated and printed). Shows in "
        "ps: prefer $FACEMETRIC_VIEWER_TOKEN or --viewer-token-file",
    )
    viewer.add_argument(
        "--viewer-token-file",
        metavar="FILE",
        help="read the viewer token from FILE (its first line): the safe way, with "
        "$FACEMETRIC_VIEWER_TOKEN",
    )
    events.add_argument(
        "--events-keep-days",
        type=float,
        metavar="DAYS",
        help="delete events older than DAYS with their images (default 30; 0 = keep)",
    )
    events.add_argument(
        "--events-max-mb",
        type=float,
        metavar="MB",
        help="delete the oldest events beyond MB in all (default 1024; 0 = no limit)",
    )
    events.add_argument(
        "--mqtt",
        metavar="URL",
        help="publish events to mqtt://[USER:PASSWORD@]HOST[:PORT] (Home Assistant discovery "
        "included)",
    )
    events.add_argument(
        "--webhook",
        metavar="URL",
        action="append",
        help="POST each event as JSON to URL (repeatable)",
    )
    p.add_argument(
        "--camera",
        action="append",
        metavar="NAME=SOURCE",
        help="a server-side camera (repeatable): rtsp://..., http(s)://... MJPEG, a video file "
        "or /dev/videoN; its live labelled picture is on /cameras, its events in the history",
    )
    p.add_argument(
        "--cameras",
        metavar="FILE.toml",
        help="more cameras from a TOML file ([[camera]] tables: name, source, optional fps)",
    )
    p.add_argument(
        "--keep-unknown",
        action="store_true",
        help="keep faces that match nobody, grouped for the Unknown faces page (/unknown)",
    )
    p.add_argument(
        "--unknown-days", type=float, help="delete unknown faces older than this (default 30)"
    )
    p.add_argument("--unknown-max-faces", type=int, help="most unknown faces kept (default 10000)")
    p.add_argument("--unknown-threshold", type=float, help="unknown grouping threshold")
    p.set_defaults(func=run_serve)
