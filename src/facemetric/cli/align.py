"""CLI for ``facemetric data align``: photos -> aligned face crops plus a manifest."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(data_sub: Any) -> None:
    """Add ``align`` to the ``data`` command group's subparsers."""
    from facemetric.data.detect import DEFAULT_DETECTOR
    from facemetric.data.prepare import MULTI_POLICIES

    p = data_sub.add_parser(
        "align",
        help="detect and align every face: ROOT/person/* -> OUT/person/<stem>.png + manifest",
        description="Detect faces in every ROOT/person/ image, align each by its five landmarks "
        "to a face template and write OUT/person/<stem>.png crops plus OUT/manifest.jsonl "
        "(one line per input: aligned, no_face, multiple_faces or unreadable, with box, "
        "landmarks and score) and OUT/prepare.json (template, size, detector). The crops are "
        "cut the way a model needs them: dlib's 150 px chips by default (the pretrained model "
        "and its fine-tunes), or --model MODEL's own, or --template arcface for backbones "
        "trained from scratch. Runs again skip inputs already in the manifest.",
    )
    p.add_argument("root", metavar="ROOT", help="photo folder with one sub-folder per person")
    p.add_argument("out", metavar="OUT", help="folder for the crops and manifest.jsonl")
    p.add_argument(
        "--template",
        default=None,
        help="face template: dlib (default) or arcface; see facemetric models",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help="cut crops the way MODEL needs them (its template and input size)",
    )
    p.add_argument(
        "--size", type=int, default=None, help="crop side in pixels (default: the template's)"
    )
    p.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"retinaface, yunet or mtcnn (default: {DEFAULT_DETECTOR})",
    )
    p.add_argument(
        "--multi",
        choices=MULTI_POLICIES,
        default="largest",
        help="several faces in a photo: keep the largest (default), keep all "
        "(<stem>_<k>.png), or skip the photo",
    )
    p.add_argument(
        "--min-score", type=float, default=0.8, help="detector confidence to accept (default 0.8)"
    )
    p.add_argument("--workers", type=int, default=None, help="processes (default: every core)")
    p.add_argument("--force", action="store_true", help="redo every input, not only new ones")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=_align)


def _align(args: argparse.Namespace) -> int:
    from facemetric import catalog
    from facemetric.cli.checks import need_folders, need_model

    need_folders([args.root], "photo folder")
    catalog.check_name(args.template, catalog.TEMPLATES, "--template")
    catalog.check_name(args.detector, catalog.DETECTORS, "--detector")
    if args.model is not None:
        need_model(args.model)
    from facemetric.data.prepare import PrepareConfig, prepare_crops
    from facemetric.errors import ConfigError

    template, size = args.template or "dlib", args.size
    if args.model is not None:
        from facemetric.models import load_checkpoint, resolve_model_path

        if args.template is not None:
            raise ConfigError("--template and --model: give one (the model names its template)")
        spec = load_checkpoint(resolve_model_path(args.model)).spec
        template, size = spec.alignment, size or spec.input_size
    config = PrepareConfig(
        size=size,
        template=template,
        detector=args.detector,
        multi=args.multi,
        min_score=args.min_score,
        workers=args.workers,
        force=args.force,
        progress=not args.no_progress,
    )
    summary = prepare_crops(args.root, args.out, config)
    print(json.dumps(summary.to_dict(), indent=1) if args.json else summary.render())
    return 0
