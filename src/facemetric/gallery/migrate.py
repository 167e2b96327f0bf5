"""Creating the gallery's tables and bringing older galleries up to the current schema.

An up-to-date gallery is only read. Otherwise one transaction (holding the backend's schema lock,
so two servers starting at once do not both do it) creates the tables or migrates: SQLite
galleries of versions 1 and 2 (the only backend that had them) are rebuilt in place; a gallery of
a newer version than this facemetric, or a database holding tables facemetric did not make, is
refused with a message naming it.
"""

from __future__ import annotations

import contextlib
import logging

from facemetric.errors import GalleryError
from facemetric.gallery.backend import Backend, Connection
from facemetric.gallery.schema import (
    SCHEMA_VERSION,
    SQLITE_FROM_1,
    SQLITE_FROM_2,
    TABLES,
    statements,
)

log = logging.getLogger(__name__)


def schema_version(backend: Backend, con: Connection) -> int | None:
    """The gallery's schema version; None when it has no schema yet."""
    if not backend.table_exists(con, "schema_version"):
        return None
    row = con.execute("SELECT version FROM schema_version").fetchone()
    return None if row is None else int(row[0])


def set_up_schema(backend: Backend) -> None:
    with backend.read() as con:
        version = schema_version(backend, con)
    if version == SCHEMA_VERSION:
        _set_storage(backend)
        return
    _refuse_newer(backend, version)
    rebuild = backend.kind == "sqlite" and version in (1, 2)
    keys_off = getattr(backend, "foreign_keys_off", None)
    guard = keys_off() if rebuild and keys_off is not None else contextlib.nullcontext()
    with guard, backend.write() as con:
        backend.schema_lock(con)
        version = schema_version(backend, con)  # another process may have done it meanwhile
        if version == SCHEMA_VERSION:
            return
        _refuse_newer(backend, version)
        generation = 0
        if version is None:
            if backend.table_exists(con, "people") or backend.table_exists(con, "faces"):
                raise GalleryError(
                    f"{backend.location}: holds tables that facemetric did not make (no "
                    "schema_version): use an empty database or another file"
                )
        elif backend.kind != "sqlite" or version not in (1, 2):
            raise GalleryError(
                f"{backend.location}: gallery schema {version} cannot be migrated by this "
                f"facemetric (schema {SCHEMA_VERSION})"
            )
        else:
            if version == 1:
                for sql in SQLITE_FROM_1:
                    con.execute(sql)
            row = (
                con.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
                if backend.table_exists(con, "meta")
                else None
            )
            generation = int(row[0]) if row else 0
            for sql in SQLITE_FROM_2:
                con.execute(sql)
        for sql in statements(TABLES, backend.types):
            con.execute(sql)
        if con.execute("SELECT 1 FROM gallery_state WHERE id = 1").fetchone() is None:
            con.execute(
                "INSERT INTO gallery_state (id, generation, changes_floor) VALUES (1, ?, ?)",
                (generation, generation),
            )
        con.execute("DELETE FROM schema_version")
        con.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        for sql in _storage_statements(backend, con):
            con.execute(sql)
        if rebuild:
            problems = con.execute("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise GalleryError(
                    f"{backend.location}: migration to schema {SCHEMA_VERSION} found "
                    f"{len(problems)} broken references; nothing was changed"
                )


def _storage_statements(backend: Backend, con: Connection) -> list[str]:
    """The backend's storage settings still to apply (PostgreSQL: images stored without a
    compression attempt); none for SQLite."""
    pending = getattr(backend, "storage_statements", None)
    return [] if pending is None else list(pending(con))


def _set_storage(backend: Backend) -> None:
    """Apply the storage settings a gallery made by an older facemetric lacks: one catalogue
    query when there is nothing to do, which is every time but once. A user who may not alter
    the tables (not their owner) still opens the gallery: only writing is slower."""
    with backend.read() as con:
        if not _storage_statements(backend, con):
            return
    try:
        with backend.write() as con:
            backend.schema_lock(con)
            for sql in _storage_statements(backend, con):
                con.execute(sql)
    except backend.database_errors as exc:
        log.warning("%s: image columns keep their storage (%s)", backend.location, exc)


def _refuse_newer(backend: Backend, version: int | None) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise GalleryError(
            f"{backend.location}: gallery schema {version} is newer than this facemetric "
            f"({SCHEMA_VERSION}); upgrade facemetric"
        )
