"""Training: TrainConfig in, a run folder with checkpoints, metrics and a learning curve out."""

from facemetric.train.config import TrainConfig
from facemetric.train.trainer import train

__all__ = ["TrainConfig", "train"]
