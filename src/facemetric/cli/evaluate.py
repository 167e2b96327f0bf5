"""``facemetric embed``, ``facemetric evaluate`` and ``facemetric compare``.

Handlers only turn arguments into the stage's typed configs and call its plain functions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from facemetric.cli.options import ENGINES

MODEL_HELP = (
    "a checkpoint file, a run folder (its best.pt), a pretrained model's name (dlib) or 'best' "
    "(the promoted model, else dlib)"
)
INPUTS = (
    "A folder made by 'facemetric data align' (it has a prepare.json, or its person folders "
    "link into one that has) holds aligned crops: they are used as they are, once their "
    "template is checked against the model's; any other folder holds photos, whose faces are "
    "detected and aligned on the way. Each folder is judged on its own."
)


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--aligned",
        action="store_true",
        help="assert that every input folder holds aligned crops made by facemetric data "
        "align: stop with an error naming any folder without a prepare.json (crops are "
        "recognised without this flag)",
    )
    p.add_argument("--flip", action="store_true", help="add the mirrored image's embedding")
    p.add_argument(
        "--detector", default="retinaface", help="face detector by name (default: retinaface)"
    )
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="(default: 64)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes decoding and detecting (default: up to 2; 0 = in the main process)",
    )
    p.add_argument("--engine", choices=ENGINES, default="auto", help="(default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_protocol_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pairs",
        type=Path,
        metavar="FILE",
        help="LFW pairs.txt (tab- or space-separated) or a tsv 'fold same image1 image2' file "
        "(facemetric data pairs writes one)",
    )
    p.add_argument(
        "--root",
        type=Path,
        metavar="DIR",
        help="folder the pair paths start from; with --split, the folder its lists start from "
        "(default: the root its split.json records)",
    )
    people = p.add_mutually_exclusive_group()
    people.add_argument(
        "--identify",
        type=Path,
        metavar="DIR",
        help="DIR/person/* for closed-set rank-k and open-set identification; --calibrate "
        "calibrates on every pair of its images when no --pairs are given",
    )
    people.add_argument(
        "--split",
        type=Path,
        metavar="DIR",
        help="a split folder from facemetric data split: identification (and --calibrate) on "
        "the people of its test.txt",
    )
    p.add_argument(
        "--enrol", type=int, default=1, metavar="K", help="images enrolled per identity (default 1)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for strangers and subsets")
    p.add_argument("--max-pairs", type=int, default=None, metavar="N", help="evenly drawn subset")
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out pairs whose images are missing (default: stop and list them)",
    )
    _add_input_options(p)


def register(sub: Any) -> None:
    """Add ``embed``, ``evaluate`` and ``compare`` to the top-level parser."""
    p = sub.add_parser(
        "embed",
        help="embed every image of a folder into an .npz (paths, embeddings, found)",
        description="Embed every image under DIR/person/. " + INPUTS + " Images without a "
        "detected face are embedded whole (found=False).",
    )
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("root", type=Path, metavar="DIR", help="folder with one sub-folder per person")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.npz")
    _add_input_options(p)
    p.set_defaults(func=_embed)

    p = sub.add_parser(
        "evaluate",
        help="verification and identification metrics, report and plots; calibrate the threshold",
        description="Evaluate MODEL on verification pairs (--pairs FILE --root DIR) and/or an "
        "identification folder (--identify DIR, or the test people of a split: --split DIR). "
        "Writes evaluation.json, evaluation.md and plots into --out. --calibrate stores the "
        "threshold for --target-far (or the EER) in the checkpoint, where the gallery and the "
        "web app read it: from the pairs, else from every pair of the identification folder's "
        "images; nothing is stored when faces were found in under 80% of the images or the "
        "impostor pairs are too few. " + INPUTS + " A warning names the people evaluated that "
        "the model saw in training.",
    )
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    _add_protocol_options(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="report folder")
    p.add_argument("--calibrate", action="store_true", help="store the threshold in MODEL")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--target-far", type=float, default=1e-3, metavar="F", help="(default: 1e-3)")
    how.add_argument("--eer", action="store_true", help="calibrate at the equal error rate")
    p.add_argument("--map", choices=("pca", "tsne"), default="pca", help="embedding map method")
    p.add_argument("--json", action="store_true", help="print the evaluation JSON")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "compare",
        help="one table of several runs on the same protocol; --promote the best",
        description="Evaluate each RUN (a run folder, a checkpoint, or an evaluation.json such "
        "as the dlib baseline's) on the same protocol, reusing stored evaluations that are up "
        "to date, and print one table sorted by --metric. --promote copies the best model to "
        "the promoted 'best' used by default everywhere.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN")
    _add_protocol_options(p)
    p.add_argument("--metric", default="accuracy", help="sort key (default: accuracy)")
    p.add_argument("--promote", action="store_true", help="promote the best model to 'best'")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="comparison.md/.json")
    p.add_argument("--force", action="store_true", help="re-evaluate even when up to date")
    p.set_defaults(func=_compare)


def _check_inputs(args: argparse.Namespace, models: list[str]) -> None:
    """What the protocol names exists, the models too and the detector is known: said before
    anything heavy loads."""
    from facemetric import catalog
    from facemetric.cli.checks import need_folders, need_model, need_paths

    need_paths([getattr(args, "pairs", None)], "pairs file")
    need_folders([getattr(args, "root", None)], "data folder")
    need_folders([getattr(args, "identify", None), getattr(args, "split", None)])
    catalog.check_name(args.detector, catalog.DETECTORS, "--detector")
    for model in models:
        if not str(model).endswith(".json"):  # compare also takes evaluation.json files
            need_model(model)


def _evaluate_config(args: argparse.Namespace, model: str | None) -> Any:
    from facemetric.evaluate.run import EvaluateConfig

    return EvaluateConfig(
        model=model,
        pairs=args.pairs,
        root=args.root,
        identify=args.identify,
        split=args.split,
        aligned=args.aligned,
        flip=args.flip,
        detector=args.detector,
        max_pairs=args.max_pairs,
        skip_missing=args.skip_missing,
        enrol=args.enrol,
        seed=args.seed,
        calibrate=getattr(args, "calibrate", False),
        target_far=getattr(args, "target_far", 1e-3),
        eer=getattr(args, "eer", False),
        batch_size=args.batch_size,
        workers=args.workers,
        engine=args.engine,
        progress=not args.quiet,
    )


def _embed(args: argparse.Namespace) -> int:
    from facemetric.cli.checks import need_folders

    need_folders([args.root], "photo folder")
    _check_inputs(args, [args.model])
    from facemetric.evaluate.embed import embed_folder, holds_crops
    from facemetric.models.loading import load_embedder

    emb = load_embedder(args.model, engine=args.engine)
    es = embed_folder(
        emb,
        args.root,
        aligned=holds_crops(args.root, emb.spec, args.model, asserted=args.aligned),
        detector=args.detector,
        flip=args.flip,
        batch_size=args.batch_size,
        workers=args.workers,
        engine=args.engine,
        progress=not args.quiet,
    )
    es.save(args.out)
    print(
        f"embedded {len(es)} images ({int(es.found.sum())} with a face found) "
        f"from {es.meta.get('model')} -> {args.out}"
    )
    for path, reason in sorted(es.errors.items()):
        print(f"skipped {path}: {reason}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    _check_inputs(args, [args.model])
    from facemetric.evaluate.report import MARKDOWN_NAME, write_report
    from facemetric.evaluate.run import evaluate

    evaluation = evaluate(_evaluate_config(args, args.model))
    path = write_report(evaluation, args.out, map_method=args.map)
    for warning in evaluation.metrics.get("warnings", []):
        print(f"facemetric: warning: {warning}", file=sys.stderr)
    if args.json:
        print(path.read_text(encoding="utf-8"))
    else:
        print((args.out / MARKDOWN_NAME).read_text(encoding="utf-8").split("\n## Plots")[0])
        print(f"report: {path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    _check_inputs(args, list(args.runs))
    from facemetric.evaluate.compare import CompareConfig, compare, render_terminal

    config = CompareConfig(
        runs=list(args.runs),
        protocol=_evaluate_config(args, None),
        metric=args.metric,
        promote=args.promote,
        out=args.out,
        force=args.force,
    )
    result = compare(config)
    print(render_terminal(result))
    if args.out is not None:
        print(f"table: {args.out / 'comparison.md'}")
    return 0
