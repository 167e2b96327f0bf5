"""CLI for ``facemetric cluster PHOTOS --out DIR``: a photo library sorted by person, with no
gallery. The handler only parses arguments into ``facemetric.cluster.library.cluster_library``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facemetric.cli.options import add_model_options
from facemetric.csvcells import SafeWriter

# facemetric.cluster.core.available_methods() and DEFAULT_METHOD, without importing numpy here
# (tests/test_cluster_cli.py checks they agree).
METHODS = ("average", "chinese_whispers", "complete", "hdbscan")
DEFAULT_METHOD = "average"
CSV_COLUMNS_HELP = ("image", "face", "x1", "y1", "x2", "y2", "group", "person", "similarity")


def cmd_cluster(args: argparse.Namespace) -> int:
    from facemetric.cli.checks import need_model, need_paths

    need_paths([args.photos], "photo or folder")
    need_model(args.model)
    from facemetric.cluster.library import CSV_COLUMNS, ClusterConfig, cluster_library

    config = ClusterConfig(
        photos=Path(args.photos),
        out=Path(args.out),
        model=args.model,
        engine=args.engine,
        detector=args.detector,
        method=args.method,
        threshold=args.threshold,
        min_size=args.min_size,
        copy=args.copy,
        db=args.db,
        progress=not args.no_progress,
        flip=not args.no_flip,
    )

    def skipped(photo: Path, why: str) -> None:
        print(f"facemetric: skipped {photo}: {why}", file=sys.stderr)

    result = cluster_library(config, on_skip=skipped)
    if args.json:
        print(json.dumps([f.to_dict() for f in result.faces], indent=1))
    elif args.csv:
        writer = SafeWriter(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(f.csv_row() for f in result.faces)
    summary = result.summary()
    print(summary, file=sys.stderr if (args.json or args.csv) else sys.stdout)
    return 0


def register(sub: Any) -> None:
    """Add ``cluster`` to the top-level parser."""
    p = sub.add_parser(
        "cluster",
        help="sort a folder tree of photos into one folder per person (no gallery needed)",
        description="Group every face of every photo under PHOTOS (recursive, any number of "
        "faces a photo) into people: one folder per group in --out with links to the photos "
        "(or copies), and 'unsorted' for faces that belong with nobody. Embeddings are kept in "
        "--out, so a second run reads only new or changed photos. With --db, groups most of "
        "whose faces match a known person take that name. Unreadable photos are reported and "
        "skipped.",
    )
    p.add_argument("photos", metavar="PHOTOS", help="a folder of photos (searched recursively)")
    p.add_argument("--out", required=True, metavar="DIR", help="where the group folders go")
    p.add_argument("--copy", action="store_true", help="copy the photos instead of linking them")
    p.add_argument(
        "--method",
        choices=METHODS,
        default=DEFAULT_METHOD,
        help=f"clustering method (default {DEFAULT_METHOD}; see docs/cluster.md)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="cosine similarity at which faces go together (default: the method's own, "
        "average 0.94)",
    )
    p.add_argument(
        "--min-size",
        type=int,
        default=2,
        help="smallest group kept; faces of smaller groups go to 'unsorted' (default 2)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON list, one object per face")
    out.add_argument(
        "--csv",
        action="store_true",
        help="CSV, one row per face: " + ",".join(CSV_COLUMNS_HELP),
    )
    p.add_argument(
        "--db",
        metavar="PATH",
        help="a gallery (SQLite file or postgresql://...) whose people name the groups that "
        "match them (default: none, groups are person-001, person-002, ...)",
    )
    p.add_argument(
        "--no-flip",
        action="store_true",
        help="embed each face once (default: averaged with its mirror image, which groups more "
        "faces at the same precision and costs a second pass of the network)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_model_options(p, db=False)
    p.set_defaults(func=cmd_cluster)
