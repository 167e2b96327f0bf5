"""``HistorySink``: the ``EventSink`` that writes events to an ``EventStore`` from its own thread.

The recogniser only hands an event over (a dictionary update under a lock), never waits for the
database. An event's successive updates are merged while queued, so memory is bounded by the
events open plus those waiting; a database that is away is retried with backoff and reported in
``status()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from facemetric.events.history import EventStore
from facemetric.events.model import Event
from facemetric.gallery.backend import StoreUnavailableError

log = logging.getLogger(__name__)

GIVE_UP = 5  # failed writes of one event, for a reason other than an unavailable database


def _passing(exc: Exception) -> bool:
    """Is this a failure that passes (the database away, locked, a lost connection)?"""
    import sqlite3

    from facemetric.gallery.backend import StoreUnavailableError

    if isinstance(exc, StoreUnavailableError | sqlite3.OperationalError):
        return True
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(exc, psycopg.OperationalError)


class HistorySink:
    """Writes events to an ``EventStore`` from a thread of its own (never blocks the caller).

    Updates of one event waiting to be written are merged (the newest wins); at most
    ``max_pending`` events wait, beyond that the oldest waiting is dropped and counted. A
    failed write is retried with backoff (0.2 s doubling to ``max_backoff``); an event the
    database refuses for what it is (not because it is away or locked) is dropped after
    ``GIVE_UP`` tries, so it never holds up the others."""

    def __init__(
        self, history: EventStore, max_pending: int = 10_000, max_backoff: float = 10.0
    ) -> None:
        self.history = history
        self.max_pending = max_pending
        self.max_backoff = max_backoff
        self._pending: OrderedDict[tuple[str, int, float], tuple[Event, Event]] = OrderedDict()
        self._ids: dict[tuple[str, int, float], int] = {}  # open events already stored
        self._failures: dict[tuple[str, int, float], int] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._stop = False
        self.saved = 0
        self.dropped = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="facemetric-history", daemon=True)
        self._thread.start()

    @staticmethod
    def _key(event: Event) -> tuple[str, int, float]:
        return (event.camera, int(event.track_id), float(event.first_seen))

    def update(self, event: Event) -> None:
        self._put(event, closed=event.closed)

    def close_event(self, event: Event) -> None:
        self._put(event, closed=True)

    def _put(self, event: Event, closed: bool) -> None:
        key = self._key(event)
        with self._cond:
            if self._stop:
                return
            self._pending[key] = (event, replace(event, closed=closed))
            self._pending.move_to_end(key)
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
                self.dropped += 1
            self._cond.notify_all()

    def _run(self) -> None:
        delay = 0.2
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if not self._pending:
                    return
                key, (original, copy) = self._pending.popitem(last=False)
                self._busy = True
            try:
                if copy.id is None and key in self._ids:
                    copy.id = self._ids[key]
                ident = self.history.save(copy)
            except Exception as exc:  # the database away: keep it (unless newer) and retry
                with self._cond:
                    self._busy = False
                    failures = self._failures.get(key, 0) + 1
                    self._failures[key] = failures
                    if failures >= GIVE_UP and not _passing(exc):
                        # refused for what it is, not for where it goes: never blocks the rest
                        self._failures.pop(key, None)
                        self.dropped += 1
                        log.error("event history: an event of %s dropped: %s", key[0], exc)
                        self._cond.notify_all()
                        continue
                    if key not in self._pending:
                        self._pending[key] = (original, copy)
                        self._pending.move_to_end(key, last=False)
                    if self.error is None:
                        log.warning("event history: %s; retrying", exc)
                    # shown by the unauthenticated /api/health: not the database's address
                    unavailable = isinstance(exc, StoreUnavailableError)
                    self.error = "database unavailable" if unavailable else str(exc)
                    self._cond.notify_all()
                    if self._stop:
                        return  # closing: what could not be written is given up
                    self._cond.wait(delay)
                delay = min(self.max_backoff, delay * 2)
                continue
            delay = 0.2
            original.id = ident
            with self._cond:
                self._failures.pop(key, None)
                if copy.closed:
                    self._ids.pop(key, None)
                else:
                    self._ids[key] = ident
                if self.error is not None:
                    log.warning("event history: writing again")
                self.error = None
                self.saved += 1
                self._busy = False
                self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything handed over is written (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "state": "ok" if self.error is None else "retrying",
                "saved": self.saved,
                "pending": len(self._pending),
                "dropped": self.dropped,
                "error": self.error,
            }

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)
