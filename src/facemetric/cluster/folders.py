"""Where ``facemetric cluster``'s groups go: a folder name per group (a known person's name or
``person-NNN``) and one folder per group holding links to (or copies of) its photos."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from facemetric.cluster.faces import ClusteredFace

MANIFEST_NAME = "cluster.json"
UNSORTED_FOLDER = "unsorted"


_UNSAFE = re.compile(r"[\x00-\x1f/\\:]+")


def folder_name(name: str) -> str:
    """A person's name as a folder name (no separators, never hidden, never empty)."""
    clean = _UNSAFE.sub("_", name).strip().lstrip(".")
    return clean or "person"


def name_groups(labels: np.ndarray, persons: list[str | None], known: bool) -> dict[int, str]:
    """Folder names per label: the known person most of a group's faces match (more than half
    of them), else ``person-NNN`` (1 = the largest group); -1 is ``unsorted``."""
    names: dict[int, str] = {-1: UNSORTED_FOLDER}
    used = {UNSORTED_FOLDER}
    n_groups = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    for g in range(n_groups):
        members = np.flatnonzero(labels == g)
        base = f"person-{g + 1:03d}"
        if known:
            votes = Counter(persons[i] for i in members if persons[i] is not None)
            if votes:
                who, n = votes.most_common(1)[0]
                if who is not None and n * 2 > len(members):
                    base = folder_name(who)
        name, k = base, 2
        while name in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name)
        names[g] = name
    return names


def _clear_previous(out: Path) -> None:
    """Remove the group folders a previous run wrote (as its manifest lists them)."""
    manifest = out / MANIFEST_NAME
    if not manifest.is_file():
        return
    try:
        folders = json.loads(manifest.read_text()).get("folders", [])
    except (OSError, ValueError, AttributeError):
        return
    for name in folders:
        target = out / str(name)
        if target.parent == out and target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)


def write_folders(
    out: Path, root: Path, faces: list[ClusteredFace], copy: bool
) -> dict[str, list[str]]:
    """One folder per group with each photo once (a link, or a copy with ``copy``)."""
    groups: dict[str, list[str]] = {}
    for face in faces:
        photos = groups.setdefault(face.group, [])
        if face.image not in photos:
            photos.append(face.image)
    _clear_previous(out)
    for group, photos in groups.items():
        folder = out / group
        folder.mkdir(parents=True, exist_ok=True)
        for rel in photos:
            src = (root / rel if root.is_dir() else root).resolve()
            dst = folder / rel.replace(os.sep, "__")
            if dst.is_symlink() or dst.exists():
                dst.unlink()
            if copy:
                shutil.copy2(src, dst)
            else:
                dst.symlink_to(src)
    return groups
