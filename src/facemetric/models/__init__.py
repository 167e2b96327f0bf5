"""Backbones, the embedding network, checkpoints and inference engines."""

from facemetric.models import backbones as _backbones  # noqa: F401  (the built-in backbones register)
from facemetric.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from facemetric.models.embedder import EmbeddingNet, ModelSpec, build_model
from facemetric.models.inference import Embedder, TorchEmbedder
from facemetric.models.loading import load_embedder
from facemetric.models.registry import available_backbones, create_backbone, register_backbone
from facemetric.models.resolve import resolve_model_path

__all__ = [
    "Checkpoint",
    "Embedder",
    "EmbeddingNet",
    "ModelSpec",
    "TorchEmbedder",
    "available_backbones",
    "build_model",
    "create_backbone",
    "load_checkpoint",
    "load_embedder",
    "register_backbone",
    "resolve_model_path",
    "save_checkpoint",
]
