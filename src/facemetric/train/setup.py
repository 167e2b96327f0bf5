"""A run's parts from its config: data sets, model (fresh, pretrained or --init), teacher."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

from torch import nn

from facemetric.data.dataset import (
    FaceSamples,
    check_trainable,
    load_samples,
    samples_from_lists,
)
from facemetric.errors import ConfigError, DatasetError
from facemetric.models import EmbeddingNet, ModelSpec, build_model
from facemetric.models.checkpoint import load_checkpoint, resolve_model_path
from facemetric.train.config import TrainConfig

log = logging.getLogger(__name__)

MIN_VAL_IDENTITIES = 2


@dataclass
class RunData:
    train: FaceSamples
    val: FaceSamples | None
    split: str

    def summary(self) -> dict[str, Any]:
        return {
            **self.train.summary(),
            "split": self.split,
            "val_identities": 0 if self.val is None else len(self.val.identities),
            "val_images": 0 if self.val is None else len(self.val),
        }


def prepare_data(config: TrainConfig) -> RunData:
    """Training and validation samples: from ``--split`` lists, else identities held out by hash."""
    roots = list(config.data)
    where = ", ".join(roots)
    if config.split:
        from facemetric.data.split import read_split

        split = read_split(config.split)
        if not split.train:
            raise DatasetError(f"{config.split}/train.txt: no images listed")
        train = samples_from_lists(roots, split.train, f"{config.split}/train.txt")
        val = samples_from_lists(roots, split.val, f"{config.split}/val.txt") if split.val else None
        split_desc = str(config.split)
    else:
        everything = load_samples(roots)
        train, val, split_desc = everything, None, "none"
        n = len(everything.identities)
        n_val = (
            max(MIN_VAL_IDENTITIES, round(config.val_fraction * n)) if config.val_fraction else 0
        )
        if n_val and n - n_val >= 2 * MIN_VAL_IDENTITIES:
            from facemetric.data.split import SplitConfig, make_split

            fraction = n_val / n
            held = make_split(
                {name: [name] for name in everything.identities},
                SplitConfig(val=fraction, test=0.0, seed=config.seed),
            )
            train, val = everything.subset(held.train), everything.subset(held.val)
            split_desc = (
                f"auto: {len(held.val)} identities held out for validation (seed {config.seed})"
            )
        elif n_val:
            log.warning("%s: too few identities (%d) to hold some out; no validation", where, n)
    train = check_trainable(train, where, config.drop_singletons)
    if val is not None and (val.counts() >= 2).sum() < MIN_VAL_IDENTITIES:
        log.warning("validation set has too few identities with 2+ images; no validation")
        val = None
    return RunData(train, val, split_desc)


def build_student(config: TrainConfig) -> tuple[EmbeddingNet, str]:
    """The model to train and a sentence saying where its weights came from (for the log)."""
    if config.init:
        path = resolve_model_path(config.init)
        ckpt = load_checkpoint(path)
        spec = ckpt.spec
        if (spec.backbone, spec.embedding_dim, spec.input_size) != (
            config.backbone,
            config.dim,
            config.size,
        ):
            log.info(
                "--init %s: using its architecture (%s, dim %d, %d px); --backbone/--dim/--size "
                "are ignored",
                path,
                spec.backbone,
                spec.embedding_dim,
                spec.input_size,
            )
        model = ckpt.build().train()
        return model, f"initialised from checkpoint {path}"
    spec = ModelSpec(
        backbone=config.backbone,
        embedding_dim=config.dim,
        input_size=config.size,
        dropout=config.dropout,
    )
    model = build_model(spec, config.pretrained)
    if config.pretrained:
        return model, f"backbone initialised from pretrained weights: {config.pretrained}"
    return model, "RANDOM initialisation (no --pretrained, no --init): training from scratch"


def backbone_stages(model: EmbeddingNet) -> list[list[nn.Module]]:
    """The backbone split into stages from the input side, for ``--freeze-stages``.

    ResNet-like bodies: the stem (conv1, bn1) then layer1..layer4. Bodies built around a
    ``features`` sequence (MobileNet): each block of it. Anything else: its top-level children.
    """
    body = model.backbone.body if hasattr(model.backbone, "body") else model.backbone
    if hasattr(body, "layer1"):
        stem = [m for name in ("conv1", "bn1") if (m := getattr(body, name, None)) is not None]
        layers = [[getattr(body, f"layer{i}")] for i in range(1, 5) if hasattr(body, f"layer{i}")]
        return [stem, *layers]
    children = list(body.children())
    features = children[0] if children else None
    if isinstance(features, nn.Sequential) and all(
        any(True for _ in m.children()) for m in features
    ):
        return [[m] for m in features]  # a sequence of blocks, each a container
    return [[m] for m in children if any(True for _ in m.parameters())]


def freeze_stages(model: EmbeddingNet, n: int) -> list[nn.Module]:
    """Stop gradients through the first ``n`` stages; returns them (kept in eval mode by caller)."""
    stages = backbone_stages(model)
    if n > len(stages):
        raise ConfigError(
            f"freeze_stages={n}: backbone {model.spec.backbone} has only {len(stages)} stages"
        )
    frozen = [m for stage in stages[:n] for m in stage]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "froze the first %d of %d backbone stages: %.1fM of %.1fM parameters still train",
        *(n, len(stages), trainable / 1e6, total / 1e6),
    )
    return frozen


def build_teacher(name: str) -> Any:
    """``facemetric.train.teacher.build_teacher(name)``, imported only when asked for."""
    try:
        module = importlib.import_module("facemetric.train.teacher")
    except ModuleNotFoundError as exc:
        if exc.name != "facemetric.train.teacher":
            raise ConfigError(f"--teacher {name}: a package it needs is missing ({exc})") from exc
        raise ConfigError(
            f"--teacher {name}: teachers are not available in this installation "
            "(facemetric.train.teacher is missing)"
        ) from exc
    return module.build_teacher(name)
