"""Unknown faces in the gallery's database: kept faces, their groups, and what the user does
with them (name, merge, split off, dismiss) and retention.

The tables (``unknown_faces``, ``unknown_groups``, schema 3) live beside the gallery's, over the
same backends (SQLite, PostgreSQL), so the server, the CLI and several servers see one pool.
Every face belongs to exactly one group (a face alone is a group of one). Each change runs in one
write transaction that first advances the counter ``meta.unknown_generation``: that row stays
locked until commit (PostgreSQL serialises the pool's writers on it, SQLite's write lock already
does), and a process holding the groups in memory (``UnknownKeeper``) sees from it that someone
else changed them. Faces the user placed (merged, split off) are ``pinned``: automatic grouping
never moves them and never merges their group.

Naming a group enrols its faces as that person through the gallery's own enrolment
(``GalleryStore.add_faces``, or the caller's ``enrol``: the recognizer's ``add_records`` with its
checks), then deletes them from the unknown pool; their chips keep template and landmarks, so
any model can cut its crop from them as from a photo's chip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facemetric.errors import GalleryError
from facemetric.gallery.backend import Connection
from facemetric.gallery.records import FaceRecord, decode_chip
from facemetric.gallery.store import GalleryStore
from facemetric.unknown.writes import GENERATION_KEY, bump, delete_faces, load_vectors, prune

STATUSES = ("open", "dismissed")


class UnknownGroupNotFound(GalleryError):
    """No such unknown group (or face): the API answers 404."""


@dataclass(frozen=True)
class UnknownFace:
    id: int
    group_id: int
    seen_at: float
    source: str | None
    camera: str | None
    box: list[float] | None
    model_key: str
    pinned: bool
    bytes: int = 0


@dataclass(frozen=True)
class UnknownGroup:
    """A suggested person: ``size`` faces, the newest ``faces`` of them."""

    id: int
    created: float
    updated: float
    status: str
    note: str | None
    size: int
    faces: list[UnknownFace] = field(default_factory=list)

    def to_dict(self, image_url: Callable[[int], str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "size": self.size,
            "status": self.status,
            "note": self.note,
            "created": round(self.created, 3),
            "updated": round(self.updated, 3),
            "faces": [],
        }
        for f in self.faces:
            face = {
                "id": f.id,
                "seen_at": round(f.seen_at, 3),
                "source": f.source,
                "camera": f.camera,
                "pinned": f.pinned,
            }
            if image_url is not None:
                face["image_url"] = image_url(f.id)
            out["faces"].append(face)
        return out


@dataclass(frozen=True)
class Named:
    """What naming a group did: faces enrolled as ``name`` (``added``: their gallery ids;
    ``duplicates``: faces the person already had) and unknown faces removed."""

    name: str
    group_id: int
    added: list[int]
    duplicates: int
    removed: int


Enrol = Callable[[str, list[FaceRecord]], list[int]]


class UnknownStore:
    """The unknown pool of the gallery ``store`` (shares its connections)."""

    def __init__(self, store: GalleryStore) -> None:
        self.store = store
        self.backend = store.backend

    # ---- reading -------------------------------------------------------------------------------
    def generation(self) -> int:
        with self.backend.read() as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", (GENERATION_KEY,)).fetchone()
        return 0 if row is None else int(row[0])

    def count(self) -> int:
        with self.backend.read() as con:
            return int(con.execute("SELECT COUNT(*) FROM unknown_faces").fetchone()[0])

    def groups(
        self,
        statuses: Sequence[str] = ("open",),
        min_faces: int = 1,
        faces_per_group: int = 12,
        limit: int | None = None,
    ) -> list[UnknownGroup]:
        """Groups of ``statuses`` with at least ``min_faces`` faces, largest first (ties: the
        most recently updated first), each with its newest ``faces_per_group`` faces."""
        marks = ",".join("?" * len(statuses))
        sql = (
            "SELECT g.id, g.created, g.updated, g.status, g.note, COUNT(f.id) AS n "
            "FROM unknown_groups g JOIN unknown_faces f ON f.group_id = g.id "
            f"WHERE g.status IN ({marks}) GROUP BY g.id, g.created, g.updated, g.status, g.note "
            "HAVING COUNT(f.id) >= ? ORDER BY n DESC, g.updated DESC, g.id DESC"
        )
        params: list[Any] = [*statuses, int(min_faces)]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self.backend.read() as con:
            rows = con.execute(sql, params).fetchall()
            return [
                self._group(con, row, faces_per_group if faces_per_group > 0 else None)
                for row in rows
            ]

    def group(self, group_id: int, faces: int | None = None) -> UnknownGroup:
        """One group with its newest ``faces`` faces (None: all)."""
        with self.backend.read() as con:
            row = con.execute(
                "SELECT g.id, g.created, g.updated, g.status, g.note, "
                "(SELECT COUNT(*) FROM unknown_faces f WHERE f.group_id = g.id) "
                "FROM unknown_groups g WHERE g.id = ?",
                (int(group_id),),
            ).fetchone()
            if row is None:
                raise UnknownGroupNotFound(f"unknown group {group_id} does not exist")
            return self._group(con, row, faces)

    def face_image(self, face_id: int) -> bytes:
        """A kept face's chip (its stored bytes: JPEG, or PNG when kept by an older version)."""
        with self.backend.read() as con:
            row = con.execute(
                "SELECT chip_png FROM unknown_faces WHERE id = ?", (int(face_id),)
            ).fetchone()
        if row is None:
            raise UnknownGroupNotFound(f"unknown face {face_id} does not exist")
        return bytes(row[0])

    def vectors(self, model_key: str) -> list[tuple[int, int, np.ndarray, bool, str]]:
        """(face, group, vector, pinned, group status) of every face embedded by ``model_key``,
        in the order they were kept."""
        with self.backend.read() as con:
            return load_vectors(con, model_key)

    def _group(self, con: Connection, row: Any, faces: int | None) -> UnknownGroup:
        sql = (
            "SELECT id, group_id, seen_at, source, camera, box, model_key, pinned, bytes "
            "FROM unknown_faces WHERE group_id = ? ORDER BY seen_at DESC, id DESC"
        )
        params: list[Any] = [int(row[0])]
        if faces is not None:
            sql += " LIMIT ?"
            params.append(int(faces))
        members = [
            UnknownFace(
                int(i),
                int(g),
                float(t),
                src,
                cam,
                None if box is None else json.loads(box),
                str(key),
                bool(pin),
                int(size),
            )
            for i, g, t, src, cam, box, key, pin, size in con.execute(sql, params)
        ]
        gid, created, updated, status, note, size = row
        return UnknownGroup(
            int(gid), float(created), float(updated), str(status), note, int(size), members
        )

    # ---- what the user does --------------------------------------------------------------------
    def name(self, group_id: int, name: str, enrol: Enrol | None = None) -> Named:
        """Enrol every face of a group as ``name`` (a new or an existing person), then drop
        them from the pool. ``enrol(name, records)``: the enrolment to go through (default:
        the gallery's ``add_faces`` with the faces' stored embeddings)."""
        from facemetric.gallery.names import check_person_name

        name = check_person_name(name)
        with self.backend.read() as con:
            if (
                con.execute(
                    "SELECT 1 FROM unknown_groups WHERE id = ?", (int(group_id),)
                ).fetchone()
                is None
            ):
                raise UnknownGroupNotFound(f"unknown group {group_id} does not exist")
            rows = con.execute(
                "SELECT id, chip_png, chip_template, chip_landmarks, box, source, model_key, "
                "vector, quality FROM unknown_faces WHERE group_id = ? ORDER BY seen_at, id",
                (int(group_id),),
            ).fetchall()
        if not rows:
            raise UnknownGroupNotFound(f"unknown group {group_id} has no faces")
        records = [
            FaceRecord(
                chip=decode_chip(bytes(png)),
                chip_template=None if tpl is None else str(tpl),
                chip_landmarks=None if marks is None else np.asarray(json.loads(marks), np.float32),
                source=src,
                box=None if box is None else tuple(json.loads(box)),
                quality=None if quality is None else json.loads(quality),
                chip_png=bytes(png),
            )
            for _, png, tpl, marks, box, src, _, _, quality in rows
        ]
        if enrol is not None:
            added = enrol(name, records)
        else:
            keys = {str(r[6]) for r in rows}
            key = keys.pop() if len(keys) == 1 else None
            vectors = (
                np.stack([np.frombuffer(bytes(r[7]), np.float32) for r in rows])
                if key is not None
                else None
            )
            added = self.store.add_faces(name, records, key, vectors=vectors)
        ids = [int(r[0]) for r in rows]
        with self.backend.write() as con:
            bump(con)
            delete_faces(con, ids)
            con.execute("DELETE FROM unknown_groups WHERE id = ?", (int(group_id),))
        return Named(name, int(group_id), list(added), len(rows) - len(added), len(ids))

    def merge(self, into: int, others: Sequence[int]) -> UnknownGroup:
        """Move every face of ``others`` into group ``into``; they are pinned there."""
        others = [int(o) for o in others if int(o) != int(into)]
        if not others:
            raise GalleryError(f"merge: give another group than {into} to merge into it")
        now = time.time()
        with self.backend.write() as con:
            bump(con)
            for gid in (int(into), *others):
                if (
                    con.execute("SELECT 1 FROM unknown_groups WHERE id = ?", (gid,)).fetchone()
                    is None
                ):
                    raise UnknownGroupNotFound(f"unknown group {gid} does not exist")
            marks = ",".join("?" * len(others))
            con.execute(
                f"UPDATE unknown_faces SET group_id = ? WHERE group_id IN ({marks})",
                (int(into), *others),
            )
            con.execute("UPDATE unknown_faces SET pinned = 1 WHERE group_id = ?", (int(into),))
            con.execute(f"DELETE FROM unknown_groups WHERE id IN ({marks})", others)
            con.execute(
                "UPDATE unknown_groups SET updated = ?, status = 'open' WHERE id = ?",
                (now, int(into)),
            )
        return self.group(into)

    def split(self, group_id: int, face_id: int) -> UnknownGroup:
        """Take one face out of its group into a new group of its own (pinned there)."""
        now = time.time()
        with self.backend.write() as con:
            bump(con)
            row = con.execute(
                "SELECT group_id FROM unknown_faces WHERE id = ?", (int(face_id),)
            ).fetchone()
            if row is None or int(row[0]) != int(group_id):
                raise UnknownGroupNotFound(
                    f"unknown face {face_id} is not in unknown group {group_id}"
                )
            new = int(
                con.execute(
                    "INSERT INTO unknown_groups (created, updated, status) VALUES (?, ?, 'open') "
                    "RETURNING id",
                    (now, now),
                ).fetchone()[0]
            )
            con.execute(
                "UPDATE unknown_faces SET group_id = ?, pinned = 1 WHERE id = ?",
                (new, int(face_id)),
            )
            con.execute("UPDATE unknown_groups SET updated = ? WHERE id = ?", (now, int(group_id)))
            left = con.execute(
                "SELECT COUNT(*) FROM unknown_faces WHERE group_id = ?", (int(group_id),)
            ).fetchone()[0]
            if int(left) == 0:
                con.execute("DELETE FROM unknown_groups WHERE id = ?", (int(group_id),))
        return self.group(new)

    def dismiss(self, group_id: int, note: str | None = None) -> UnknownGroup:
        """Hide a group: it stays (so new faces of the same stranger join it, unseen) until
        retention removes its faces."""
        with self.backend.write() as con:
            bump(con)
            done = con.execute(
                "UPDATE unknown_groups SET status = 'dismissed', note = ?, updated = ? "
                "WHERE id = ? RETURNING id",
                (note, time.time(), int(group_id)),
            ).fetchone()
            if done is None:
                raise UnknownGroupNotFound(f"unknown group {group_id} does not exist")
        return self.group(group_id, faces=0)

    def prune(self, max_days: float | None, max_faces: int | None, now: float | None = None) -> int:
        """Retention: delete faces older than ``max_days`` and the oldest beyond ``max_faces``
        (rows and chips), then the groups left empty; returns the faces deleted."""
        with self.backend.write() as con:
            bump(con)
            gone = prune(con, max_days, max_faces, time.time() if now is None else now)
        return len(gone)
