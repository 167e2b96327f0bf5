"""``facemetric watch``: recognise the people in a video file or camera stream, print events."""

from __future__ import annotations

import argparse
from typing import Any

from facemetric.cli.options import ENGINES


def run_watch(args: argparse.Namespace) -> int:
    from facemetric.cli.checks import need_model
    from facemetric.video.sources import source_kind

    need_model(args.model)
    source_kind(args.source)  # an unknown scheme: one line before anything loads
    sinks: list[Any] = []
    history = None
    if args.save_events:
        from facemetric.errors import ConfigError
        from facemetric.events.history import EventStore
        from facemetric.events.writer import HistorySink

        if args.db is None:
            raise ConfigError("--save-events: give the gallery with --db (events are kept there)")
        history = EventStore(args.db)
        sinks.append(HistorySink(history))
    try:
        return _watch(args, sinks)
    finally:
        if history is not None:
            history.close()


def _watch(args: argparse.Namespace, sinks: list[Any]) -> int:
    from facemetric.video.watch import WatchConfig, watch

    watch(
        WatchConfig(
            source=args.source,
            db=args.db,
            model=args.model,
            engine=args.engine,
            detector=args.detector,
            threshold=args.threshold,
            fps=args.fps,
            detect_size=args.detect_size,
            gap=args.gap,
            json=args.json,
            annotate=args.annotate,
            duration=args.duration,
            camera=args.camera,
            progress=not args.quiet,
            sinks=sinks,
        )
    )
    return 0


def register(sub: Any) -> None:
    """Add ``facemetric watch``."""
    p = sub.add_parser(
        "watch",
        help="recognise the people in a video file or camera stream and print events",
        description="Run the camera pipeline headless on VIDEO_OR_URL (a video file, "
        "rtsp://..., http(s)://... MJPEG, /dev/videoN): faces are recognised, tracked and "
        "printed as events (who, from when to when, best similarity) as each one closes. A file "
        "is read as fast as the CPU allows, with progress on stderr.",
    )
    p.add_argument("source", metavar="VIDEO_OR_URL")
    p.add_argument(
        "--db", help="gallery (default: $FACEMETRIC_DB, else $FACEMETRIC_HOME/gallery.db)"
    )
    p.add_argument("--model", help="checkpoint, run folder, pretrained name or 'best'")
    p.add_argument("--engine", choices=ENGINES, default="auto")
    p.add_argument("--detector", default="retinaface", help="face detector (default retinaface)")
    p.add_argument("--threshold", type=float, help="match threshold (default: calibrated)")
    p.add_argument("--fps", type=float, default=5.0, help="frames a second recognised (default 5)")
    p.add_argument(
        "--detect-size", type=int, default=640, help="longest side for detection (default 640)"
    )
    p.add_argument(
        "--gap",
        type=float,
        default=2.0,
        help="seconds without a face before its event closes (default 2)",
    )
    p.add_argument("--json", action="store_true", help="one JSON line per event")
    p.add_argument("--annotate", metavar="OUT.mp4", help="write the labelled video here")
    p.add_argument("--duration", type=float, help="live sources: stop after this many seconds")
    p.add_argument("--camera", default="video", help="camera name in the events (default video)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument(
        "--save-events",
        action="store_true",
        help="also keep the events in the gallery's history (--db; see facemetric events)",
    )
    p.set_defaults(func=run_watch)
