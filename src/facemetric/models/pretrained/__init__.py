"""Pretrained face models by name, usable with no training (``--model dlib``, ``--init dlib``).

A pretrained model's weights ship inside an installed package, in that package's own format.
The first use converts them into a facemetric checkpoint (``convert.py``; composites of them:
``fused.py``) cached under ``$FACEMETRIC_HOME/pretrained/``, so every command reads it like any
trained model; the first load exports it to ONNX beside it (``facemetric.models.loading``).
When no model has been promoted, ``DEFAULT_MODEL`` is the model every command uses.
"""

from __future__ import annotations

from pathlib import Path

from facemetric.models.pretrained import dlib, faceres
from facemetric.models.pretrained.convert import (
    CACHE_FOLDER,
    converted_checkpoint,
    file_sha256,
    is_cached_pretrained,
)
from facemetric.models.pretrained.fused import composite_checkpoint, is_composite_name
from facemetric.models.pretrained.model import (
    DEFAULT_MODEL,
    PretrainedModel,
    available_pretrained,
    pretrained_info,
    register_pretrained,
)

__all__ = [
    "CACHE_FOLDER",
    "DEFAULT_MODEL",
    "PretrainedModel",
    "available_pretrained",
    "file_sha256",
    "is_cached_pretrained",
    "is_pretrained_name",
    "pretrained_checkpoint",
    "pretrained_info",
    "register_pretrained",
]


def is_pretrained_name(name: str) -> bool:
    """A registered model, or a composite of them (``dlib+faceres``, ``dlib:flip``)."""
    return name in available_pretrained() or is_composite_name(name)


def pretrained_checkpoint(name: str) -> Path:
    """The facemetric checkpoint of pretrained model (or composite) ``name``, converted on first
    use; ``ModelError`` names the file or the install to run when the weights are missing,
    truncated or of another network."""
    if name not in available_pretrained() and is_composite_name(name):
        return composite_checkpoint(name)
    return converted_checkpoint(name)


register_pretrained(dlib.DLIB)
register_pretrained(faceres.FACERES)
