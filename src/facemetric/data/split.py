"""Identity-disjoint train/val/test splits written as lists of paths (no copies).

A split folder holds ``train.txt``, ``val.txt`` and ``test.txt`` (one image path per line,
relative to the data root, forward slashes) and ``split.json`` (seed, fractions, counts). Each
identity lands in exactly one list. The order of identities comes from a hash of the seed and
the identity name, so the same seed gives the same split on any machine, and adding identities
to a data set moves few of the existing ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from facemetric.data.image import is_image_path
from facemetric.errors import ConfigError, DatasetError

SUBSETS = ("train", "val", "test")
SPLIT_META = "split.json"
MIN_TRAIN_IDENTITIES = 2  # a triplet needs a negative from another identity
MIN_HELD_OUT = 2  # validation and test compare people: impostor pairs need two of them
WHAT_NEEDS = {"val": "validation", "test": "evaluation (and calibration)"}


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of identities held out for validation and test, and the seed."""

    val: float = 0.1
    test: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("val", "test"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name}={value}: a fraction must be in [0, 1)")
        if self.val + self.test >= 1.0:
            raise ConfigError(
                f"val={self.val} + test={self.test} >= 1: nothing would be left for training"
            )


@dataclass
class Split:
    """The three lists of image paths (relative to the data root) and the split's metadata."""

    train: list[str]
    val: list[str]
    test: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None

    def subset(self, name: str) -> list[str]:
        if name not in SUBSETS:
            raise ConfigError(f"subset {name!r}: expected one of {', '.join(SUBSETS)}")
        paths: list[str] = getattr(self, name)
        return paths

    def identities(self, name: str) -> list[str]:
        """Sorted identity names in one subset (the first component of each path)."""
        return sorted({identity_of(p) for p in self.subset(name)})


def identity_of(path: str) -> str:
    """The identity a split path belongs to: its folder under the data root."""
    return path.split("/", 1)[0]


