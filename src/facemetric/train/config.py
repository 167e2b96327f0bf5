"""The training configuration: one typed dataclass, defaults in one place.

The CLI only fills these fields; ``resolved()`` checks them (errors name the field). Fields left
``None`` depend on the model: with no ``backbone`` and no ``init`` a run fine-tunes the default
pretrained model (``init="dlib"``), and ``loss``, ``lr``, ``margin``, ``freeze_stages``, ``size``,
``augment`` and the teacher then come from that model's fine-tuning recipe
(``facemetric.train.setup.resolve_model_choice`` fills them in). That resolved config is saved as
``config.json`` in the run folder and in every checkpoint's meta.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from facemetric.errors import ConfigError

# Defaults for from-scratch training and for fine-tuning an existing model (--init) whose
# backbone names no fine-tuning defaults of its own.
DEFAULT_LR = 1e-3
DEFAULT_INIT_LR = 1e-4
# Triplet margin by the space the loss measures in: cosine (L2-normalised embeddings) or the raw
# Euclidean space of a network such as dlib's (whose own training margin is 0.04).
DEFAULT_MARGIN = {"cosine": 0.2, "euclidean": 0.04}
DEFAULT_SIZE = 112
TEACHER_LOSSES = ("similarity", "embedding")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; see ``facemetric train --help`` for each field."""

    data: tuple[str, ...]
    out: str = "runs/default"
    split: str | None = None
    val_fraction: float = 0.1
    drop_singletons: bool = False
    # refuse data folders of photos (no prepare.json, images not square or of varying sizes)
    check_crops: bool = True
    # model: a backbone from scratch, or a model to fine-tune (default: the pretrained "dlib")
    backbone: str | None = None
    dim: int = 128
    size: int | None = None
    pretrained: str | None = None
    dropout: float = 0.0
    init: str | None = None
    freeze_stages: int | None = None
    # batches and loss
    batch_p: int = 16
    batch_k: int = 4
    # None: the model's fine-tuning recipe (dlib: pair_threshold), else triplet
    loss: str | None = None
    miner: str = "semihard"
    margin: float | None = None
    triplet_weight: float = 1.0
    # A frozen teacher run on every batch: a name (dlib), "init" (the model a fine-tune starts
    # from: keeps it close to what it knew), "none"; None: the model's recipe (fine-tuning) or none.
    teacher: str | None = None
    teacher_weight: float | None = None  # None: the recipe's, else 1
    teacher_loss: str | None = None  # similarity | embedding; None: the recipe's, else similarity
    augment: bool | None = None  # None: on from scratch, the model's recipe when fine-tuning
    # optimisation
    epochs: int = 30
    steps_per_epoch: int | None = None
    max_minutes: float | None = None
    lr: float | None = None
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.01
    patience: int = 5
    seed: int = 0
    resume: bool = False
    # machine
    device: str = "auto"
    precision: str = "auto"
    workers: int = 0
    cache: bool | None = None
    channels_last: bool = True
    # logging
    val_pairs: int = 4000
    log_every: int = 10
    progress: bool = True
    tensorboard: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return DEFAULT_INIT_LR if self.init else DEFAULT_LR

    @property
    def fine_tune(self) -> bool:
        """True when the run starts from a trained model (``--init``, or by default)."""
        return self.init is not None or self.backbone is None

    def resolved(self) -> TrainConfig:
        """A checked copy with derived values filled in; ``ConfigError`` names a bad field."""
        positive_ints = ("dim", "size", "batch_p", "batch_k", "epochs", "log_every", "val_pairs")
        for name in positive_ints:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value}: must be at least 1")
        if self.batch_p < 2:
            raise ConfigError(f"batch_p={self.batch_p}: a batch needs at least 2 identities")
        if self.batch_k < 2:
            raise ConfigError(f"batch_k={self.batch_k}: a batch needs 2 images per identity")
        if not self.data:
            raise ConfigError("data: give at least one folder of aligned crops")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch={self.steps_per_epoch}: must be at least 1")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"max_minutes={self.max_minutes}: must be positive")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"lr={self.lr}: must be positive")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction={self.val_fraction}: must be in [0, 1)")
        if self.margin is not None and self.margin < 0:
            raise ConfigError(f"margin={self.margin}: must be >= 0")
        if self.freeze_stages is not None and self.freeze_stages < 0:
            raise ConfigError(f"freeze_stages={self.freeze_stages}: must be >= 0")
        if self.teacher == "init" and not self.fine_tune:
            raise ConfigError(
                "teacher=init: the model a fine-tune starts from; a run from scratch has none"
            )
        if self.teacher_weight is not None and self.teacher_weight < 0:
            raise ConfigError(f"teacher_weight={self.teacher_weight}: must be >= 0")
        if self.freeze_stages and not self.fine_tune and not self.pretrained:
            raise ConfigError(
                "freeze_stages: freezing layers of a randomly initialised model makes no sense; "
                "use it with --init MODEL or --pretrained"
            )
        if self.teacher_loss is not None and self.teacher_loss not in TEACHER_LOSSES:
            raise ConfigError(
                f"teacher_loss={self.teacher_loss!r}: choose one of {', '.join(TEACHER_LOSSES)}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}"
            )
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"device={self.device!r}: choose one of {', '.join(DEVICES)}")
        if self.workers < 0:
            raise ConfigError(f"workers={self.workers}: must be >= 0")
        return replace(self, data=tuple(str(d) for d in self.data))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data"] = list(self.data)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["data"] = tuple(values.get("data", ()))
        return cls(**values)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
