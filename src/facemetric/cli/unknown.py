"""``facemetric unknown list|name|merge|split|dismiss|prune``: the faces nobody matched, kept by
``identify --keep-unknown`` or ``serve --keep-unknown``, in suggested groups."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from facemetric.cli.options import DB_HELP
from facemetric.errors import ConfigError

UNKNOWN_FLAGS = ("--unknown-days", "--unknown-max-faces")


def add_keep_flags(p: argparse.ArgumentParser) -> None:
    """``--keep-unknown`` and its retention flags (identify)."""
    p.add_argument(
        "--keep-unknown",
        action="store_true",
        help="keep the faces that match nobody in the gallery (chip, source, time, embedding), "
        "grouped into suggested people: see facemetric unknown list",
    )
    p.add_argument(
        "--unknown-days",
        type=float,
        default=30.0,
        metavar="DAYS",
        help="with --keep-unknown: delete kept faces older than this (default 30)",
    )
    p.add_argument(
        "--unknown-max-faces",
        type=int,
        default=10_000,
        metavar="N",
        help="with --keep-unknown: keep at most N faces, the oldest go first (default 10000)",
    )
    p.add_argument(
        "--unknown-threshold",
        type=float,
        metavar="T",
        help="grouping threshold (average cosine similarity; default: the match threshold + 0.01)",
    )


def check_keep_flags(args: argparse.Namespace) -> None:
    """``ConfigError`` for flags that cannot go with ``--keep-unknown`` (before any work)."""
    if getattr(args, "known", None):
        raise ConfigError(
            "--keep-unknown keeps faces in a gallery database: use it with --db, not --known"
        )
    check_retention(args.unknown_days, args.unknown_max_faces)
    if args.unknown_threshold is not None and not -1.0 <= args.unknown_threshold <= 1.0:
        raise ConfigError(
            f"--unknown-threshold: a cosine similarity in [-1, 1], got {args.unknown_threshold}"
        )


def keep_unknown(args: argparse.Namespace, recognizer: Any) -> Any:
    """Attach a keeper to ``recognizer`` from the flags (photos: no repeat interval)."""
    from facemetric.unknown.keeper import attach_keeper

    check_keep_flags(args)
    return attach_keeper(
        recognizer,
        threshold=args.unknown_threshold,
        max_days=args.unknown_days,
        max_faces=args.unknown_max_faces,
        interval=0.0,
    )


def check_retention(
    days: float | None, max_faces: int | None, flags: tuple[str, str] = UNKNOWN_FLAGS
) -> None:
    if days is not None and days <= 0:
        raise ConfigError(f"{flags[0]}: must be more than 0, got {days:g}")
    if max_faces is not None and max_faces < 1:
        raise ConfigError(f"{flags[1]}: must be at least 1, got {max_faces}")


def _pool(args: argparse.Namespace) -> Any:
    from facemetric.gallery.store import GalleryStore
    from facemetric.paths import default_gallery_path, gallery_location
    from facemetric.unknown.store import UnknownStore

    db = gallery_location(args.db) if args.db else default_gallery_path()
    return UnknownStore(GalleryStore(db, create=False))


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def cmd_list(args: argparse.Namespace) -> int:
    pool = _pool(args)
    statuses = ("open", "dismissed") if args.all else ("open",)
    groups = pool.groups(statuses, min_faces=args.min_faces, faces_per_group=args.faces)
    if args.json:
        print(json.dumps([g.to_dict() for g in groups], indent=2))
        return 0
    if not groups:
        print(f"no unknown faces kept in {pool.store.path}" + ("" if args.all else " (open)"))
        return 0
    print(f"{len(groups)} group(s), {pool.count()} unknown face(s) in {pool.store.path}")
    for g in groups:
        sources = sorted({f.source or f.camera or "-" for f in g.faces})
        shown = ", ".join(sources[:3]) + (" ..." if len(sources) > 3 else "")
        status = "" if g.status == "open" else f" [{g.status}]"
        print(
            f"  group {g.id}{status}: {g.size} face(s), last seen {_when(g.updated)}; "
            f"faces {', '.join(str(f.id) for f in g.faces)}; from {shown}"
        )
    return 0


def cmd_name(args: argparse.Namespace) -> int:
    pool = _pool(args)
    named = pool.name(args.group, args.name)
    note = f", {named.duplicates} already there" if named.duplicates else ""
    print(
        f"group {named.group_id} enrolled as {named.name}: {len(named.added)} face(s) added"
        f"{note}; {named.removed} unknown face(s) removed"
    )
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    group = _pool(args).merge(args.into, args.others)
    print(
        f"group {group.id}: {group.size} face(s) after merging {', '.join(map(str, args.others))}"
    )
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    group = _pool(args).split(args.group, args.face)
    print(f"face {args.face} split off group {args.group} into new group {group.id}")
    return 0


def cmd_dismiss(args: argparse.Namespace) -> int:
    pool = _pool(args)
    for gid in args.groups:
        group = pool.dismiss(gid)
        print(f"group {group.id} dismissed ({group.size} face(s), kept until retention)")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    check_retention(args.days, args.max_faces, ("--days", "--max-faces"))
    if args.days is None and args.max_faces is None:
        raise ConfigError("prune: give --days and/or --max-faces")
    gone = _pool(args).prune(args.days, args.max_faces)
    print(f"deleted {gone} unknown face(s)")
    return 0


def register(sub: Any) -> None:
    """Add ``facemetric unknown``."""
    p = sub.add_parser(
        "unknown",
        help="faces nobody matched, grouped into suggested people: list, name, merge, ...",
        description="The faces that matched nobody, kept by identify --keep-unknown or serve "
        "--keep-unknown and grouped as they arrive. Name a group to enrol its faces as a "
        "person, merge two groups, split a face off, dismiss a group.",
    )
    usub = p.add_subparsers(dest="unknown_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        q = usub.add_parser(name, help=help_text, description=help_text)
        q.add_argument("--db", metavar="PATH", help=DB_HELP)
        return q

    q = action("list", "the groups, largest first, with their newest faces' ids")
    q.add_argument("--min-faces", type=int, default=1, help="smallest group shown (default 1)")
    q.add_argument("--faces", type=int, default=8, help="face ids shown per group (default 8)")
    q.add_argument("--all", action="store_true", help="dismissed groups too")
    q.add_argument("--json", action="store_true", help="JSON on standard output")
    q.set_defaults(func=cmd_list)

    q = action("name", "enrol every face of a group as a person (new or existing)")
    q.add_argument("group", type=int, metavar="GROUP")
    q.add_argument("name", metavar="NAME")
    q.set_defaults(func=cmd_name)

    q = action("merge", "move the faces of other groups into GROUP")
    q.add_argument("into", type=int, metavar="GROUP")
    q.add_argument("others", type=int, nargs="+", metavar="OTHER")
    q.set_defaults(func=cmd_merge)

    q = action("split", "take one face out of its group into a group of its own")
    q.add_argument("group", type=int, metavar="GROUP")
    q.add_argument("face", type=int, metavar="FACE")
    q.set_defaults(func=cmd_split)

    q = action("dismiss", "hide groups (their faces go with retention)")
    q.add_argument("groups", type=int, nargs="+", metavar="GROUP")
    q.set_defaults(func=cmd_dismiss)

    q = action("prune", "delete kept faces now: older than --days, the oldest beyond --max-faces")
    q.add_argument("--days", type=float, help="delete faces older than this many days")
    q.add_argument("--max-faces", type=int, help="keep at most this many faces")
    q.set_defaults(func=cmd_prune)
