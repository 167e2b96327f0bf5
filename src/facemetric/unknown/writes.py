"""The unknown pool's rows, written inside a caller's write transaction: the pool's counter,
a kept face and the group ``Grouper`` placed it in, new groups, retention. ``UnknownStore``
(the user's actions) and ``UnknownKeeper`` (faces as they arrive) both write through these."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facemetric.gallery.backend import Connection
from facemetric.unknown.grouping import Placement

GENERATION_KEY = "unknown_generation"
DAY = 86_400.0


def bump(con: Connection) -> int:
    """Inside a write: advance (and lock) the unknown pool's counter; its new value."""
    con.execute(
        "INSERT INTO meta (key, value) VALUES (?, '0') ON CONFLICT (key) DO NOTHING",
        (GENERATION_KEY,),
    )
    row = con.execute(
        "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = ? "
        "RETURNING value",
        (GENERATION_KEY,),
    ).fetchone()
    return int(row[0])


def load_vectors(con: Connection, model_key: str) -> list[tuple[int, int, np.ndarray, bool, str]]:
    rows = con.execute(
        "SELECT f.id, f.group_id, f.vector, f.pinned, g.status FROM unknown_faces f "
        "JOIN unknown_groups g ON g.id = f.group_id WHERE f.model_key = ? ORDER BY f.id",
        (model_key,),
    ).fetchall()
    return [
        (int(i), int(g), np.frombuffer(bytes(v), np.float32), bool(p), str(s))
        for i, g, v, p, s in rows
    ]


def insert_face(
    con: Connection,
    group_id: int | None,
    seen_at: float,
    png: bytes,
    vector: np.ndarray,
    model_key: str,
    source: str | None = None,
    camera: str | None = None,
    chip_template: str | None = None,
    chip_landmarks: str | None = None,
    box: str | None = None,
    quality: str | None = None,
) -> int:
    vec = np.ascontiguousarray(vector, np.float32).tobytes()
    row = con.execute(
        "INSERT INTO unknown_faces (group_id, seen_at, source, camera, chip_png, chip_template, "
        "chip_landmarks, box, model_key, dim, vector, quality, bytes) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            None if group_id is None else int(group_id),
            float(seen_at),
            source,
            camera,
            png,
            chip_template,
            chip_landmarks,
            box,
            model_key,
            len(vec) // 4,
            vec,
            quality,
            len(png) + len(vec),
        ),
    ).fetchone()
    return int(row[0])


def apply_placement(con: Connection, face_id: int, placement: Placement, now: float) -> None:
    """Write where ``Grouper.add`` put the new face ``face_id`` (its row already inserted):
    the faces the local repair moved, the groups it emptied, then the automatic merges."""
    moves: dict[int, list[int]] = {}
    for face, group in placement.moved.items():
        moves.setdefault(group, []).append(face)
    for group, faces in moves.items():
        for start in range(0, len(faces), 500):
            chunk = faces[start : start + 500]
            marks = ",".join("?" * len(chunk))
            con.execute(
                f"UPDATE unknown_faces SET group_id = ? WHERE id IN ({marks})", (group, *chunk)
            )
    for gone, kept in placement.merges:
        con.execute("UPDATE unknown_faces SET group_id = ? WHERE group_id = ?", (kept, gone))
    con.execute(
        "UPDATE unknown_faces SET group_id = ? WHERE id = ?", (placement.group, int(face_id))
    )
    gone_groups = [*placement.closed, *(g for g, _ in placement.merges)]
    if gone_groups:
        marks = ",".join("?" * len(gone_groups))
        con.execute(f"DELETE FROM unknown_groups WHERE id IN ({marks})", gone_groups)
    con.execute("UPDATE unknown_groups SET updated = ? WHERE id = ?", (now, placement.group))


def new_group(con: Connection, now: float) -> int:
    row = con.execute(
        "INSERT INTO unknown_groups (created, updated, status) VALUES (?, ?, 'open') RETURNING id",
        (now, now),
    ).fetchone()
    return int(row[0])


def prune(
    con: Connection,
    max_days: float | None,
    max_faces: int | None,
    now: float,
    trusted: Sequence[str] = (),
) -> list[int]:
    """Delete faces past retention and the groups they leave empty; their ids. Over
    ``max_faces``, faces from sources not in ``trusted`` (uploads, browser streams) go first:
    anonymous uploads cannot push a camera's kept faces out."""
    gone: list[int] = []
    if max_days is not None:
        gone += [
            int(r[0])
            for r in con.execute(
                "SELECT id FROM unknown_faces WHERE seen_at < ?", (now - float(max_days) * DAY,)
            )
        ]
    if max_faces is not None:
        total = int(con.execute("SELECT COUNT(*) FROM unknown_faces").fetchone()[0])
        over = total - len(gone) - int(max_faces)
        if over > 0:
            seen = set(gone)
            marks = ",".join("?" * len(trusted)) or "NULL"
            rows = con.execute(
                f"SELECT id FROM unknown_faces ORDER BY CASE WHEN source IN ({marks}) THEN 1 "
                "ELSE 0 END, seen_at, id LIMIT ?",
                (*trusted, over + len(gone)),
            ).fetchall()
            extra = [int(r[0]) for r in rows if int(r[0]) not in seen][:over]
            gone += extra
    delete_faces(con, gone)
    return gone


def delete_faces(con: Connection, ids: Sequence[int]) -> None:
    """Delete faces by id and every group they leave empty."""
    block = 500
    for start in range(0, len(ids), block):
        chunk = [int(i) for i in ids[start : start + block]]
        marks = ",".join("?" * len(chunk))
        groups = [
            int(r[0])
            for r in con.execute(
                f"SELECT DISTINCT group_id FROM unknown_faces WHERE id IN ({marks})", chunk
            )
            if r[0] is not None
        ]
        con.execute(f"DELETE FROM unknown_faces WHERE id IN ({marks})", chunk)
        if groups:
            gmarks = ",".join("?" * len(groups))
            con.execute(
                f"DELETE FROM unknown_groups WHERE id IN ({gmarks}) AND NOT EXISTS "
                "(SELECT 1 FROM unknown_faces f WHERE f.group_id = unknown_groups.id)",
                groups,
            )
