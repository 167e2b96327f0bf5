"""Rename every identity folder's images to ``<prefix>_<n>.<ext>`` without ever losing a file.

Layout: ``ROOT/<identity>/<image>``. Within each identity folder the images, in natural order of
their current names (``img2`` before ``img10``), become ``<prefix>_1.<ext>``, ``<prefix>_2.<ext>``,
... How the prefix and the folder name combine: ``prefix`` is a template in which ``{folder}``
stands for the identity folder's name, and the default prefix is ``"{folder}"`` itself. So
``rename_images_in_folder("faces")`` gives ``faces/A/A_1.jpg, faces/A/A_2.jpg, faces/B/B_1.jpg``;
``prefix="img_{folder}"`` gives ``faces/B/img_B_1.jpg``; a prefix without ``{folder}``, such as
``"A"``, is used as it is in every folder (``faces/B/A_1.jpg``).

Safety: the plan is written to a journal (``ROOT/.facemetric-rename.json``) before anything
moves; files then move in two phases, first to hidden temporary names, then to their final
names, and an existing name is never overwritten. Re-running after a crash completes the
interrupted run; ``undo=True`` puts every file back under its original name (also after a
completed run, as long as the journal is there). Extensions are normalised (``.JPG``, ``.jpeg``
-> ``.jpg``); non-image files, hidden files and sub-folders are left alone and reported.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facemetric.data.image import is_image_path
from facemetric.errors import ConfigError, DatasetError

JOURNAL_NAME = ".facemetric-rename.json"
TEMP_PREFIX = ".fmtmp-"
JOURNAL_VERSION = 1
# Spellings mapped to one canonical extension; every other image extension is only lower-cased.
EXTENSION_ALIASES = {".jpeg": ".jpg", ".jpe": ".jpg", ".tiff": ".tif"}
DEFAULT_PREFIX = "{folder}"

# Journal states: which direction is running and which of its two phases has started.
_FORWARD = ("forward-1", "forward-2")
_UNDO = ("undo-1", "undo-2")
_DONE = "done"


@dataclass(frozen=True)
class Move:
    """One file's rename, both paths relative to the data root."""

    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


