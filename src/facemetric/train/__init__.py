"""Training: TrainConfig in, a run folder with checkpoints, metrics and a learning curve out.

``train`` is imported lazily so that reading ``TrainConfig`` (the CLI does, to build its parser)
does not load torch: every ``facemetric`` command would otherwise pay for it at start-up.
"""

from typing import TYPE_CHECKING, Any

from facemetric.train.config import TrainConfig

if TYPE_CHECKING:
    from facemetric.train.trainer import train

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from facemetric.train.trainer import train

        return train
    raise AttributeError(f"module 'facemetric.train' has no attribute {name!r}")
