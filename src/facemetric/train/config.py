"""The training configuration: one typed dataclass, defaults in one place.

The CLI only fills these fields; ``resolved()`` checks them (errors name the field) and fills the
values that depend on others (learning rate with ``--init``). The resolved config is saved as
``config.json`` in the run folder and inside every checkpoint's meta.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from facemetric.errors import ConfigError

# Defaults for from-scratch training and for fine-tuning an existing model (--init).
DEFAULT_LR = 1e-3
DEFAULT_INIT_LR = 1e-4
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
    # model
    backbone: str = "resnet50"
    dim: int = 128
    size: int = 112
    pretrained: str | None = None
    dropout: float = 0.0
    init: str | None = None
    freeze_stages: int = 0
    # batches and loss
    batch_p: int = 16
    batch_k: int = 4
    loss: str = "triplet"
    miner: str = "semihard"
    margin: float = 0.2
    triplet_weight: float = 1.0
    teacher: str | None = None
    teacher_weight: float = 1.0
    teacher_cache: str | None = None  # .npy of teacher embeddings; default under FACEMETRIC_HOME
    augment: bool = True
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

    def resolved(self) -> TrainConfig:
        """A checked copy with derived values filled in; ``ConfigError`` names a bad field."""
        positive_ints = ("dim", "size", "batch_p", "batch_k", "epochs", "log_every", "val_pairs")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: must be at least 1")
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
        if self.margin < 0:
            raise ConfigError(f"margin={self.margin}: must be >= 0")
        if self.freeze_stages < 0:
            raise ConfigError(f"freeze_stages={self.freeze_stages}: must be >= 0")
        if self.freeze_stages and not self.init and not self.pretrained:
            raise ConfigError(
                "freeze_stages: freezing layers of a randomly initialised model makes no sense; "
                "use it with --init MODEL or --pretrained"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}"
            )
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"device={self.device!r}: choose one of {', '.join(DEVICES)}")
        if self.workers < 0:
            raise ConfigError(f"workers={self.workers}: must be >= 0")
        return replace(self, data=tuple(str(d) for d in self.data), lr=self.learning_rate)

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
