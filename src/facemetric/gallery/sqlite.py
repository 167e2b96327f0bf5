"""The SQLite backend: one gallery file, WAL (readers read while one writer writes), a connection
per thread, ``BEGIN IMMEDIATE`` write transactions, ids that are never handed out twice
(``AUTOINCREMENT``). Followers poll the change counter: a read of a local file."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from facemetric.errors import GalleryError
from facemetric.gallery.backend import FULL, StoreFullError

BUSY_TIMEOUT_MS = 10_000


class SQLiteBackend:
    kind = "sqlite"
    integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
    database_errors: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)
    types: ClassVar[dict[str, str]] = {
        "ID": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "BLOB": "BLOB",
        "FLOAT": "REAL",  # SQLite's REAL is 64-bit
    }

    def __init__(self, location: str) -> None:
        # a path, sqlite:///abs/path or sqlite://rel/path
        self.path = Path(location.split("://", 1)[1] if "://" in location else location)
        self.location = str(self.path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self.full = False  # the last write failed for a full disk
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return self.path.is_file()

    def prepare(self, create: bool) -> None:
        if self.path.is_dir():
            raise GalleryError(f"{self.path}: is a folder, not a gallery file")
        if not self.path.is_file() and create:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
                )
                con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                _use_wal(con)
                con.execute("PRAGMA synchronous = NORMAL")
                con.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as exc:
                raise GalleryError(f"{self.path}: cannot open the gallery ({exc})") from exc
            self._local.con = con
            with self._lock:
                self._connections.append(con)
        return con

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        con = self._con()
        if con.in_transaction:  # nested in a write or read of this thread: same snapshot
            yield con
            return
        con.execute("BEGIN")
        try:
            yield con
        finally:
            con.execute("COMMIT")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException as exc:
            # SQLite ends the transaction itself on some errors (a full disk): rolling back
            # again said "cannot rollback - no transaction is active", hiding the reason.
            if con.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and _is_full(exc):
                self.full = True
                raise StoreFullError(f"the gallery's {FULL}") from None
            raise
        self.full = False

    @contextlib.contextmanager
    def foreign_keys_off(self) -> Iterator[None]:
        """For a migration that rebuilds tables (SQLite's documented procedure)."""
        con = self._con()
        con.execute("PRAGMA foreign_keys = OFF")
        try:
            yield
        finally:
            con.execute("PRAGMA foreign_keys = ON")

    def name_lock(self, con: Any, name: str) -> None:
        pass  # BEGIN IMMEDIATE already holds the file's write lock

    def schema_lock(self, con: Any) -> None:
        pass  # BEGIN IMMEDIATE already holds the file's write lock

    def table_exists(self, con: Any, name: str) -> bool:
        row = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    def notify(self, con: Any, generation: int) -> None:
        pass  # followers poll the counter

    def watch(self, on_change: Callable[[int | None], None]) -> Callable[[], None]:
        return lambda: None

    def ping(self) -> str | None:
        if self.full:  # until a write succeeds again
            return FULL
        try:
            self._con().execute("SELECT 1").fetchone()
        except (sqlite3.Error, GalleryError) as exc:
            return str(exc)
        return None

    def close(self) -> None:
        with self._lock:
            for con in self._connections:
                with contextlib.suppress(sqlite3.ProgrammingError):  # closed already
                    con.close()
            self._connections.clear()
        self._local = threading.local()


def _use_wal(con: sqlite3.Connection) -> None:
    """Switch to WAL, waiting out other connections as long as the busy timeout: SQLite answers
    this pragma "database is locked" at once, without its busy handler, while another
    connection opens a new file (three servers starting on one new gallery failed ~1 in 8)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            con.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _is_full(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or FULL in str(exc)
