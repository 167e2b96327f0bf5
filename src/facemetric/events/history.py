"""The record of who was seen where and when: events in the gallery database, listed and pruned.

``EventStore`` keeps events in the gallery's ``events`` table through the store's backend, so
the same code runs on SQLite and PostgreSQL. An event's images (the face chip as PNG, the
snapshot as JPEG) live in its own row: deleting the row deletes them, so retention and
``remove_person`` leave nothing behind (on SQLite with ``secure_delete`` the freed pages are
zeroed and the WAL truncated after a prune, so the bytes are gone from the files too). Events
point at their person by id and keep the name: a re-embed (same people, new embeddings) leaves
them alone; removing the person deletes them unless asked to keep them (then ``person_id`` is
set to NULL by the schema and the name stays). ``writer.HistorySink`` writes them from a
thread of its own.

The v3 schema has no ``closed`` or ``source`` column: whether an event was closed, and where it
came from (a server ``camera`` or a ``browser`` webcam), are kept in its stored decision JSON
under ``"_closed"`` and ``"_source"`` (stripped when read).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.errors import ConfigError, GalleryError
from facemetric.events.model import Event
from facemetric.events.notify import json_default
from facemetric.gallery.store import GalleryStore

ROW_BYTES = 200  # what a row costs besides its images, in the size that retention counts
MAX_LIMIT = 1000  # events per page, at most
DELETE_BLOCK = 500
IMAGES = {"chip": "chip_png", "snapshot": "snapshot_jpeg"}
_COLUMNS = (
    "id, camera, person, nearest, first_seen, last_seen, similarity, frames, track_id, box, "
    "decision, CASE WHEN chip_png IS NULL THEN 0 ELSE 1 END, "
    "CASE WHEN snapshot_jpeg IS NULL THEN 0 ELSE 1 END"
)


@dataclass(frozen=True)
class StoredEvent:
    """An event as read back (no pixels) and which of its images are stored."""

    event: Event
    has_chip: bool
    has_snapshot: bool

    def to_dict(self) -> dict[str, Any]:
        """``Event.to_dict`` plus the URLs of its images (None when not stored)."""
        out = self.event.to_dict()
        eid = self.event.id
        out["chip_url"] = f"/api/events/{eid}/chip.png" if self.has_chip else None
        out["snapshot_url"] = f"/api/events/{eid}/snapshot.jpg" if self.has_snapshot else None
        return out


@dataclass(frozen=True)
class EventPage:
    """One page of events, newest first; ``next_before`` is the cursor of the next (older)
    page, None on the last one."""

    events: list[StoredEvent]
    next_before: str | None


@dataclass(frozen=True)
class Pruned:
    events: int
    bytes: int


MAX_ID = 2**63 - 1


def cursor_of(event: Event) -> str:
    return f"{event.first_seen!r}_{event.id}"


def parse_cursor(text: str) -> tuple[float, int]:
    try:
        first, _, ident = text.partition("_")
        when, number = float(first), int(ident)
    except ValueError:
        when, number = 0.0, -1
    if not (0 <= number <= MAX_ID) or not math.isfinite(when):  # SQLite's integers are 64-bit
        raise ConfigError(f"before: {text[:100]!r} is not a cursor this server handed out")
    return when, number


def _json(values: Any) -> str | None:
    if values is None:
        return None
    return json.dumps(np.asarray(values, dtype=float).round(1).tolist())


class EventStore:
    """Events of a gallery ``store`` (a ``GalleryStore`` or its location)."""

    def __init__(self, store: GalleryStore | str | Path) -> None:
        self._own = not isinstance(store, GalleryStore)
        self.store = store if isinstance(store, GalleryStore) else GalleryStore(store)
        self.backend = self.store.backend

    def close(self) -> None:
        if self._own:
            self.store.close()

    # ---- writing ---------------------------------------------------------------------------------
    def save(self, event: Event) -> int:
        """Insert ``event`` (or update its row when it has an id that is still stored); sets
        and returns its id."""
        chip = None
        if event.chip is not None:
            from facemetric.gallery.records import encode_png

            chip = encode_png(np.asarray(event.chip, dtype=np.uint8))
        snapshot = None if event.snapshot is None else bytes(event.snapshot)
        size = ROW_BYTES + len(chip or b"") + len(snapshot or b"")
        decision = json.dumps(
            {**(event.decision or {}), "_closed": bool(event.closed), "_source": event.source},
            default=json_default,
        )
        values = [
            event.person,
            event.nearest,
            float(event.last_seen),
            None if event.similarity is None else float(event.similarity),
            int(event.frames),
            _json(event.box),
            decision,
            chip,
            snapshot,
            size,
        ]
        with self.backend.write() as con:
            person_id = None
            if event.person is not None:
                row = con.execute(
                    "SELECT id FROM people WHERE name = ?", (event.person,)
                ).fetchone()
                person_id = None if row is None else int(row[0])
            if event.id is not None:
                row = con.execute(
                    "UPDATE events SET person_id = ?, person = ?, nearest = ?, last_seen = ?, "
                    "similarity = ?, frames = ?, box = ?, decision = ?, chip_png = ?, "
                    "snapshot_jpeg = ?, bytes = ? WHERE id = ? RETURNING id",
                    [person_id, *values, int(event.id)],
                ).fetchone()
                if row is not None:
                    return int(event.id)
            # new, or pruned while open: stored again as a new row
            row = con.execute(
                "INSERT INTO events (person_id, person, nearest, last_seen, similarity, frames, "
                "box, decision, chip_png, snapshot_jpeg, bytes, camera, first_seen, track_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [
                    person_id,
                    *values,
                    event.camera,
                    float(event.first_seen),
                    int(event.track_id),
                ],
            ).fetchone()
        event.id = int(row[0])
        return event.id

    def delete(self, event_ids: Sequence[int]) -> int:
        """Delete events (with their images) by id; returns how many there were."""
        ids = [int(i) for i in event_ids]
        gone = 0
        with self.backend.write() as con:
            self._secure(con)
            for start in range(0, len(ids), DELETE_BLOCK):
                block = ids[start : start + DELETE_BLOCK]
                marks = ",".join("?" * len(block))
                gone += len(
                    con.execute(
                        f"DELETE FROM events WHERE id IN ({marks}) RETURNING id", block
                    ).fetchall()
                )
        self._truncate_log()
        return gone

    def prune(
        self,
        keep_days: float | None = None,
        max_bytes: int | None = None,
        now: float | None = None,
        trusted: Sequence[str] = (),
    ) -> Pruned:
        """Delete events last seen more than ``keep_days`` ago, then the oldest until the
        events take at most ``max_bytes`` (images plus ``ROW_BYTES`` a row). Events of cameras
        not in ``trusted`` (anyone's browser streams) go first: a flood of them cannot push
        the server-side cameras' events out."""
        now = time.time() if now is None else now
        events = freed = 0
        with self.backend.write() as con:
            self._secure(con)
            if keep_days is not None:
                rows = con.execute(
                    "DELETE FROM events WHERE last_seen < ? RETURNING bytes",
                    (now - float(keep_days) * 86400.0,),
                ).fetchall()
                events, freed = len(rows), sum(int(r[0]) for r in rows)
            if max_bytes is not None:
                total = int(con.execute("SELECT COALESCE(SUM(bytes), 0) FROM events").fetchone()[0])
                excess = total - int(max_bytes)
                doomed: list[int] = []
                if excess > 0:
                    marks = ",".join("?" * len(trusted)) or "NULL"
                    for ident, size in con.execute(
                        f"SELECT id, bytes FROM events ORDER BY CASE WHEN camera IN ({marks}) "
                        "THEN 1 ELSE 0 END, first_seen, id",
                        tuple(trusted),
                    ).fetchall():
                        doomed.append(int(ident))
                        excess -= int(size)
                        freed += int(size)
                        if excess <= 0:
                            break
                for start in range(0, len(doomed), DELETE_BLOCK):
                    block = doomed[start : start + DELETE_BLOCK]
                    con.execute(
                        f"DELETE FROM events WHERE id IN ({','.join('?' * len(block))})", block
                    )
                events += len(doomed)
        if events:
            self._truncate_log()
        return Pruned(events, freed)

    def _secure(self, con: Any) -> None:
        if self.backend.kind == "sqlite":  # freed pages are zeroed, not left readable
            con.execute("PRAGMA secure_delete = ON")

    def _truncate_log(self) -> None:
        if self.backend.kind == "sqlite":  # old page images leave the WAL too
            with self.backend.read() as con:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # ---- reading ---------------------------------------------------------------------------------
    def query(
        self,
        person: str | None = None,
        camera: str | None = None,
        since: float | None = None,
        until: float | None = None,
        known: bool | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> EventPage:
        """Events newest first (by first sight) that overlap [since, until], of ``person`` /
        ``camera`` / known or unknown faces when given; ``before`` is a page's cursor."""
        if not 1 <= int(limit) <= MAX_LIMIT:
            raise ConfigError(f"limit: {limit} is not between 1 and {MAX_LIMIT}")
        where, params = self._where(person, camera, since, until, known)
        if before:
            first, ident = parse_cursor(before)
            where.append("(first_seen < ? OR (first_seen = ? AND id < ?))")
            params += [first, first, ident]
        sql = f"SELECT {_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY first_seen DESC, id DESC LIMIT ?"
        with self.backend.read() as con:
            rows = con.execute(sql, [*params, int(limit) + 1]).fetchall()
        found = [_stored(r) for r in rows[: int(limit)]]
        more = len(rows) > int(limit)
        return EventPage(found, cursor_of(found[-1].event) if more and found else None)

    def iterate(self, page_size: int = 500, **filters: Any) -> Iterator[StoredEvent]:
        """Every event matching ``filters`` (as ``query``), newest first, a page at a time."""
        before = filters.pop("before", None)
        while True:
            page = self.query(limit=page_size, before=before, **filters)
            yield from page.events
            if page.next_before is None:
                return
            before = page.next_before

    def count(self, **filters: Any) -> int:
        where, params = self._where(**filters)
        sql = "SELECT COUNT(*) FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        with self.backend.read() as con:
            return int(con.execute(sql, params).fetchone()[0])

    def totals(self) -> tuple[int, int]:
        """Events stored and the size retention counts (bytes)."""
        with self.backend.read() as con:
            n, size = con.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM events").fetchone()
        return int(n), int(size)

    def facets(self) -> tuple[list[str], list[str]]:
        """The cameras and the people (by name) that have events."""
        with self.backend.read() as con:
            cameras = [str(r[0]) for r in con.execute("SELECT DISTINCT camera FROM events")]
            people = [
                str(r[0])
                for r in con.execute("SELECT DISTINCT person FROM events WHERE person IS NOT NULL")
            ]
        return sorted(cameras), sorted(people)

    def get(self, event_id: int) -> StoredEvent:
        with self.backend.read() as con:
            row = con.execute(
                f"SELECT {_COLUMNS} FROM events WHERE id = ?", (int(event_id),)
            ).fetchone()
        if row is None:
            raise GalleryError(f"event {event_id} is unknown (never stored, or pruned)")
        return _stored(row)

    def image(self, event_id: int, kind: str) -> bytes:
        """An event's ``chip`` (PNG) or ``snapshot`` (JPEG); ``GalleryError`` when it has none."""
        column = IMAGES[kind]
        with self.backend.read() as con:
            row = con.execute(
                f"SELECT {column} FROM events WHERE id = ?", (int(event_id),)
            ).fetchone()
        if row is None or row[0] is None:
            raise GalleryError(f"event {event_id}: unknown, or no {kind} stored")
        return bytes(row[0])

    @staticmethod
    def _where(
        person: str | None = None,
        camera: str | None = None,
        since: float | None = None,
        until: float | None = None,
        known: bool | None = None,
    ) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if person:
            where.append("person = ?")
            params.append(person)
        if camera:
            where.append("camera = ?")
            params.append(camera)
        if since is not None:
            where.append("last_seen >= ?")
            params.append(float(since))
        if until is not None:
            where.append("first_seen <= ?")
            params.append(float(until))
        if known is not None:
            where.append("person IS NOT NULL" if known else "person IS NULL")
        return where, params


def _stored(row: Sequence[Any]) -> StoredEvent:
    ident, camera, person, nearest, first, last, sim, frames, track, box, decision, chip, snap = row
    extra = json.loads(decision) if decision else {}
    closed = bool(extra.pop("_closed", False))
    source = str(extra.pop("_source", "camera"))
    event = Event(
        camera=str(camera),
        person=None if person is None else str(person),
        first_seen=float(first),
        last_seen=float(last),
        similarity=None if sim is None else float(sim),  # type: ignore[arg-type]
        track_id=int(track or 0),
        frames=int(frames),
        nearest=None if nearest is None else str(nearest),
        box=None if box is None else tuple(json.loads(box)),
        decision=extra,
        id=int(ident),
        closed=closed,
        source=source,
    )
    return StoredEvent(event, bool(chip), bool(snap))
