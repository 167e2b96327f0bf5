"""CLI for ``facemetric identify IMAGE...``: who is in these photos, against the ``--db`` gallery
or a ``--known`` folder of people. The handler parses arguments and calls
``facemetric.recognize.photos``; printing the answers (text, JSON, CSV) is all it adds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facemetric.cli.options import (
    DB_HELP,
    GalleryOptions,
    add_model_options,
    check_inputs,
    gallery_options,
    open_recognizer,
    open_store,
    warn_uncalibrated,
)
from facemetric.cli.unknown import add_keep_flags, check_keep_flags, keep_unknown
from facemetric.csvcells import SafeWriter
from facemetric.errors import ConfigError

# the columns of ``identify --csv`` (recognize.photos.CSV_COLUMNS), without importing numpy here
CSV_COLUMNS_HELP = (
    "image", "face", "x1", "y1", "x2", "y2", "identity", "similarity", "is_match",
    "score", "threshold", "reason", "explanation",
)  # fmt: skip


def _known_recognizer(opts: GalleryOptions, folder: str) -> Any:
    """The recognizer over the cached gallery of the ``--known`` folder, saying on stderr what
    bringing it up to date did (stdout stays for the answers)."""
    from facemetric.enrol.known import known_gallery
    from facemetric.models import load_embedder

    opts.check_top_k()
    embedder = load_embedder(opts.model, engine=opts.engine)  # type: ignore[arg-type]
    known = known_gallery(
        folder, embedder, opts.detector, opts.threshold, opts.top_k, opts.decision()
    )
    counts = f"{known.people} people, {known.faces} faces"
    if known.reused:
        print(f"{folder}: {counts} (cached gallery, unchanged)", file=sys.stderr)
        return known.recognizer
    added = sum(known.report.added.values())
    note = f"; removed {', '.join(known.removed)}" if known.removed else ""
    print(
        f"{folder}: {counts} (gallery cache updated: {added} faces added{note}) in {known.path}",
        file=sys.stderr,
    )
    for path, why in sorted(known.report.skipped.items()):
        print(f"  skipped {path}: {why}", file=sys.stderr)
    return known.recognizer


def _print_text(result: Any) -> None:
    print(f"{result.path}: {len(result.matches)} face(s)")
    for j, m in enumerate(result.matches, 1):
        who = m.identity if m.is_match else "unknown"
        why = m.decision.explain() if m.decision is not None else f"similarity {m.similarity:.4f}"
        top = ", ".join(f"{c.identity} {c.similarity:.4f}" for c in m.top_k) or "-"
        box = ",".join(f"{v:.0f}" for v in m.box)
        print(f"  face {j} [{box}]: {who} ({why})  top: {top}")


def cmd_identify(args: argparse.Namespace) -> int:
    from facemetric.enrol.build import expand_images
    from facemetric.recognize.photos import (
        CSV_COLUMNS,
        annotate,
        csv_rows,
        identify_photos,
        photo_summary,
    )

    def images() -> list[Path]:
        files = expand_images(args.images)
        if not files:
            raise ConfigError(f"no images in {', '.join(args.images)}")
        return files

    opts = gallery_options(args)
    if getattr(args, "keep_unknown", False):
        check_keep_flags(args)
    if not args.known:  # a missing --db first, as the gallery store would say it
        open_store(opts).close()
    from facemetric.cli.checks import need_folders, need_people_with_photos, need_photos

    need_folders([args.known], "folder of known people")
    check_inputs(args, *args.images)
    need_photos(args.images)  # nothing to identify: said before the model loads
    if args.known:
        need_people_with_photos(args.known)
    if args.known:  # a typo'd IMAGE is said before the known folder is enrolled
        files = images()
        rec = _known_recognizer(opts, args.known)
    else:  # a missing --db is said before the model loads
        rec = open_recognizer(opts)
        files = images()
    warn_uncalibrated(rec)
    if getattr(args, "keep_unknown", False):
        keep_unknown(args, rec)
    results = identify_photos(rec, files, opts.threshold, opts.top_k)
    writer = SafeWriter(sys.stdout, lineterminator="\n") if args.csv else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    summaries, failed = [], 0
    for i, result in enumerate(results, 1):
        if result.error is not None:
            failed += 1
            print(f"facemetric: skipped {result.path}: {result.error}", file=sys.stderr)
        elif args.annotate and result.image is not None:
            out = Path(args.annotate)
            if len(files) > 1:
                out = out.with_name(f"{out.stem}-{i}{out.suffix or '.jpg'}")
            annotate(result.image, result.matches, out)
        if args.json:
            summaries.append(photo_summary(result))
        elif writer is not None:
            writer.writerows(csv_rows(result))
        elif result.error is None:
            _print_text(result)
    if args.json:
        print(json.dumps(summaries, indent=2))
    if failed:  # the rest was answered: a partial success is a success, the skips are reported
        print(f"facemetric: skipped {failed} of {len(files)} images (see above)", file=sys.stderr)
    return 2 if failed and failed == len(files) else 0


def register(sub: Any) -> None:
    """Add ``identify`` to the top-level parser."""
    p = sub.add_parser(
        "identify",
        help="who is in these photos",
        description="Who is in these photos: every face with its nearest gallery people. The "
        "gallery is --db (default $FACEMETRIC_HOME/gallery.db) or a folder of known people "
        "(--known known_people/, known_people/person/*.jpg), built into a cache and reused "
        "while the folder does not change. An unreadable image is reported and the rest go "
        "on (exit status 2).",
    )
    p.add_argument(
        "images", metavar="IMAGE", nargs="+", help="photos, or folders searched recursively"
    )
    p.add_argument("--top-k", type=int, default=3, help="nearest people shown per face (default 3)")
    p.add_argument(
        "--threshold",
        type=float,
        help="match threshold on person scores (default: calibrated for the gallery's size "
        "from its own faces, never below the model's per-pair threshold)",
    )
    p.add_argument(
        "--margin",
        type=float,
        help="how far the best person must lead the next to be named (default 0.01)",
    )
    p.add_argument(
        "--fpir",
        type=float,
        help="stranger photos named per search the threshold is calibrated for (default 0.01)",
    )
    p.add_argument(
        "--agree",
        type=int,
        help="a person's score: the mean of their best AGREE references (default 2)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON list, one object per image")
    out.add_argument(
        "--csv",
        action="store_true",
        help="CSV, one row per face: " + ",".join(CSV_COLUMNS_HELP) + " (no row for an "
        "image without faces; score: the one the decision compared with threshold)",
    )
    p.add_argument(
        "--annotate",
        metavar="OUT.jpg",
        help="draw boxes, names and scores (OUT-1.jpg, OUT-2.jpg, ... for several images)",
    )
    gallery_choice = p.add_mutually_exclusive_group()
    gallery_choice.add_argument("--db", metavar="PATH", help=DB_HELP)
    gallery_choice.add_argument(
        "--known",
        metavar="FOLDER",
        help="folder of known people (FOLDER/person/*.jpg) to use as the gallery, cached "
        "under $FACEMETRIC_HOME/known and updated when photos change",
    )
    add_model_options(p, db=False)
    add_keep_flags(p)
    p.set_defaults(func=cmd_identify)
