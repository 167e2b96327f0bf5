"""A run's parts from its config: data sets, model (fresh, pretrained or --init), teacher."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, replace
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
from facemetric.models.checkpoint import load_checkpoint
from facemetric.models.embedder import spec_for
from facemetric.models.registry import backbone_info
from facemetric.models.resolve import resolve_model_path
from facemetric.train.config import (
    DEFAULT_INIT_LR,
    DEFAULT_LR,
    DEFAULT_MARGIN,
    DEFAULT_SIZE,
    TrainConfig,
)

log = logging.getLogger(__name__)

MIN_VAL_IDENTITIES = 2
CROP_SAMPLE = 200  # images whose size is read to tell crops from photos, per data folder


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


def refuse_photos(roots: list[str] | tuple[str, ...]) -> None:
    """``DatasetError`` for a data folder that holds photos rather than aligned crops: no
    ``prepare.json`` (so not made by ``facemetric data align``) and images that are not square
    or not all of one size. Square images of one size without it are taken as crops (the
    missing ``prepare.json`` is warned about by ``crops_template``)."""
    from PIL import Image

    from facemetric.data.prepare import read_crop_settings
    from facemetric.data.split import list_identity_images

    for root in roots:
        if read_crop_settings(root) is not None:
            continue
        paths = [p for imgs in list_identity_images(root).values() for p in imgs]
        step = max(1, len(paths) // CROP_SAMPLE)
        sizes: dict[str, tuple[int, int]] = {}
        for rel in paths[::step][:CROP_SAMPLE]:
            try:
                with Image.open(f"{root}/{rel}") as im:
                    sizes[rel] = im.size
            except (OSError, ValueError):
                continue  # unreadable files are reported when they are decoded
        odd = [f"{rel} {w}x{h}" for rel, (w, h) in sizes.items() if w != h]
        distinct = sorted(set(sizes.values()))
        if odd:
            detail = f"{len(odd)} of {len(sizes)} images looked at are not square ({odd[0]}, ...)"
        elif len(distinct) > 1:
            shown = ", ".join(f"{w}x{h}" for w, h in distinct[:4])
            more = ", ..." if len(distinct) > 4 else ""
            detail = f"its images come in {len(distinct)} sizes ({shown}{more})"
        else:
            continue
        raise DatasetError(
            f"{root} holds photos, not aligned face crops: {detail}, and it has no prepare.json "
            f"from facemetric data align; cut the faces out first: facemetric data align {root} "
            "CROPS, then train on CROPS (--no-check-crops trains on these images as they are)"
        )


def prepare_data(config: TrainConfig) -> RunData:
    """Training and validation samples: from ``--split`` lists, else identities held out by hash.

    Photos given as crops are refused (``refuse_photos``) unless ``config.check_crops`` is off;
    warnings name what leaves a run without validation (one person in val, too few people)."""
    roots = list(config.data)
    where = ", ".join(roots)
    if config.check_crops:
        refuse_photos(roots)
    if config.split:
        from facemetric.data.split import read_split

        split = read_split(config.split)
        if not split.train:
            raise DatasetError(f"{config.split}/train.txt: no images listed")
        train = samples_from_lists(roots, split.train, f"{config.split}/train.txt")
        val = samples_from_lists(roots, split.val, f"{config.split}/val.txt") if split.val else None
        split_desc = str(config.split)
        if val is None:
            log.warning(
                "%s/val.txt lists no people: training without validation (no early stopping, "
                "no threshold calibrated on held-out people)",
                config.split,
            )
        elif len(val.identities) < MIN_VAL_IDENTITIES:
            n = sum(len(split.identities(k)) for k in ("train", "val", "test"))
            log.warning(
                "only %d identity in val (%s): validation needs at least %d people; training "
                "without validation; with %d people use facemetric data split --val %g",
                *(len(val.identities), ", ".join(val.identities), MIN_VAL_IDENTITIES, n),
                _fraction_for(n),
            )
            val = None
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
            log.warning(
                "%s: only %d people: holding %d out for validation would leave %d to train on "
                "(at least %d people are needed for both); training without validation",
                *(where, n, n_val, n - n_val, n_val + 2 * MIN_VAL_IDENTITIES),
            )
    train = check_trainable(train, where, config.drop_singletons)
    if val is not None and (val.counts() >= 2).sum() < MIN_VAL_IDENTITIES:
        with_two = [val.identities[i] for i in (val.counts() >= 2).nonzero()[0]]
        log.warning(
            "%d of the %d validation people have 2 or more images (%s): validation pairs need "
            "at least %d such people; training without validation",
            *(len(with_two), len(val.identities), ", ".join(with_two) or "none"),
            MIN_VAL_IDENTITIES,
        )
        val = None
    return RunData(train, val, split_desc)


def _fraction_for(n: int) -> float:
    from facemetric.data.split import fraction_for

    return fraction_for(n, MIN_VAL_IDENTITIES)


def crops_template(roots: list[str] | tuple[str, ...], warn: bool = True) -> str | None:
    """The face template the crops of ``roots`` were cut with (their ``prepare.json``), or None
    when no folder says; ``DatasetError`` when they say different things."""
    from facemetric.data.prepare import read_crop_settings

    found: dict[str, str] = {}
    for root in roots:
        settings = read_crop_settings(root)
        if settings is not None:
            found[str(root)] = str(settings["template"])
        elif warn:
            log.warning(
                "%s has no prepare.json, so facemetric cannot tell how its faces were cut; "
                "crops for training come from: facemetric data align PHOTOS %s",
                root,
                root,
            )
    if len(set(found.values())) > 1:
        detail = ", ".join(f"{r}: {t}" for r, t in found.items())
        raise DatasetError(f"training folders hold crops of different templates ({detail})")
    return next(iter(found.values()), None)


def resolve_model_choice(config: TrainConfig) -> TrainConfig:
    """Fill in what depends on the model: which one (``init="dlib"`` when neither ``backbone``
    nor ``init`` is given), its backbone and input size, and the loss, learning rate, margin,
    frozen stages, augmentation and teacher that suit it (the backbone's fine-tuning recipe).
    Idempotent; errors name the field."""
    from facemetric.models.pretrained import DEFAULT_MODEL

    template = crops_template(config.data)
    if config.fine_tune:
        init = config.init or DEFAULT_MODEL
        spec = load_checkpoint(resolve_model_path(init)).spec
        if config.backbone is not None and config.backbone != spec.backbone:
            raise ConfigError(
                f"--backbone {config.backbone} with --init {init}: a fine-tune keeps the backbone "
                f"of the model it starts from ({spec.backbone}); give one of the two"
            )
        if template is not None and template != spec.alignment:
            raise DatasetError(
                f"{', '.join(config.data)}: crops cut for the {template} template, but "
                f"{init} needs {spec.alignment} crops; cut them for it: "
                f"facemetric data align PHOTOS OUT --model {init}"
            )
        tuned = backbone_info(spec.backbone).finetune
        freeze = config.freeze_stages
        teacher = config.teacher if config.teacher is not None else tuned.get("teacher")
        return _teacher_defaults(
            config,
            teacher if teacher != "none" else None,
            tuned,
            init=init,
            backbone=spec.backbone,
            dim=spec.embedding_dim,
            size=spec.input_size,
            lr=config.lr if config.lr is not None else tuned.get("lr", DEFAULT_INIT_LR),
            freeze_stages=freeze if freeze is not None else tuned.get("freeze_stages", 0),
            augment=config.augment if config.augment is not None else tuned.get("augment", True),
            loss=config.loss or tuned.get("loss", "triplet"),
            margin=config.margin if config.margin is not None else DEFAULT_MARGIN[spec.distance],
        )
    assert config.backbone is not None  # fine_tune is False only with a backbone
    spec = student_spec(config, template)
    return _teacher_defaults(
        config,
        config.teacher if config.teacher != "none" else None,
        {},
        size=spec.input_size,
        lr=config.lr if config.lr is not None else DEFAULT_LR,
        freeze_stages=config.freeze_stages or 0,
        augment=config.augment if config.augment is not None else True,
        loss=config.loss or "triplet",
        margin=config.margin if config.margin is not None else DEFAULT_MARGIN[spec.distance],
    )


def _teacher_defaults(
    config: TrainConfig, teacher: str | None, recipe: dict[str, Any], **fields: Any
) -> TrainConfig:
    """``config`` with ``fields`` and the teacher settings filled in: the flags given, else the
    model's fine-tuning recipe, else similarity x 1."""
    return replace(
        config,
        teacher=teacher,
        teacher_loss=config.teacher_loss or recipe.get("teacher_loss", "similarity"),
        teacher_weight=(
            config.teacher_weight
            if config.teacher_weight is not None
            else recipe.get("teacher_weight", 1.0)
        ),
        **fields,
    )


def student_spec(config: TrainConfig, template: str | None) -> ModelSpec:
    """The spec of a model trained from scratch: the backbone's needs, the config's sizes, and
    the template of the crops it trains on (what every later stage must cut for it)."""
    assert config.backbone is not None
    natural = backbone_info(config.backbone).spec_defaults.get("input_size", DEFAULT_SIZE)
    return spec_for(
        config.backbone,
        embedding_dim=config.dim,
        input_size=config.size or natural,
        dropout=config.dropout,
        alignment=template,
    )


def build_student(config: TrainConfig) -> tuple[EmbeddingNet, str]:
    """The model to train (``config`` resolved by ``resolve_model_choice``) and a sentence
    saying where its weights came from (for the log)."""
    if config.init:
        path = resolve_model_path(config.init)
        ckpt = load_checkpoint(path)
        spec = ckpt.spec
        model = ckpt.build().train()
        return model, f"initialised from {config.init} ({path}): fine-tuning it"
    spec = student_spec(config, crops_template(config.data, warn=False))
    model = build_model(spec, config.pretrained)
    if config.pretrained:
        return model, f"backbone initialised from pretrained weights: {config.pretrained}"
    return model, "RANDOM initialisation (no --pretrained, no --init): training from scratch"


def backbone_stages(model: EmbeddingNet) -> list[list[nn.Module]]:
    """The backbone split into stages from the input side, for ``--freeze-stages``.

    A body that lists its own stages (``stages()``, dlib's ResNet) is taken at its word.
    ResNet-like bodies: the stem (conv1, bn1) then layer1..layer4. Bodies built around a
    ``features`` sequence (MobileNet): each block of it. Anything else: its top-level children.
    """
    body = model.backbone.body if hasattr(model.backbone, "body") else model.backbone
    own_stages = getattr(body, "stages", None)
    if callable(own_stages):
        return [list(stage) for stage in own_stages()]
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


def build_teacher(name: str, **options: Any) -> Any:
    """``facemetric.train.teacher.build_teacher(name, **options)``, imported only when asked
    for."""
    try:
        module = importlib.import_module("facemetric.train.teacher")
    except ModuleNotFoundError as exc:
        if exc.name != "facemetric.train.teacher":
            raise ConfigError(f"--teacher {name}: a package it needs is missing ({exc})") from exc
        raise ConfigError(
            f"--teacher {name}: teachers are not available in this installation "
            "(facemetric.train.teacher is missing)"
        ) from exc
    return module.build_teacher(name, **options)
