"""Checks of what a user typed that need nothing heavy: run first, so a mistyped path or name is
reported at once rather than after torch and the models have loaded."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from facemetric.catalog import IMAGE_EXTENSIONS, PRETRAINED
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


def _photos(folder: Path) -> bool:
    """Whether ``folder`` holds an image file at any depth (hidden entries left out)."""
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).parts
        hidden = any(p.startswith(".") for p in rel)
        if path.suffix.lower() in IMAGE_EXTENSIONS and not hidden and path.is_file():
            return True
    return False


def need_photos(paths: Iterable[str | Path]) -> None:
    """``DatasetError`` when ``paths`` (files or folders searched at any depth) hold no image
    file: said before a model loads, which takes seconds."""
    if not any(Path(p).is_file() or (Path(p).is_dir() and _photos(Path(p))) for p in paths):
        raise DatasetError(f"no images in {', '.join(str(p) for p in paths)}")


def need_people_with_photos(root: str | Path) -> None:
    """``DatasetError`` when ``root`` has no person folder, or no person folder with a photo
    (``root/person/photo.jpg``), before a model loads."""
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{root}: no identity folders (expected root/person/photo.jpg)")
    if not any(_photos(folder) for folder in folders):
        names = ", ".join(f.name for f in folders[:3]) + (", ..." if len(folders) > 3 else "")
        raise DatasetError(
            f"{root}: no photos in its person folders ({names}); expected root/person/photo.jpg"
        )