@dataclass
class RenameResult:
    """What a rename (or undo) planned, what it did, and what it left alone."""

    root: Path
    planned: list[Move] = field(default_factory=list)
    done: list[Move] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # non-images, hidden files, sub-folders
    collisions: list[str] = field(default_factory=list)  # target names taken by non-plan entries
    missing: list[str] = field(default_factory=list)  # journal entries whose file had vanished
    dry_run: bool = False
    undo: bool = False
    resumed: bool = False  # an interrupted run (or undo) from the journal was completed first
    journal: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "planned": [[m.source, m.target] for m in self.planned],
            "done": [[m.source, m.target] for m in self.done],
            "skipped": list(self.skipped),
            "collisions": list(self.collisions),
            "missing": list(self.missing),
            "dry_run": self.dry_run,
            "undo": self.undo,
            "resumed": self.resumed,
            "journal": str(self.journal) if self.journal else None,
        }


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key putting ``img2`` before ``img10``; case-insensitive, ties broken by the name."""
    parts = re.split(r"(\d+)", name.casefold())
    key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p)
    return (key, name)


def normalise_extension(suffix: str) -> str:
    """``.JPG``/``.jpeg`` -> ``.jpg``; other extensions lower-cased."""
    low = suffix.lower()
    return EXTENSION_ALIASES.get(low, low)


def resolve_prefix(prefix: str | None, folder: str) -> str:
    """Expand the prefix template for one identity folder (see the module docstring)."""
    template = DEFAULT_PREFIX if prefix is None else prefix
    try:
        value = template.format_map({"folder": folder})
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"prefix {template!r}: only the placeholder {{folder}} is allowed ({exc})"
        ) from exc
    if (
        not value
        or value in (".", "..")
        or value.startswith(".")
        or any(c in value for c in ("/", "\\", "\0"))
    ):
        raise ConfigError(
            f"prefix {template!r} gives the file name stem {value!r} for folder {folder!r}: "
            "it must be non-empty, must not start with '.' and must not contain '/' or '\\'"
        )
    return value


def _identity_folders(root: Path, skipped: list[str]) -> list[Path]:
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    folders = []
    for entry in sorted(root.iterdir(), key=lambda p: natural_key(p.name)):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            folders.append(entry)
        elif entry.is_file():
            skipped.append(entry.name)
    if not folders:
        images = sum(1 for name in skipped if is_image_path(name))
        hint = f"; it holds {images} images directly: pass its parent folder" if images else ""
        raise DatasetError(f"{root}: no identity sub-folders (layout is ROOT/person/image){hint}")
    return folders


def plan_renames(
    root: str | Path, prefix: str | None = None
) -> tuple[list[Move], list[str], list[str]]:
    """The moves a rename would make (no-ops left out), the entries skipped, the collisions."""
    root = Path(root)
    skipped: list[str] = []
    collisions: list[str] = []
    moves: list[Move] = []
    for folder in _identity_folders(root, skipped):
        stem = resolve_prefix(prefix, folder.name)
        images: list[str] = []
        others: set[str] = set()
        for entry in folder.iterdir():
            rel = f"{folder.name}/{entry.name}"
            if entry.is_file() and is_image_path(entry.name) and not entry.name.startswith("."):
                images.append(entry.name)
            else:
                others.add(entry.name.casefold())
                if not entry.name.startswith(TEMP_PREFIX):
                    skipped.append(rel)
        n = 0
        for name in sorted(images, key=natural_key):
            ext = normalise_extension(Path(name).suffix)
            while True:
                n += 1
                target = f"{stem}_{n}{ext}"
                # A name held by something outside the plan (a folder, a hidden file) is never
                # touched; casefold so that case-insensitive file systems are safe too.
                if target.casefold() in others:
                    collisions.append(f"{folder.name}/{target}")
                    continue
                break
            if target != name:
                moves.append(Move(f"{folder.name}/{name}", f"{folder.name}/{target}"))
    return moves, skipped, collisions


# --- journal -----------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_journal(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _read_journal(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        moves = data["moves"]
        if data.get("version") != JOURNAL_VERSION or data["state"] not in (
            *_FORWARD,
            *_UNDO,
            _DONE,
        ):
            raise ValueError(f"unknown version or state {data.get('state')!r}")
        for m in moves:
            for key in ("source", "temp", "target"):
                if not isinstance(m[key], str) or ".." in Path(m[key]).parts:
                    raise ValueError(f"bad path in move {m!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(
            f"{path}: unreadable rename journal ({exc}); fix or remove it by hand"
        ) from exc
    return data


# --- the two-phase mover -----------------------------------------------------------------------


def _run_phases(
    root: Path,
    journal_path: Path,
    journal: dict[str, Any],
    steps: Sequence[tuple[str, str, str]],
    states: tuple[str, str],
    missing: list[str],
) -> None:
    """Move ``a -> temp`` for every step, then ``temp -> b``; resumable from the journal state.

    A step whose file is already where a phase puts it is skipped, so re-running after a crash
    at any point continues where it stopped.
    """
    lost: set[int] = set()
    if journal["state"] == states[0]:
        for i, (a, tmp, _b) in enumerate(steps):
            if os.path.lexists(root / tmp):
                continue
            if os.path.lexists(root / a):
                os.replace(root / a, root / tmp)
            else:
                lost.add(i)
        journal["state"] = states[1]
        _write_journal(journal_path, journal)
    for i, (a, tmp, b) in enumerate(steps):
        if not os.path.lexists(root / tmp):
            if i in lost or not os.path.lexists(root / b):
                missing.append(a)
            continue
        if os.path.lexists(root / b):
            raise DatasetError(
                f"{root / b}: already exists, so {root / tmp} was not moved there (nothing is "
                f"ever overwritten); move one of them away and run the same command again"
            )
        os.replace(root / tmp, root / b)


def _forward_steps(journal: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(m["source"], m["temp"], m["target"]) for m in journal["moves"]]


def _undo_steps(journal: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(m["target"], m["temp"], m["source"]) for m in journal["moves"]]


def _moves(journal: dict[str, Any], reverse: bool = False) -> list[Move]:
    return [
        Move(m["target"], m["source"]) if reverse else Move(m["source"], m["target"])
        for m in journal["moves"]
    ]


def _complete_journal(
    root: Path, journal_path: Path, journal: dict[str, Any], result: RenameResult
) -> None:
    """Finish an interrupted rename or undo recorded in the journal."""
    state = journal["state"]
    if state in _FORWARD:
        _run_phases(root, journal_path, journal, _forward_steps(journal), _FORWARD, result.missing)
        journal["state"] = _DONE
        _write_journal(journal_path, journal)
        result.done.extend(_moves(journal))
    elif state in _UNDO:
        _run_phases(root, journal_path, journal, _undo_steps(journal), _UNDO, result.missing)
        journal_path.unlink()
        result.done.extend(_moves(journal, reverse=True))


def rename_images_in_folder(
    root: str | Path,
    prefix: str | None = None,
    *,
    dry_run: bool = False,
    undo: bool = False,
) -> RenameResult:
    """Rename each ``ROOT/<identity>/`` folder's images to ``<prefix>_<n>.<ext>`` (n from 1).

    ``prefix`` may contain ``{folder}`` (the identity folder's name) and defaults to it; see the
    module docstring. ``dry_run`` only plans. ``undo`` restores the names recorded in the
    journal. Re-running completes an interrupted run first; a second run is a no-op. Raises
    ``DatasetError`` naming the path when ROOT is not a data folder or a name is taken.
    """
    root = Path(root)
    journal_path = root / JOURNAL_NAME
    result = RenameResult(root=root, dry_run=dry_run, undo=undo, journal=journal_path)
    journal = _read_journal(journal_path) if journal_path.exists() else None

    if undo:
        if journal is None:
            raise DatasetError(f"{journal_path}: no rename journal, so there is nothing to undo")
        if journal["state"] in _UNDO:
            result.resumed = True
        result.planned = _moves(journal, reverse=True)
        if dry_run:
            return result
        if journal["state"] == _FORWARD[0]:
            # Phase 1 never frees a source name, so moving temps straight back is safe.
            journal["state"] = _UNDO[1]
        elif journal["state"] != _UNDO[1]:
            journal["state"] = _UNDO[0]
        _write_journal(journal_path, journal)
        _complete_journal(root, journal_path, journal, result)
        return result

    if journal is not None and journal["state"] != _DONE:
        result.resumed = True
        if dry_run:
            forward = journal["state"] in _FORWARD
            result.planned = _moves(journal, reverse=not forward)
            return result
        _complete_journal(root, journal_path, journal, result)

    moves, result.skipped, result.collisions = plan_renames(root, prefix)
    result.planned.extend(moves)
    if dry_run or not moves:
        return result
    run_id = uuid.uuid4().hex[:10]
    entries = []
    for i, move in enumerate(moves):
        folder = move.source.split("/", 1)[0]
        temp = f"{folder}/{TEMP_PREFIX}{run_id}-{i}{Path(move.target).suffix}"
        entries.append({"source": move.source, "temp": temp, "target": move.target})
    journal = {
        "version": JOURNAL_VERSION,
        "prefix": prefix,
        "state": _FORWARD[0],
        "moves": entries,
    }
    _write_journal(journal_path, journal)
    _run_phases(root, journal_path, journal, _forward_steps(journal), _FORWARD, result.missing)
    journal["state"] = _DONE
    _write_journal(journal_path, journal)
    result.done.extend(moves)
    return result
