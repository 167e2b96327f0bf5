"""The gallery's generation and change log.

Every change is one write transaction that advances the generation (a counter row, locked until
commit, so generations commit in order) and logs the faces it touched. Running servers follow
the log (``facemetric.gallery.live``) without reading the whole gallery again; the oldest
``CHANGES_KEPT`` rows are forgotten now and then, and a follower further behind reads
everything again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from facemetric.gallery.backend import Backend, Connection

CHANGES_KEPT = 100_000  # change-log rows kept; a follower further behind reads everything again


@dataclass(frozen=True)
class Changes:
    """What changed after a generation: the faces touched (added, removed, re-embedded or moved
    to another person); ``None`` from ``changes_since`` means the log no longer reaches back."""

    generation: int
    face_ids: frozenset[int]


def log_change(
    backend: Backend, con: Connection, op: str, face_ids: Iterable[int] = (), **what: Any
) -> int:
    """Inside a write: advance the generation and log ``op`` for ``face_ids`` (``what``:
    ``person_id``, ``model_key``); returns the new generation, which ``backend`` tells its
    followers once the write commits."""
    row = con.execute(
        "UPDATE gallery_state SET generation = generation + 1 WHERE id = 1 RETURNING generation"
    ).fetchone()
    generation = int(row[0])
    ids = list(face_ids)
    rows: list[tuple[Any, ...]] = [
        (generation, op, int(i), what.get("person_id"), what.get("model_key")) for i in ids
    ] or [(generation, op, None, what.get("person_id"), what.get("model_key"))]
    copy = getattr(con, "copy_rows", None)
    if copy is not None and len(rows) > 1:
        columns = ("generation", "op", "face_id", "person_id", "model_key")
        copy("changes", columns, ("int8", "text", "int8", "int8", "text"), rows)
    else:
        con.executemany(
            "INSERT INTO changes (generation, op, face_id, person_id, model_key) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
    if generation % 1000 == 0:  # now and then, forget the oldest changes
        floor = generation - CHANGES_KEPT
        if floor > 0:
            con.execute("DELETE FROM changes WHERE generation <= ?", (floor,))
            con.execute("UPDATE gallery_state SET changes_floor = ? WHERE id = 1", (floor,))
    backend.notify(con, generation)
    return generation


def current_generation(con: Connection) -> int:
    row = con.execute("SELECT generation FROM gallery_state WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def changes_since(con: Connection, generation: int) -> Changes | None:
    """The faces touched after ``generation`` (and the generation that includes them); None
    when the log was pruned past it."""
    state = con.execute(
        "SELECT generation, changes_floor FROM gallery_state WHERE id = 1"
    ).fetchone()
    current, floor = int(state[0]), int(state[1])
    if generation < floor:
        return None
    rows = con.execute(
        "SELECT face_id FROM changes WHERE generation > ? AND generation <= ? "
        "AND face_id IS NOT NULL",
        (generation, current),
    ).fetchall()
    return Changes(current, frozenset(int(r[0]) for r in rows))
