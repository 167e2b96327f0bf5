"""CLI for the gallery group: ``gallery build|add|remove|list|export|reembed`` here, and from
their own modules ``gallery info|copy`` (``gallery_store``), ``gallery check`` and ``gallery
correct|corrections|undo`` (``gallery_corrections``). Handlers only parse arguments and call
plain functions; the flags they share are ``facemetric.cli.options``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from facemetric.cli import gallery_check, gallery_corrections, gallery_store
from facemetric.cli.options import (
    DB_HELP,
    add_model_options,
    check_inputs,
    gallery_options,
    open_recognizer,
    open_store,
    warn_uncalibrated,
)


def _print_report(report: Any, store_path: Path) -> None:
    faces = sum(report.added.values())
    print(f"added {faces} faces of {len(report.added)} people to {store_path}")
    if report.duplicates:
        print(f"  {report.duplicates} photos were already in the gallery (not added again)")
    for path, why in sorted(report.skipped.items()):
        print(f"  skipped {path}: {why}")
    if any(why.startswith("low quality") for why in report.skipped.values()):
        print("  (photos refused for quality: enrol them anyway with --allow-low-quality)")
    for path, why in sorted(report.flagged.items()):
        print(f"  flagged {path}: {why} (saved: --allow-low-quality)")


def _quality(args: argparse.Namespace) -> Any:
    """The enrolment quality policy of ``--allow-low-quality``, ``--no-quality-check`` and
    ``--quality-floor``."""
    from facemetric.enrol.screen import QualityPolicy, parse_floors

    mode = "off" if args.no_quality_check else "flag" if args.allow_low_quality else "refuse"
    return QualityPolicy(parse_floors(args.quality_floor), mode)


def _set_chip_format(store: Any, args: argparse.Namespace) -> None:
    """``--chip-format``: the gallery stores new chips in that format from now on."""
    if getattr(args, "chip_format", None):
        store.set_chip_format(args.chip_format)


def _aligned(args: argparse.Namespace) -> bool | None:
    return True if args.aligned else None


def cmd_build(args: argparse.Namespace) -> int:
    from facemetric.cli.checks import need_folders, need_people_with_photos

    need_folders([args.dir], "photo folder")
    check_inputs(args)
    need_people_with_photos(args.dir)  # an empty folder is said before the model loads
    from facemetric.enrol.build import build_gallery

    quality = _quality(args)
    rec = open_recognizer(gallery_options(args), create=True)
    warn_uncalibrated(rec)
    _set_chip_format(rec.store, args)
    report = build_gallery(rec, args.dir, aligned=_aligned(args), quality=quality)
    _print_report(report, rec.store.path)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    check_inputs(args, *args.images)
    from facemetric.enrol.build import add_photos

    quality = _quality(args)
    rec = open_recognizer(gallery_options(args), create=True)
    warn_uncalibrated(rec)
    _set_chip_format(rec.store, args)
    report = add_photos(rec, args.name, args.images, aligned=_aligned(args), quality=quality)
    _print_report(report, rec.store.path)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    store = open_store(gallery_options(args))
    removed = store.remove_person(args.name, keep_events=args.keep_events)
    kept = " (their past events kept)" if args.keep_events else " and their past events"
    print(f"removed {args.name!r} with {removed} faces{kept} from {store.path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = open_store(gallery_options(args))
    people = store.list_people()
    if args.json:
        print(json.dumps([p.__dict__ for p in people], indent=2))
        return 0
    for p in people:
        print(f"{p.name}\t{p.face_count} faces\tadded {p.created}")
    print(f"{len(people)} people, {sum(p.face_count for p in people)} faces in {store.path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from facemetric.models import load_embedder

    opts = gallery_options(args)
    store = open_store(opts)
    path = store.export(args.out, load_embedder(opts.model, engine=opts.engine))  # type: ignore[arg-type]
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def cmd_reembed(args: argparse.Namespace) -> int:
    from facemetric.models import load_embedder

    opts = gallery_options(args)
    store = open_store(opts)
    count = store.reembed(load_embedder(opts.model, engine=opts.engine))  # type: ignore[arg-type]
    print(f"re-embedded {count} faces of {store.path}")
    return 0


# ---- parser -----------------------------------------------------------------------------------
ALIGNED_HELP = (
    "the photos are aligned face crops already (facemetric data align): no detection; "
    "by default a small square photo with no detected face is taken as a crop"
)


def _quality_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-low-quality",
        action="store_true",
        help="save photos below the quality floors too, flagged with the reason (default: "
        "refuse them and say why)",
    )
    p.add_argument("--no-quality-check", action="store_true", help="no quality checks at all")
    p.add_argument(
        "--quality-floor",
        action="append",
        metavar="NAME=VALUE",
        help="change a floor: min_eye_px, min_sharpness, max_yaw, min_score, min_consistency "
        "(0 turns it off; see docs/quality.md); repeatable",
    )
    p.add_argument(
        "--chip-format",
        choices=gallery_store.CHIP_FORMATS,
        help="store this gallery's new face chips in FORMAT from now on (kept in the gallery, "
        "so later enrolments and servers follow it): jpeg (quality 95, the default), webp, or "
        "png (lossless, about 5x the bytes); chips already stored keep theirs",
    )


def _enrol_options(p: argparse.ArgumentParser) -> None:
    """What ``gallery build`` and ``gallery add`` share: ``--aligned``, the quality flags and the
    model flags."""
    p.add_argument("--aligned", action="store_true", help=ALIGNED_HELP)
    _quality_options(p)
    add_model_options(p)


def register(sub: Any) -> None:
    """Add the ``gallery`` command group to the top-level parser."""
    gallery = sub.add_parser(
        "gallery",
        help="enrol, list and remove the people to recognise",
        description="The gallery: the people to recognise, their reference faces and "
        "embeddings, in one SQLite file ($FACEMETRIC_HOME/gallery.db or --db) or a PostgreSQL "
        "database several servers share (--db postgresql://...).",
    )
    gsub = gallery.add_subparsers(dest="gallery_command", metavar="COMMAND", required=True)

    p = gsub.add_parser(
        "build",
        help="enrol every identity folder of DIR (DIR/person/*.jpg)",
        description="Enrol the largest face of every photo of every person folder of DIR. "
        "Running it again adds only new photos; unreadable or faceless photos are skipped "
        "and reported, so are photos below the quality floors (tiny, blurred, turned away, "
        "unlike the person's other photos).",
    )
    p.add_argument("dir", metavar="DIR", help="folder of people: DIR/person/photo.jpg")
    _enrol_options(p)
    p.set_defaults(func=cmd_build)

    p = gsub.add_parser(
        "add",
        help="enrol NAME from photos (the largest face of each)",
        description="Enrol NAME (created if new) from the largest face of each photo. Photos "
        "NAME already has are not added twice; unreadable or faceless ones are skipped and "
        "reported, so are photos below the quality floors; the rest saved.",
    )
    p.add_argument("name", metavar="NAME", help="the person's name (quote it if it has spaces)")
    p.add_argument(
        "images", metavar="IMAGE", nargs="+", help="photos, or folders searched recursively"
    )
    _enrol_options(p)
    p.set_defaults(func=cmd_add)

    p = gsub.add_parser(
        "remove",
        help="delete NAME with their faces and embeddings",
        description="Delete NAME with every reference face and embedding, and their past "
        "events unless --keep-events.",
    )
    p.add_argument("name", metavar="NAME", help="the person to remove")
    p.add_argument("--db", metavar="PATH", help=DB_HELP)
    p.add_argument(
        "--keep-events",
        action="store_true",
        help="keep NAME's past events (who was seen where and when) under the name; by "
        "default they are deleted with their snapshots",
    )
    p.set_defaults(func=cmd_remove, model=None)

    p = gsub.add_parser(
        "list",
        help="everyone in the gallery",
        description="Everyone in the gallery with their number of faces.",
    )
    p.add_argument("--db", metavar="PATH", help=DB_HELP)
    p.add_argument("--json", action="store_true", help="one JSON list of people")
    p.set_defaults(func=cmd_list, model=None)

    p = gsub.add_parser(
        "export",
        help="write embeddings (.npz) and metadata (.json)",
        description="Write every face's embedding by MODEL to OUT.npz (embeddings, face_ids, "
        "person_ids, names) and the people and faces to OUT.json, for other tools.",
    )
    p.add_argument("out", metavar="OUT", help="output file (.npz is added when missing)")
    add_model_options(p, detect=False)
    p.set_defaults(func=cmd_export)

    gallery_store.register(gsub)
    gallery_check.register(gsub)
    gallery_corrections.register(gsub)

    p = gsub.add_parser(
        "reembed",
        help="re-embed every stored crop with the model",
        description="Compute every face's embedding again with MODEL from the stored chips "
        "(after training a new model; no photo is needed).",
    )
    add_model_options(p, detect=False)
    p.set_defaults(func=cmd_reembed)
