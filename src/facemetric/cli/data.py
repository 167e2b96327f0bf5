"""``facemetric data``: rename, check, split, pairs (and ``align``, from ``cli/align.py``).

Handlers only turn arguments into the stage's typed config and call its plain function.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facemetric.cli import align
from facemetric.data.scan import CheckConfig
from facemetric.data.split import SplitConfig

LIST_LIMIT = 20  # lines of moves or skipped files printed before "... and N more"


def register(sub: Any) -> None:
    """Add the ``data`` command group and its subcommands to the top-level parser."""
    data = sub.add_parser(
        "data",
        help="prepare a photo folder ROOT/person/*.jpg: rename, check, split, align, pairs",
        description="Prepare a photo folder laid out as ROOT/person/image.",
    )
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = data_sub.add_parser(
        "rename",
        help="rename each person's images to PREFIX_1.jpg, PREFIX_2.jpg, ... (safe, undoable)",
        description="Rename every ROOT/person/ folder's images to <prefix>_<n>.<ext> in natural "
        "order. The prefix may contain {folder} (the person folder's name) and defaults to it: "
        "ROOT/A/A_1.jpg, ROOT/B/B_1.jpg. A journal in ROOT makes an interrupted run completable "
        "(run again) and undoable (--undo); nothing is ever overwritten.",
    )
    p.add_argument("root", metavar="ROOT", help="data folder with one sub-folder per person")
    p.add_argument(
        "--prefix",
        default=None,
        help="file name stem; '{folder}' stands for the person folder (default: '{folder}')",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--undo", action="store_true", help="restore the names the journal recorded")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_rename)

    p = data_sub.add_parser(
        "check",
        help="report identities, unreadable files, duplicates, small images",
        description="Decode every image under ROOT/person/ and report identities, images per "
        "identity, unreadable or truncated files, non-images, exact and near duplicates within "
        "and across identities, small images and identities with few images. Exit code 0 "
        "unless --strict is given and problems are found (then 1).",
    )
    p.add_argument("root", metavar="ROOT", help="data folder with one sub-folder per person")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 when any problem is found")
    p.add_argument(
        "--min-images",
        type=int,
        default=CheckConfig.min_images,
        metavar="K",
        help="report identities with fewer images (default: %(default)s)",
    )
    p.add_argument(
        "--min-size",
        type=int,
        default=CheckConfig.min_size,
        metavar="PX",
        help="report images whose shorter side is smaller (default: %(default)s)",
    )
    p.add_argument(
        "--near-distance",
        type=int,
        default=CheckConfig.near_distance,
        metavar="D",
        help="perceptual-hash bits that may differ for a near duplicate; -1 = off "
        "(default: %(default)s)",
    )
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: cores)")
    p.add_argument("--limit", type=int, default=10, help="lines per finding in the table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=_check)

    p = data_sub.add_parser(
        "split",
        help="identity-disjoint train/val/test lists (no copies), reproducible",
        description="Assign whole identities to train/val/test and write train.txt, val.txt, "
        "test.txt (paths relative to ROOT) and split.json to --out (default: ROOT itself).",
    )
    p.add_argument("root", metavar="ROOT", help="data folder with one sub-folder per person")
    p.add_argument(
        "--val", type=float, default=SplitConfig.val, help="fraction of identities (%(default)s)"
    )
    p.add_argument(
        "--test", type=float, default=SplitConfig.test, help="fraction of identities (%(default)s)"
    )
    p.add_argument(
        "--seed", type=int, default=SplitConfig.seed, help="the same seed, the same split"
    )
    p.add_argument("--out", default=None, metavar="DIR", help="where to write (default: ROOT)")
    p.set_defaults(func=_split)

    p = data_sub.add_parser(
        "pairs",
        help="verification pairs (same person / different people) of a folder, as a tsv file",
        description="Write verification pairs of the people in ROOT/person/* to --out in the tsv "
        "format facemetric evaluate --pairs reads (fold, same, image1, image2; paths relative "
        "to ROOT). Folds are made of whole people, so a person's pairs, genuine and impostor, "
        "stay in one fold. The same seed gives the same file. (evaluate --identify DIR "
        "--calibrate needs no pairs file: it calibrates on every pair of DIR's images.)",
    )
    p.add_argument("root", metavar="ROOT", help="folder with one sub-folder per person")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="pairs file to write")
    p.add_argument(
        "--genuine",
        type=_count_or_all,
        default=None,
        metavar="N|all",
        help="same-person pairs: N drawn at random or all of them (default: all)",
    )
    p.add_argument(
        "--impostor",
        type=_non_negative,
        default=None,
        metavar="N",
        help="pairs of two different people (default: as many as genuine pairs)",
    )
    p.add_argument("--seed", type=int, default=0, help="the same seed, the same pairs (0)")
    p.add_argument(
        "--folds", type=int, default=10, help="folds, fewer with under 2 people each (10)"
    )
    p.set_defaults(func=_pairs)

    align.register(data_sub)


def _count_or_all(text: str) -> int | None:
    """``all`` -> None, else a count >= 0 (argparse type)."""
    if text.strip().lower() == "all":
        return None
    try:
        return _non_negative(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} or 'all'") from None


def _non_negative(text: str) -> int:
    """A count >= 0 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be >= 0")
    return value


