"""Where facemetric keeps its state: the promoted model and the default gallery.

Everything lives under one folder, ``$FACEMETRIC_HOME`` (default ``~/.facemetric``), so a user
can move or wipe it as a whole and tests can point it at a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "FACEMETRIC_HOME"


def facemetric_home() -> Path:
    """The state folder; created on first use."""
    home = Path(os.environ.get(HOME_ENV) or Path.home() / ".facemetric").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def best_model_path() -> Path:
    """Checkpoint promoted by ``facemetric compare --promote``; the default model everywhere."""
    return facemetric_home() / "best.pt"


DB_ENV = "FACEMETRIC_DB"


def gallery_location(value: str | Path) -> str | Path:
    """A ``--db`` value as the store takes it: a URL as it is, a path with ``~`` expanded."""
    text = str(value)
    return text if "://" in text else Path(text).expanduser()


def default_gallery_path() -> str | Path:
    """The gallery used when no ``--db`` is given: ``$FACEMETRIC_DB`` (a file or a
    ``postgresql://`` URL) when set, else the embedded SQLite file in ``$FACEMETRIC_HOME``."""
    if os.environ.get(DB_ENV):
        return gallery_location(os.environ[DB_ENV])
    return facemetric_home() / "gallery.db"
