"""CLI for the gallery stage: ``gallery build|add|remove|list|export|reembed`` (corrections:
``facemetric.cli.gallery_corrections``), ``identify``
and ``export MODEL --onnx``. Handlers only parse arguments and call plain functions."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facemetric.csvcells import SafeWriter
from facemetric.errors import ConfigError

ENGINES = ("auto", "torch", "onnx")


@dataclass(frozen=True)
class GalleryOptions:
    """What every gallery command shares: the store, the model and how to find faces."""

    db: str | None = None
    model: str | None = None
    engine: str = "auto"
    detector: str = "retinaface"
    threshold: float | None = None
    top_k: int = 3
    margin: float | None = None  # the open-set decision's settings (None: shipped defaults)
    fpir: float | None = None
    agree: int | None = None

    def decision(self) -> Any:
        """The decision's settings with the flags given (``facemetric.recognize.decision``)."""
        from facemetric.recognize.decision import DecisionSettings

        given: dict[str, Any] = {"margin": self.margin, "fpir": self.fpir, "agree": self.agree}
        return DecisionSettings(**{k: v for k, v in given.items() if v is not None})


def _options(args: argparse.Namespace) -> GalleryOptions:
    return GalleryOptions(
        db=args.db,
        model=args.model,
        engine=getattr(args, "engine", "auto"),
        detector=getattr(args, "detector", "retinaface"),
        threshold=getattr(args, "threshold", None),
        top_k=getattr(args, "top_k", 3),
        margin=getattr(args, "margin", None),
        fpir=getattr(args, "fpir", None),
        agree=getattr(args, "agree", None),
    )


def _store(opts: GalleryOptions, create: bool = False) -> Any:
    """The gallery; commands that only read or remove never create one."""
    from facemetric.gallery.store import GalleryStore
    from facemetric.paths import default_gallery_path

    return GalleryStore(opts.db if opts.db else default_gallery_path(), create=create)


def _recognizer(opts: GalleryOptions, create: bool = False) -> Any:
    from facemetric.recognize.recognizer import Recognizer

    if opts.top_k < 1:
        raise ConfigError(f"--top-k: must be at least 1, got {opts.top_k}")
    return Recognizer.from_paths(
        opts.model,
        opts.db,
        engine=opts.engine,  # type: ignore[arg-type]
        detector=opts.detector,
        create=create,
        threshold=opts.threshold,
        top_k=opts.top_k,
        decision=opts.decision(),
    )


def _warn_uncalibrated(rec: Any) -> None:
    """One line on stderr when matches are decided by a threshold never calibrated."""
    warning = rec.threshold_warning()
    if warning:
        print(f"facemetric: warning: {warning}", file=sys.stderr)


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


# ---- handlers ---------------------------------------------------------------------------------
def _check_inputs(args: argparse.Namespace, *paths: str) -> None:
    """Paths, model and detector checked before the model loads."""
    from facemetric import catalog
    from facemetric.cli.checks import need_model, need_paths

    need_paths(paths)
    need_model(getattr(args, "model", None))
    catalog.check_name(getattr(args, "detector", None), catalog.DETECTORS, "--detector")