def list_identity_images(root: str | Path) -> dict[str, list[str]]:
    """``{identity: [relative image paths]}`` for every identity folder with images, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    found: dict[str, list[str]] = {}
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        images = sorted(
            f"{folder.name}/{f.name}"
            for f in folder.iterdir()
            if f.is_file() and not f.name.startswith(".") and is_image_path(f.name)
        )
        if images:
            found[folder.name] = images
    return found


def _order_key(seed: int, identity: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{identity}".encode()).digest()


def _count(fraction: float, n: int) -> int:
    return max(1, round(fraction * n)) if fraction > 0 else 0


def fraction_for(n: int, people: int = MIN_HELD_OUT) -> float:
    """``people / n`` rounded up to two decimals (8 people: 0.25): a fraction that gives
    ``people`` of ``n`` identities and reads as one."""
    f = math.ceil(100 * people / n) / 100
    while _count(f, n) < people:
        f = round(f + 0.01, 2)
    return f


def split_warnings(counts: dict[str, dict[str, int]], config: SplitConfig) -> list[str]:
    """Sentences naming what a split's sizes make impossible (a val or test set of one person:
    no impostor pair, so no validation or evaluation) and the fraction that would fix it."""
    n = sum(c["identities"] for c in counts.values())
    out = []
    for name in ("val", "test"):
        have = counts[name]["identities"]
        if getattr(config, name) == 0 or have >= MIN_HELD_OUT:
            continue
        fix = fraction_for(n)
        other = config.test if name == "val" else config.val
        other_fixed = max(_count(other, n), MIN_HELD_OUT) if other > 0 else 0
        if _count(fix, n) + other_fixed > n - MIN_TRAIN_IDENTITIES:
            advice = (
                f"{n} people are too few to give {MIN_HELD_OUT} to {name} and keep "
                f"{MIN_TRAIN_IDENTITIES} for training beside the other held-out set; add people"
            )
        else:
            advice = f"with {n} people use --{name} {fix:g}"
        out.append(
            f"only {have} identity in {name}: {WHAT_NEEDS[name]} needs at least "
            f"{MIN_HELD_OUT} people; {advice}"
        )
    return out


def make_split(identity_images: dict[str, list[str]], config: SplitConfig) -> Split:
    """Assign whole identities to train/val/test (pure; nothing is read or written).

    ``meta["warnings"]`` names held-out sets too small to use (see ``split_warnings``)."""
    names = sorted(identity_images, key=lambda name: _order_key(config.seed, name))
    n = len(names)
    n_test, n_val = _count(config.test, n), _count(config.val, n)
    n_train = n - n_test - n_val
    if n_train < MIN_TRAIN_IDENTITIES:
        raise DatasetError(
            f"only {n} identities with images: val={config.val} and test={config.test} take "
            f"{n_val} and {n_test}, leaving {max(n_train, 0)} for training (at least "
            f"{MIN_TRAIN_IDENTITIES} needed); add identities or lower the fractions"
        )
    groups = {
        "test": names[:n_test],
        "val": names[n_test : n_test + n_val],
        "train": names[n_test + n_val :],
    }
    lists = {k: sorted(p for name in v for p in identity_images[name]) for k, v in groups.items()}
    counts = {k: {"identities": len(groups[k]), "images": len(lists[k])} for k in SUBSETS}
    meta = {
        "version": 1,
        "seed": config.seed,
        "fractions": {"val": config.val, "test": config.test},
        "counts": counts,
        "warnings": split_warnings(counts, config),
    }
    return Split(train=lists["train"], val=lists["val"], test=lists["test"], meta=meta)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_split(split: Split, out: str | Path) -> Path:
    """Write the three lists and ``split.json`` into ``out`` (created if needed)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in SUBSETS:
            paths = split.subset(name)
            _write_text_atomic(out / f"{name}.txt", "".join(f"{p}\n" for p in paths))
        _write_text_atomic(out / SPLIT_META, json.dumps(split.meta, indent=2) + "\n")
    except OSError as exc:
        raise DatasetError(f"{out}: cannot write the split there ({exc}); pass --out DIR") from exc
    split.folder = out
    return out


def split_dataset(
    root: str | Path, config: SplitConfig | None = None, out: str | Path | None = None
) -> Split:
    """Split ROOT's identities and write the lists to ``out`` (default: ROOT itself).

    Top-level files of a data root are not data, so the lists can live beside the identity
    folders. Returns the written ``Split``.
    """
    root = Path(root)
    config = config or SplitConfig()
    identity_images = list_identity_images(root)
    if not identity_images:
        raise DatasetError(f"{root}: no identity folders with images (layout is ROOT/person/image)")
    split = make_split(identity_images, config)
    split.meta["root"] = str(root.resolve())
    write_split(split, root if out is None else out)
    return split


def _read_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: split list missing") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable split list ({exc})") from exc
    paths = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        parts = PurePosixPath(line).parts
        if "\\" in line or line.startswith("/") or ".." in parts or len(parts) != 2:
            raise DatasetError(f"{path}:{number}: {line!r} is not a relative 'identity/image' path")
        paths.append(line)
    return paths


def read_split(folder: str | Path) -> Split:
    """Load a split written by ``write_split``; checks that identities are disjoint."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: split folder not found")
    lists = {name: _read_list(folder / f"{name}.txt") for name in SUBSETS}
    owner: dict[str, str] = {}
    for name in SUBSETS:
        for p in lists[name]:
            identity = identity_of(p)
            if owner.setdefault(identity, name) != name:
                raise DatasetError(
                    f"{folder}: identity {identity!r} is in both {owner[identity]}.txt and "
                    f"{name}.txt; splits must be identity-disjoint"
                )
    meta: dict[str, Any] = {}
    meta_path = folder / SPLIT_META
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{meta_path}: unreadable ({exc})") from exc
    return Split(
        train=lists["train"], val=lists["val"], test=lists["test"], meta=meta, folder=folder
    )
