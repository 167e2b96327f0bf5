"""Loading a model for inference: the engine (PyTorch, or ONNX Runtime when an export is there)
for what a user's MODEL argument names."""

from __future__ import annotations

import logging
from pathlib import Path

from facemetric.errors import ConfigError
from facemetric.models.checkpoint import load_checkpoint
from facemetric.models.export import OnnxEmbedder, export_onnx
from facemetric.models.inference import Embedder, Engine, TorchEmbedder
from facemetric.models.pretrained import is_cached_pretrained
from facemetric.models.resolve import resolve_model_path

log = logging.getLogger(__name__)


def load_embedder(
    model: str | Path | None = None, engine: Engine = "auto", device: str = "cpu"
) -> Embedder:
    """Load MODEL (checkpoint, run folder or 'best') for inference.

    ``engine="auto"`` uses ONNX Runtime when an exported ``.onnx`` sits beside the checkpoint
    and is newer than it, else PyTorch. A converted pretrained model is exported to ONNX the
    first time it is loaded so (``export_for_speed``).
    """
    path = resolve_model_path(model)
    onnx_path = path.with_suffix(".onnx")
    if engine in ("auto", "onnx") and device == "cpu":
        export_for_speed(path)
    if engine == "auto":
        fresh = onnx_path.is_file() and onnx_path.stat().st_mtime >= path.stat().st_mtime
        engine = "onnx" if fresh and device == "cpu" else "torch"
    if engine == "onnx":
        return OnnxEmbedder(load_checkpoint(path), onnx_path)
    if engine != "torch":
        raise ConfigError(f"engine: unknown value {engine!r}; use auto, torch or onnx")
    return TorchEmbedder(load_checkpoint(path), device=device)


def export_for_speed(path: Path) -> None:
    """Export a converted pretrained model (never edited in place) to ONNX beside it when it has
    no export yet: ONNX Runtime runs it several times faster at batch 1. A failure only costs
    the speed-up: PyTorch still runs the model."""
    onnx_path = path.with_suffix(".onnx")
    if not is_cached_pretrained(path) or onnx_path.is_file():
        return
    try:
        export_onnx(path)
    except Exception as exc:
        log.warning("model %s: no ONNX export (%s); PyTorch will run it", path.name, exc)
