"""Where a gallery lives: ``open_backend(location)`` gives the backend a location names.

A path (no ``scheme://``) or ``sqlite:///path`` is a SQLite file (``facemetric.gallery.sqlite``);
``postgresql://`` (or ``postgres://``) a PostgreSQL database (``facemetric.gallery.postgres``,
imported only when one is opened). The backends know only their interface
(``facemetric.gallery.backend``); this module knows the backends.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from facemetric.errors import GalleryError
from facemetric.gallery.backend import Backend
from facemetric.redact import redact

# scheme -> (module, class): a backend's module is imported only when a location names it
# (psycopg only for PostgreSQL)
BACKENDS = {
    "sqlite": ("facemetric.gallery.sqlite", "SQLiteBackend"),
    "postgresql": ("facemetric.gallery.postgres", "PostgresBackend"),
    "postgres": ("facemetric.gallery.postgres", "PostgresBackend"),
}


def scheme_of(location: str | Path) -> str:
    """``postgresql``, ``sqlite``, ...: a path (no ``scheme://``) is a SQLite file."""
    text = str(location)
    if "://" not in text:
        return "sqlite"
    return text.split("://", 1)[0].lower()


def open_backend(location: str | Path) -> Backend:
    """The backend for ``location``; ``GalleryError`` for a scheme facemetric does not know."""
    found = BACKENDS.get(scheme_of(location))
    if found is not None:
        module, name = found
        backend: Callable[[str], Backend] = getattr(importlib.import_module(module), name)
        return backend(str(location))
    raise GalleryError(
        f"{redact(str(location))}: unknown gallery location; use a file path, "
        f"sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
    )
