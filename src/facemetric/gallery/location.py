"""Where a gallery lives: ``open_backend(location)`` gives the backend a location names.

A path (no ``scheme://``) or ``sqlite:///path`` is a SQLite file (``facemetric.gallery.sqlite``);
``postgresql://`` (or ``postgres://``) a PostgreSQL database (``facemetric.gallery.postgres``,
imported only when one is opened). The backends know only their interface
(``facemetric.gallery.backend``); this module knows the backends.
"""

from __future__ import annotations

from pathlib import Path

from facemetric.errors import GalleryError
from facemetric.gallery.backend import Backend
from facemetric.gallery.sqlite import SQLiteBackend
from facemetric.redact import redact

POSTGRES_SCHEMES = ("postgresql", "postgres")


def scheme_of(location: str | Path) -> str:
    """``postgresql``, ``sqlite``, ...: a path (no ``scheme://``) is a SQLite file."""
    text = str(location)
    if "://" not in text:
        return "sqlite"
    return text.split("://", 1)[0].lower()


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


def open_backend(location: str | Path) -> Backend:
    """The backend for ``location``; ``GalleryError`` for a scheme facemetric does not know."""
    scheme = scheme_of(location)
    if scheme == "sqlite":
        return SQLiteBackend(str(location))
    if scheme in POSTGRES_SCHEMES:
        from facemetric.gallery.postgres import PostgresBackend  # psycopg only when used

        return PostgresBackend(str(location))
    raise GalleryError(
        f"{redact(str(location))}: unknown gallery location; use a file path, "
        f"sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
    )