def _print_list(title: str, items: list[str]) -> None:
    if not items:
        return
    print(f"{title} ({len(items)}):")
    for item in items[:LIST_LIMIT]:
        print(f"  {item}")
    if len(items) > LIST_LIMIT:
        print(f"  ... and {len(items) - LIST_LIMIT} more (see --json)")


def _rename(args: argparse.Namespace) -> int:
    from facemetric.data.rename import rename_images_in_folder

    result = rename_images_in_folder(args.root, args.prefix, dry_run=args.dry_run, undo=args.undo)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
        return 0
    if result.resumed:
        print("completed an interrupted run recorded in the journal")
    action = "undo" if args.undo else "rename"
    if args.dry_run:
        _print_list(f"{action} plan (dry run, nothing changed)", [str(m) for m in result.planned])
    else:
        _print_list("restored" if args.undo else "renamed", [str(m) for m in result.done])
    _print_list("left alone (not images, hidden or folders)", result.skipped)
    _print_list("names taken by other entries, skipped over", result.collisions)
    _print_list("files missing since the journal was written", result.missing)
    if not result.planned and not result.done:
        print(f"nothing to {action}: every image already has its name")
    elif not args.dry_run and not args.undo:
        print(f"journal: {result.journal} (undo with: facemetric data rename {args.root} --undo)")
    return 0


def _check(args: argparse.Namespace) -> int:
    from facemetric.data.scan import check_dataset, render_report

    config = CheckConfig(
        min_images=args.min_images,
        min_size=args.min_size,
        near_distance=args.near_distance,
        workers=args.workers,
        progress=not args.no_progress,
    )
    report = check_dataset(args.root, config)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    else:
        print(render_report(report, limit=args.limit))
    return 1 if args.strict and not report.ok else 0


def _split(args: argparse.Namespace) -> int:
    from facemetric.data.split import split_dataset

    split = split_dataset(
        args.root, SplitConfig(val=args.val, test=args.test, seed=args.seed), args.out
    )
    for name, counts in split.meta["counts"].items():
        print(f"{name:5s}  {counts['identities']:6d} identities  {counts['images']:7d} images")
    print(f"written to {split.folder}")
    for warning in split.meta.get("warnings", []):
        print(f"facemetric: warning: {warning}", file=sys.stderr)
    return 0


def _pairs(args: argparse.Namespace) -> int:
    from facemetric.evaluate.protocols import make_pairs, write_pairs

    made = make_pairs(
        args.root, genuine=args.genuine, impostor=args.impostor, seed=args.seed, folds=args.folds
    )
    write_pairs(made.pairs, args.out)
    print(
        f"{made.genuine} genuine and {made.impostor} impostor pairs of {made.people} people "
        f"in {made.folds} folds -> {args.out}"
    )
    if made.folds < args.folds:
        print(
            f"facemetric: warning: {made.people} people give only {made.folds} folds of at "
            "least 2 people each",
            file=sys.stderr,
        )
    wanted = made.genuine if args.impostor is None else args.impostor
    if made.impostor < wanted:
        print(
            f"facemetric: warning: only {made.impostor} impostor pairs exist within the folds "
            f"(of {wanted} asked for): add people or use fewer --folds",
            file=sys.stderr,
        )
    return 0
