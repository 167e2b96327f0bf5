"""CLI: ``gallery check``, the gallery audit (``facemetric.gallery.check``).

Exit status: 0 when nothing was found, 1 when there are findings, 2 on an error (as every
command), so a script or CI job can gate on it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from facemetric.cli.options import add_model_options, gallery_options, open_store
from facemetric.errors import ConfigError

FINDINGS_EXIT = 1


def cmd_check(args: argparse.Namespace) -> int:
    from facemetric.gallery.check import CheckOptions, check_gallery
    from facemetric.models import load_embedder

    if args.min_references < 0:
        raise ConfigError(f"--min-references: must be 0 or more, got {args.min_references}")
    if not -1.0 <= args.duplicate_similarity <= 1.0:
        raise ConfigError(
            f"--duplicate-similarity: a cosine similarity in [-1, 1], "
            f"got {args.duplicate_similarity}"
        )
    store = open_store(gallery_options(args))
    embedder = load_embedder(args.model, engine=args.engine)
    threshold = float(embedder.threshold if args.threshold is None else args.threshold)
    options = CheckOptions(
        threshold=threshold,
        min_consistency=args.min_consistency,
        duplicate_similarity=args.duplicate_similarity,
        min_references=args.min_references,
    )
    report = check_gallery(store, embedder, options)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for f in report.findings:
            print(f"{f.kind}: {f.message}")
        counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in report.counts().items() if n)
        print(
            f"{report.people} people, {report.faces} faces in {store.path}: "
            + (f"{len(report.findings)} finding(s) ({counts})" if report.findings else "clean")
        )
    return FINDINGS_EXIT if report.findings else 0


def register(gsub: Any) -> None:
    """Add ``check`` to the ``gallery`` command group."""
    p = gsub.add_parser(
        "check",
        help="audit the gallery: outliers, duplicates, look-alikes, too few references",
        description="Audit the gallery's reference faces: references unlike the rest of their "
        "person, the same face under two names, two people so close that one will be taken "
        "for the other, and people with too few good references. Exit status 0: clean, "
        "1: findings, 2: error.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object: counts and findings")
    p.add_argument(
        "--threshold",
        type=float,
        help="match threshold (default: the model's); the consistency floor is 0.05 below it "
        "by default",
    )
    p.add_argument(
        "--min-consistency",
        type=float,
        help="a reference whose median similarity to its person's others is below this is an "
        "outlier (default: the match threshold - 0.05, as at enrolment)",
    )
    p.add_argument(
        "--duplicate-similarity",
        type=float,
        default=0.99,
        help="faces of two people at least this similar are the same face (default 0.99)",
    )
    p.add_argument(
        "--min-references",
        type=int,
        default=2,
        help="fewer good references than this is a finding (default 2)",
    )
    add_model_options(p, detect=False)
    p.set_defaults(func=cmd_check)
