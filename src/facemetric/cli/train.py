"""``facemetric train``: arguments -> ``TrainConfig`` -> ``facemetric.train.train``.

Defaults live in ``TrainConfig``; flags left out keep them. Under ``torchrun`` the same command
trains with DDP (see ``scripts/train.sh --nproc N``).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields
from typing import Any

# Flags whose value maps one-to-one onto a TrainConfig field of the same name.
_FIELDS = (
    "out",
    "split",
    "val_fraction",
    "backbone",
    "dim",
    "size",
    "pretrained",
    "dropout",
    "init",
    "freeze_stages",
    "batch_p",
    "batch_k",
    "loss",
    "miner",
    "margin",
    "triplet_weight",
    "teacher",
    "teacher_weight",
    "teacher_loss",
    "epochs",
    "steps_per_epoch",
    "max_minutes",
    "lr",
    "weight_decay",
    "patience",
    "seed",
    "device",
    "precision",
    "workers",
    "log_every",
    "val_pairs",
)


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, but not "(default: None)" for options that are simply unset."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def register(sub: Any) -> None:
    """Add ``train`` to the top-level parser."""
    from facemetric.train.config import DEVICES, PRECISIONS, TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig)}
    p = sub.add_parser(
        "train",
        help="fine-tune the pretrained face network (or train a backbone) on aligned crops",
        description="Train a Triplet Network on aligned crops (DATA/person/*.png, made by "
        "facemetric data align). With no --backbone it fine-tunes the pretrained 'dlib' "
        "network in its own Euclidean space (dlib's pair loss, or --loss triplet; low lr, "
        "early stages frozen, the starting network as teacher); --backbone NAME trains that "
        "backbone from scratch (resnet50 is the seed's "
        "Model 3); --init MODEL fine-tunes any trained model. Several DATA folders are merged "
        "by identity name. The run folder gets config.json, metrics.jsonl, tb/, last.pt, "
        "best.pt and curve.png; the threshold is calibrated on held-out people at the end.",
        formatter_class=_DefaultsHelp,
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="folder(s) of aligned crops")
    p.add_argument("--out", default=defaults["out"], help="run folder (runs/NAME)")
    p.add_argument("--split", help="split folder from `facemetric data split` (train.txt, val.txt)")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=defaults["val_fraction"],
        help="without --split: share of identities held out for validation",
    )
    p.add_argument(
        "--drop-singletons",
        action="store_true",
        help="skip identities with a single image instead of failing",
    )
    p.add_argument(
        "--no-check-crops",
        action="store_true",
        help="train on folders without a prepare.json even when their images are not square "
        "or not of one size (by default such a folder is taken for photos and refused)",
    )
    p.add_argument(
        "--backbone",
        help="train this backbone from scratch (resnet50, resnet18, mobilenet_v3, iresnet50, "
        "...; default: fine-tune the pretrained dlib network)",
    )
    p.add_argument("--dim", type=int, default=defaults["dim"], help="embedding size")
    p.add_argument(
        "--size", type=int, help="input size in pixels (default: the model's, 112 from scratch)"
    )
    p.add_argument("--pretrained", help="'imagenet' (torchvision weights) or a local state dict")
    p.add_argument("--dropout", type=float, default=defaults["dropout"])
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="fine-tune this model: 'dlib' (the default without --backbone), a checkpoint, a "
        "run folder or 'best'",
    )
    p.add_argument(
        "--freeze-stages",
        type=int,
        help="freeze the first N backbone stages (default: the model's fine-tuning recipe, "
        "4 of dlib's 6; 0 from scratch)",
    )
    p.add_argument("--batch-p", type=int, default=defaults["batch_p"], help="identities per batch")
    p.add_argument("--batch-k", type=int, default=defaults["batch_k"], help="images per identity")
    p.add_argument(
        "--loss",
        default=defaults["loss"],
        help="triplet | pair_threshold (dlib's own) | arcface | cosface | arcface+triplet "
        "(default: the model's fine-tuning recipe, pair_threshold for dlib; triplet from scratch)",
    )
    p.add_argument(
        "--miner",
        default=defaults["miner"],
        help="triplet selection: semihard | hard | random | explicit",
    )
    p.add_argument(
        "--margin",
        type=float,
        help="triplet margin (default: 0.04 in the raw Euclidean space of dlib's network, "
        "0.2 on L2-normalised embeddings)",
    )
    p.add_argument(
        "--triplet-weight",
        type=float,
        default=defaults["triplet_weight"],
        help="weight of the triplet part of arcface+triplet",
    )
    p.add_argument(
        "--teacher",
        help="a frozen teacher run on every batch: dlib, init (the model a fine-tune starts "
        "from) or none (default: the fine-tuning recipe, init for dlib; none from scratch)",
    )
    p.add_argument(
        "--teacher-weight",
        type=float,
        help="weight of the teacher's loss (default: the recipe's, 3 for dlib; else 1)",
    )
    p.add_argument(
        "--teacher-loss",
        help="similarity: copy the batch's similarity matrix; embedding: match each face's "
        "embedding (needs the teacher's dimension; default: the recipe's, embedding for dlib; "
        "else similarity)",
    )
    augment = p.add_mutually_exclusive_group()
    augment.add_argument(
        "--augment",
        dest="augment",
        action="store_true",
        default=None,
        help="flip, zoom, shift and colour-jitter the crops (default: from scratch; not when "
        "fine-tuning dlib, whose recipe trains on the crops as they are)",
    )
    augment.add_argument(
        "--no-augment", dest="augment", action="store_false", help="train on the crops as they are"
    )
    p.add_argument("--epochs", type=int, default=defaults["epochs"])
    p.add_argument("--steps-per-epoch", type=int, help="default: images / (P x K)")
    p.add_argument("--max-minutes", type=float, help="time budget; the lr schedule fits into it")
    p.add_argument(
        "--lr",
        type=float,
        help="AdamW learning rate (default: 1e-3 from scratch; fine-tuning: the model's "
        "recipe, 1e-5 for dlib, else 1e-4)",
    )
    p.add_argument("--weight-decay", type=float, default=defaults["weight_decay"])
    p.add_argument(
        "--patience",
        type=int,
        default=defaults["patience"],
        help="early stopping: epochs without improvement (0 = off)",
    )
    p.add_argument("--seed", type=int, default=defaults["seed"])
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--device", default=defaults["device"], help=" | ".join(DEVICES))
    p.add_argument("--precision", default=defaults["precision"], help=" | ".join(PRECISIONS))
    p.add_argument(
        "--workers", type=int, default=defaults["workers"], help="decoding threads (0 = all cores)"
    )
    p.add_argument("--no-cache", action="store_true", help="decode images every batch")
    p.add_argument("--log-every", type=int, default=defaults["log_every"])
    p.add_argument("--val-pairs", type=int, default=defaults["val_pairs"])
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-tensorboard", action="store_true")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from facemetric import catalog
    from facemetric.cli.checks import need_folders, need_model
    from facemetric.train.config import TrainConfig

    # Everything that needs no torch first: a typo is reported in a fraction of a second.
    need_folders(args.data, "data folder")
    need_folders([args.split], "split folder")
    catalog.check_name(args.backbone, catalog.BACKBONES, "--backbone")
    catalog.check_name(args.loss, catalog.LOSSES, "--loss")
    catalog.check_name(args.miner, catalog.MINERS, "--miner")
    catalog.check_name(args.teacher, (*catalog.TEACHERS, "none"), "--teacher")
    if args.init:
        need_model(args.init)
    config = TrainConfig(
        data=tuple(args.data),
        drop_singletons=args.drop_singletons,
        check_crops=not args.no_check_crops,
        augment=args.augment,
        cache=False if args.no_cache else None,
        resume=args.resume,
        progress=not args.no_progress,
        tensorboard=not args.no_tensorboard,
        **{name: getattr(args, name) for name in _FIELDS},
    )
    config.resolved()  # field checks, still without torch
    from facemetric.train import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run = train(config)
    print(run)
    return 0
