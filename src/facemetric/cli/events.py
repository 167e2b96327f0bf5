"""``facemetric events``: who was seen where and when, from the gallery database's history."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from facemetric.csvcells import DECISION_COLUMNS, SafeDictWriter, decision_columns
from facemetric.errors import ConfigError

CSV_FIELDS = (
    "id", "camera", "source", "person", "known", "nearest", "similarity", "first_seen", "last_seen",
    "duration_s", "frames", "track_id", "closed",
    *DECISION_COLUMNS,
)  # fmt: skip


def list_events(args: argparse.Namespace) -> int:
    from facemetric.events.history import EventStore
    from facemetric.events.times import parse_time
    from facemetric.gallery.store import GalleryStore
    from facemetric.paths import default_gallery_path, gallery_location

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit: must be at least 1, got {args.limit}")
    filters: dict[str, Any] = {
        "person": args.person,
        "camera": args.camera,
        "since": parse_time(args.since, "--since"),
        "until": parse_time(args.until, "--until"),
        "known": {"yes": True, "no": False}.get(args.known or ""),
    }
    location = gallery_location(args.db) if args.db else default_gallery_path()
    with GalleryStore(location, create=False) as store:
        history = EventStore(store)
        if args.prune:
            if args.keep_days is None and args.max_mb is None:
                raise ConfigError("--prune: give --keep-days and/or --max-mb")
            max_bytes = None if args.max_mb is None else int(args.max_mb * 1024 * 1024)
            done = history.prune(keep_days=args.keep_days, max_bytes=max_bytes)
            left, size = history.totals()
            print(
                f"pruned {done.events} events ({done.bytes / 1e6:.1f} MB); {left} left "
                f"({size / 1e6:.1f} MB) in {store.path}"
            )
            return 0
        shown = 0
        writer = None
        if args.csv:
            writer = SafeDictWriter(sys.stdout, CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
        for stored in history.iterate(**filters):
            row = stored.to_dict()
            if args.json:
                print(json.dumps(row, ensure_ascii=False))
            elif writer is not None:
                writer.writerow(decision_columns(row))
            else:
                who = row["person"] or f"unknown (nearest {row['nearest'] or '-'})"
                sim = "-" if row["similarity"] is None else f"{row['similarity']:.4f}"
                print(
                    f"{row['first_seen']}  {row['duration_s']:7.1f} s  {row['camera']:<12} "
                    f"{who:<30} {sim}  {row['frames']:>5} frames  #{row['id']}"
                )
            shown += 1
            if args.limit is not None and shown >= args.limit:
                break
        if not (args.json or args.csv):
            print(f"{shown} event{'s' if shown != 1 else ''}", file=sys.stdout)
    return 0


def register(sub: Any) -> None:
    """Add ``facemetric events``."""
    p = sub.add_parser(
        "events",
        help="list who was seen where and when (the event history), or prune it",
        description="List stored events, newest first: camera, person (or unknown and the "
        "nearest person), first seen, duration, best similarity. Times: ISO 8601 (UTC unless a "
        "zone is given), Unix seconds, or a time ago (30m, 2h, 7d). --prune deletes old events "
        "and their images (see docs/events.md).",
    )
    p.add_argument("--db", help="gallery: a SQLite file or postgresql:// URL")
    p.add_argument("--person", help="only this person's events")
    p.add_argument("--camera", help="only this camera's events")
    p.add_argument("--known", choices=["yes", "no"], help="only known (yes) or unknown faces (no)")
    p.add_argument("--since", help="only events seen at or after this time")
    p.add_argument("--until", help="only events seen at or before this time")
    p.add_argument("--limit", type=int, help="at most this many events")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object a line")
    out.add_argument("--csv", action="store_true", help="CSV with a header line")
    p.add_argument("--prune", action="store_true", help="delete events by --keep-days/--max-mb")
    p.add_argument("--keep-days", type=float, help="with --prune: keep events of the last N days")
    p.add_argument("--max-mb", type=float, help="with --prune: keep at most N MB of events")
    p.set_defaults(func=list_events)
