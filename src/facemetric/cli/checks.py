"""Checks of what a user typed that need nothing heavy: run first, so a mistyped path or name is
reported at once rather than after torch and the models have loaded."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from facemetric.catalog import PRETRAINED
from facemetric.errors import DatasetError, ModelError


def need_folders(paths: Iterable[str | Path | None], what: str = "folder") -> None:
    """``DatasetError`` naming the first path that is not an existing folder."""
    for raw in paths:
        if raw is None:
            continue
        path = Path(raw)
        if not path.exists():
            raise DatasetError(f"{path}: {what} not found")
        if not path.is_dir():
            raise DatasetError(f"{path}: not a folder (expected a {what})")


def need_paths(paths: Iterable[str | Path | None], what: str = "file or folder") -> None:
    """``DatasetError`` naming the first path that does not exist."""
    for raw in paths:
        if raw is not None and not Path(raw).exists():
            raise DatasetError(f"{raw}: no such {what}")


def need_model(model: str | Path | None) -> None:
    """``ModelError`` when MODEL is neither 'best', a pretrained name nor an existing path."""
    if model is None or str(model) == "best" or str(model) in PRETRAINED:
        return
    name = str(model).removesuffix(":flip")
    if all(part in PRETRAINED for part in name.split("+")):
        return  # a composite of pretrained models: dlib+faceres, dlib:flip
    if not Path(model).exists():
        raise ModelError(
            f"{model}: model not found (a checkpoint file, a run folder, 'best', a pretrained "
            f"model: {', '.join(PRETRAINED)}, or composites of them: A+B, A:flip)"
        )
