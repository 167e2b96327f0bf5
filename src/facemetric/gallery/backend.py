"""The backend interface: what a gallery's database gives the store, and its errors.

A gallery is a SQLite file (the embedded default: a path, or ``sqlite:///path``) or a PostgreSQL
database (``postgresql://user:password@host:port/dbname``, shared by several servers);
``facemetric.gallery.location`` opens the backend a location names. Each gives connections
that run the same portable SQL (``?`` placeholders, ``RETURNING``, ``ON CONFLICT``), read
snapshots and serialised write transactions, fills the schema's type placeholders, and tells
followers that the gallery changed (PostgreSQL ``LISTEN``/``NOTIFY``; SQLite by polling a
counter, which is a local read). The gallery's rules are written once above them, in
``facemetric.gallery.store``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Protocol

from facemetric.errors import GalleryError
from facemetric.redact import redact as redact  # re-exported: older callers import it here


class StoreUnavailableError(GalleryError):
    """The gallery's database cannot be reached now (a server down, a refused connection):
    reads of what is loaded go on, changes are refused (the API answers 503)."""


FULL = "database or disk is full"


class StoreFullError(StoreUnavailableError):
    """The gallery's disk (or database) is full: reads go on, changes are refused (507) until
    space is freed; ``/api/health`` says so."""


class Rows(Protocol):
    """What ``Connection.execute`` returns (a DB-API cursor)."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection inside a read snapshot or a write transaction."""

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Rows: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> Any: ...


class Backend(Protocol):
    kind: str  # "sqlite" | "postgresql"
    location: str  # what messages show: a path, or a URL without its password
    types: ClassVar[dict[str, str]]  # the schema's type placeholders
    integrity_errors: tuple[type[Exception], ...]  # a constraint refused a write
    database_errors: tuple[type[Exception], ...]  # anything the driver raises

    def exists(self) -> bool:
        """Is there a gallery (its tables) at this location?"""
        ...

    def prepare(self, create: bool) -> None:
        """Make the location usable (a SQLite file's folder) or say why it is not."""
        ...

    def read(self) -> contextlib.AbstractContextManager[Connection]:
        """One consistent snapshot for several reads."""
        ...

    def write(self) -> contextlib.AbstractContextManager[Connection]:
        """One transaction; writers are serialised, readers go on."""
        ...

    def name_lock(self, con: Connection, name: str) -> None:
        """Inside ``write()``: until it ends, no other transaction adds to person ``name``
        (two servers enrolling the same person at once stored each photo twice)."""
        ...

    def schema_lock(self, con: Connection) -> None:
        """Inside ``write()``: keep other processes from setting up the schema at once."""
        ...

    def table_exists(self, con: Connection, name: str) -> bool: ...

    def notify(self, con: Connection, generation: int) -> None:
        """Inside ``write()``: tell followers, once it commits, that the gallery changed."""
        ...

    def watch(self, on_change: Callable[[int | None], None]) -> Callable[[], None]:
        """Call ``on_change(generation or None)`` from a thread of the backend's whenever the
        gallery may have changed (None: reconnected, read it again); returns a function that
        stops watching. SQLite has no push: it returns a no-op and callers poll."""
        ...

    def ping(self) -> str | None:
        """None when the database answers now, else why not (for health checks)."""
        ...

    def close(self) -> None: ...