def cmd_build(args: argparse.Namespace) -> int:
    from facemetric.cli.checks import need_folders, need_people_with_photos

    need_folders([args.dir], "photo folder")
    _check_inputs(args)
    need_people_with_photos(args.dir)  # an empty folder is said before the model loads
    from facemetric.enrol.build import build_gallery

    quality = _quality(args)
    rec = _recognizer(_options(args), create=True)
    _warn_uncalibrated(rec)
    _set_chip_format(rec.store, args)
    report = build_gallery(rec, args.dir, aligned=_aligned(args), quality=quality)
    _print_report(report, rec.store.path)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    _check_inputs(args, *args.images)
    from facemetric.enrol.build import add_photos

    quality = _quality(args)
    rec = _recognizer(_options(args), create=True)
    _warn_uncalibrated(rec)
    _set_chip_format(rec.store, args)
    report = add_photos(rec, args.name, args.images, aligned=_aligned(args), quality=quality)
    _print_report(report, rec.store.path)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    store = _store(_options(args))
    removed = store.remove_person(args.name, keep_events=args.keep_events)
    kept = " (their past events kept)" if args.keep_events else " and their past events"
    print(f"removed {args.name!r} with {removed} faces{kept} from {store.path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(_options(args))
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

    opts = _options(args)
    store = _store(opts)
    path = store.export(args.out, load_embedder(opts.model, engine=opts.engine))  # type: ignore[arg-type]
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def cmd_reembed(args: argparse.Namespace) -> int:
    from facemetric.models import load_embedder

    opts = _options(args)
    store = _store(opts)
    count = store.reembed(load_embedder(opts.model, engine=opts.engine))  # type: ignore[arg-type]
    print(f"re-embedded {count} faces of {store.path}")
    return 0


def _known_recognizer(opts: GalleryOptions, folder: str) -> Any:
    """The recognizer over the cached gallery of the ``--known`` folder, saying on stderr what
    bringing it up to date did (stdout stays for the answers)."""
    from facemetric.enrol.known import known_gallery
    from facemetric.models import load_embedder

    if opts.top_k < 1:
        raise ConfigError(f"--top-k: must be at least 1, got {opts.top_k}")
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

    opts = _options(args)
    if getattr(args, "keep_unknown", False):
        from facemetric.cli.unknown import check_keep_flags

        check_keep_flags(args)
    if not args.known:  # a missing --db first, as the gallery store would say it
        from facemetric.gallery.store import GalleryStore
        from facemetric.paths import default_gallery_path

        GalleryStore(opts.db or default_gallery_path(), create=False).close()
    from facemetric.cli.checks import need_folders, need_people_with_photos, need_photos

    need_folders([args.known], "folder of known people")
    _check_inputs(args, *args.images)
    need_photos(args.images)  # nothing to identify: said before the model loads
    if args.known:
        need_people_with_photos(args.known)
    if args.known:  # a typo'd IMAGE is said before the known folder is enrolled
        files = images()
        rec = _known_recognizer(opts, args.known)
    else:  # a missing --db is said before the model loads
        rec = _recognizer(opts)
        files = images()
    _warn_uncalibrated(rec)
    if getattr(args, "keep_unknown", False):
        from facemetric.cli.unknown import keep_unknown

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


def cmd_export_model(args: argparse.Namespace) -> int:
    if not args.onnx:
        raise ConfigError("export: choose a format; only --onnx exists for now")
    from facemetric.models.export import export_onnx

    report = export_onnx(args.model_path, out=args.out, opset=args.opset)
    print(
        f"wrote {report.path} (opset {report.opset}); max abs difference to PyTorch "
        f"{report.max_abs_diff:.2e}"
    )
    return 0


# ---- parser -----------------------------------------------------------------------------------
DB_HELP = (
    "gallery: a SQLite file or postgresql://USER:PASSWORD@HOST:PORT/DBNAME (default: "
    "$FACEMETRIC_DB, else $FACEMETRIC_HOME/gallery.db)"
)
MODEL_HELP = (
    "checkpoint, run folder, pretrained name (dlib) or 'best' (default: the promoted model, "
    "else dlib)"
)


def _common(p: argparse.ArgumentParser, detect: bool = True, db: bool = True) -> None:
    if db:
        p.add_argument("--db", metavar="PATH", help=DB_HELP)
    p.add_argument("--model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="inference engine: auto uses ONNX Runtime when a fresh .onnx sits beside the "
        "checkpoint, else PyTorch (default auto)",
    )
    if detect:
        p.add_argument(
            "--detector", default="retinaface", help="face detector (default retinaface)"
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
        choices=("png", "jpeg", "webp"),
        help="store this gallery's new face chips in FORMAT from now on (kept in the gallery, "
        "so later enrolments and servers follow it): jpeg (quality 95, the default), webp, or "
        "png (lossless, about 5x the bytes); chips already stored keep theirs",
    )


ALIGNED_HELP = (
    "the photos are aligned face crops already (facemetric data align): no detection; "
    "by default a small square photo with no detected face is taken as a crop"
)


def register(sub: Any) -> None:
    """Add ``gallery``, ``identify`` and ``export`` to the top-level parser."""
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
    p.add_argument("--aligned", action="store_true", help=ALIGNED_HELP)
    _quality_options(p)
    _common(p)
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
    p.add_argument("--aligned", action="store_true", help=ALIGNED_HELP)
    _quality_options(p)
    _common(p)
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
    _common(p, detect=False)
    p.set_defaults(func=cmd_export)

    from facemetric.cli import gallery_check, gallery_store

    gallery_store.register(gsub, DB_HELP)
    gallery_check.register(gsub, DB_HELP, _common)
    from facemetric.cli import gallery_corrections

    gallery_corrections.register(gsub, _common, DB_HELP)

    p = gsub.add_parser(
        "reembed",
        help="re-embed every stored crop with the model",
        description="Compute every face's embedding again with MODEL from the stored chips "
        "(after training a new model; no photo is needed).",
    )
    _common(p, detect=False)
    p.set_defaults(func=cmd_reembed)

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
    _common(p, db=False)
    from facemetric.cli.unknown import add_keep_flags

    add_keep_flags(p)
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser(
        "export",
        help="export a model for fast inference (ONNX)",
        description="Export MODEL to ONNX, checked against PyTorch on random input.",
    )
    p.add_argument(
        "model_path", metavar="MODEL", help="checkpoint, run folder, pretrained name or 'best'"
    )
    p.add_argument("--onnx", action="store_true", help="export to ONNX (checked against PyTorch)")
    p.add_argument("--out", help="output file (default: the checkpoint with .onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    p.set_defaults(func=cmd_export_model)


# the columns of ``identify --csv`` (recognize.photos.CSV_COLUMNS), without importing numpy here
CSV_COLUMNS_HELP = (
    "image", "face", "x1", "y1", "x2", "y2", "identity", "similarity", "is_match",
    "score", "threshold", "reason", "explanation",
)  # fmt: skip
