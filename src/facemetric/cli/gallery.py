"""CLI for the gallery stage: ``gallery build|add|remove|list|export|reembed``, ``identify``
and ``export MODEL --onnx``. Handlers only parse arguments and call plain functions."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _options(args: argparse.Namespace) -> GalleryOptions:
    return GalleryOptions(
        db=args.db,
        model=args.model,
        engine=getattr(args, "engine", "auto"),
        detector=getattr(args, "detector", "retinaface"),
        threshold=getattr(args, "threshold", None),
        top_k=getattr(args, "top_k", 3),
    )


def _store(opts: GalleryOptions, create: bool = False) -> Any:
    """The gallery; commands that only read or remove never create one."""
    from facemetric.gallery.store import GalleryStore
    from facemetric.paths import default_gallery_path

    return GalleryStore(opts.db if opts.db else default_gallery_path(), create=create)


def _recognizer(opts: GalleryOptions, create: bool = False) -> Any:
    from facemetric.recognize import Recognizer

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
    )


def _print_report(report: Any, store_path: Path) -> None:
    faces = sum(report.added.values())
    print(f"added {faces} faces of {len(report.added)} people to {store_path}")
    if report.duplicates:
        print(f"  {report.duplicates} photos were already in the gallery (not added again)")
    for path, why in sorted(report.skipped.items()):
        print(f"  skipped {path}: {why}")


def _aligned(args: argparse.Namespace) -> bool | None:
    return True if args.aligned else None


# ---- handlers ---------------------------------------------------------------------------------
def cmd_build(args: argparse.Namespace) -> int:
    from facemetric.enrol import build_gallery

    rec = _recognizer(_options(args), create=True)
    report = build_gallery(rec, args.dir, aligned=_aligned(args))
    _print_report(report, rec.store.path)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from facemetric.enrol import add_photos

    rec = _recognizer(_options(args), create=True)
    report = add_photos(rec, args.name, args.images, aligned=_aligned(args))
    _print_report(report, rec.store.path)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    store = _store(_options(args))
    removed = store.remove_person(args.name)
    print(f"removed {args.name!r} and {removed} faces from {store.path}")
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


def cmd_identify(args: argparse.Namespace) -> int:
    from facemetric.enrol import annotate, identify_photo, match_summary

    opts = _options(args)
    rec = _recognizer(opts)
    results = []
    for i, image_path in enumerate(args.images):
        image, matches = identify_photo(rec, image_path, opts.threshold, opts.top_k)
        results.append({"image": str(image_path), "faces": [match_summary(m) for m in matches]})
        if args.annotate:
            out = Path(args.annotate)
            if len(args.images) > 1:
                out = out.with_name(f"{out.stem}-{i + 1}{out.suffix or '.jpg'}")
            annotate(image, matches, out)
        if not args.json:
            print(f"{image_path}: {len(matches)} face(s)")
            for j, m in enumerate(matches, 1):
                who = m.identity if m.is_match else "unknown"
                top = ", ".join(f"{c.identity} {c.similarity:.3f}" for c in m.top_k) or "-"
                box = ",".join(f"{v:.0f}" for v in m.box)
                print(f"  face {j} [{box}]: {who} ({m.similarity:.3f})  top: {top}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


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
def _common(p: argparse.ArgumentParser, detect: bool = True) -> None:
    p.add_argument("--db", help="gallery file (default: $FACEMETRIC_HOME/gallery.db)")
    p.add_argument("--model", help="checkpoint, run folder or 'best' (default: promoted model)")
    p.add_argument("--engine", choices=ENGINES, default="auto", help="inference engine")
    if detect:
        p.add_argument(
            "--detector", default="retinaface", help="face detector (default retinaface)"
        )


def register(sub: Any) -> None:
    """Add ``gallery``, ``identify`` and ``export`` to the top-level parser."""
    gallery = sub.add_parser("gallery", help="enrol, list and remove the people to recognise")
    gsub = gallery.add_subparsers(dest="gallery_command", metavar="COMMAND", required=True)

    p = gsub.add_parser("build", help="enrol every identity folder of DIR (DIR/person/*.jpg)")
    p.add_argument("dir")
    p.add_argument("--aligned", action="store_true", help="photos are aligned crops already")
    _common(p)
    p.set_defaults(func=cmd_build)

    p = gsub.add_parser("add", help="enrol NAME from photos (the largest face of each)")
    p.add_argument("name")
    p.add_argument("images", nargs="+")
    p.add_argument("--aligned", action="store_true", help="photos are aligned crops already")
    _common(p)
    p.set_defaults(func=cmd_add)

    p = gsub.add_parser("remove", help="delete NAME with their faces and embeddings")
    p.add_argument("name")
    p.add_argument("--db", help="gallery file (default: $FACEMETRIC_HOME/gallery.db)")
    p.set_defaults(func=cmd_remove, model=None)

    p = gsub.add_parser("list", help="everyone in the gallery")
    p.add_argument("--db", help="gallery file (default: $FACEMETRIC_HOME/gallery.db)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list, model=None)

    p = gsub.add_parser("export", help="write embeddings (.npz) and metadata (.json)")
    p.add_argument("out")
    _common(p, detect=False)
    p.set_defaults(func=cmd_export)

    p = gsub.add_parser("reembed", help="re-embed every stored crop with the model")
    _common(p, detect=False)
    p.set_defaults(func=cmd_reembed)

    p = sub.add_parser("identify", help="who is in these photos")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--threshold", type=float, help="match threshold (default: the model's)")
    p.add_argument("--json", action="store_true", help="one JSON list, one object per image")
    p.add_argument("--annotate", metavar="OUT.jpg", help="draw boxes, names and scores")
    _common(p)
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("export", help="export a model for fast inference (ONNX)")
    p.add_argument("model_path", metavar="MODEL", help="checkpoint, run folder or 'best'")
    p.add_argument("--onnx", action="store_true", help="export to ONNX (checked against PyTorch)")
    p.add_argument("--out", help="output file (default: the checkpoint with .onnx)")
    p.add_argument("--opset", type=int, default=17)
    p.set_defaults(func=cmd_export_model)
