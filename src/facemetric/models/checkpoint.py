"""One self-describing checkpoint file per model.

A checkpoint holds the weights and everything needed to use them: the ``ModelSpec`` (backbone,
input size, normalisation, embedding size), the calibrated match threshold and a summary of the
training data. Writes are atomic (temporary file + rename), so a crash never leaves a half file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from facemetric.errors import ModelError
from facemetric.models.embedder import EmbeddingNet, ModelSpec

FORMAT_VERSION = 1
# Used only when a model was never calibrated; ``facemetric evaluate --calibrate`` replaces it.
DEFAULT_THRESHOLD = 0.5


@dataclass
class Checkpoint:
    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    threshold: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def build(self) -> EmbeddingNet:
        """The model with these weights, in eval mode on the CPU."""
        model = EmbeddingNet(self.spec)
        model.load_state_dict(self.state_dict)
        return model.eval()

    @property
    def match_threshold(self) -> float:
        return DEFAULT_THRESHOLD if self.threshold is None else float(self.threshold)

    @property
    def calibrated(self) -> bool:
        """Whether ``threshold`` was calibrated (see ``is_calibrated``)."""
        return is_calibrated(self.meta, self.threshold)


def is_calibrated(meta: dict[str, Any], threshold: float | None) -> bool:
    """True when a checkpoint's threshold was calibrated at a false accept rate (meta
    ``calibration``) or ships with a pretrained model, not left over from validation or unset
    (``DEFAULT_THRESHOLD``): only then may it decide matches without a warning."""
    return threshold is not None and bool(meta.get("calibration") or meta.get("pretrained"))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    path: str | Path,
    model: EmbeddingNet,
    threshold: float | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (unwrapped from DDP/compile by the caller) and its description."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format_version": FORMAT_VERSION,
        "spec": model.spec.to_dict(),
        "state_dict": state,
        "threshold": threshold,
        "meta": meta or {},
    }
    atomic_torch_save(payload, path)
    return Path(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; ``ModelError`` names the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable facemetric checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or "spec" not in payload or "state_dict" not in payload:
        raise ModelError(f"{path}: not a facemetric checkpoint (no spec/state_dict)")
    version = payload.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise ModelError(f"{path}: checkpoint format {version} is newer than this facemetric")
    return Checkpoint(
        spec=ModelSpec.from_dict(payload["spec"]),
        state_dict=payload["state_dict"],
        threshold=payload.get("threshold"),
        meta=dict(payload.get("meta") or {}),
        path=path,
    )


def update_checkpoint(path: str | Path, **fields: Any) -> None:
    """Atomically rewrite top-level fields (``threshold``) or ``meta`` entries of a checkpoint."""
    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in fields.items():
        if key == "threshold":
            payload["threshold"] = None if value is None else float(value)
        else:
            payload.setdefault("meta", {})[key] = value
    atomic_torch_save(payload, path)
