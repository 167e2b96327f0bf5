"""What the gallery lists: its people and their faces (``Person``, ``Face``), and the reads that
list them and hand out a face's chip. Each read runs inside a connection the store opened
(``GalleryStore.backend.read()``), so several make one consistent snapshot."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from facemetric.errors import GalleryError
from facemetric.gallery.backend import Connection


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    face_count: int
    created: str


@dataclass(frozen=True)
class Face:
    """A face of a person (without its crop: ``GalleryStore.face_crop`` reads that)."""

    id: int
    person: str
    source: str | None
    box: tuple[float, float, float, float] | None
    landmarks: list[list[float]] | None
    created: str
    kind: str = "reference"
    quality: dict[str, Any] | None = None
    digest: str | None = None  # names the photo (or chip): image URLs carry it


def people(con: Connection) -> list[Person]:
    """Everyone, by name, with their number of reference faces."""
    rows = con.execute(
        "SELECT p.id, p.name, COUNT(f.id), p.created FROM people p "
        "LEFT JOIN faces f ON f.person_id = p.id AND f.kind = 'reference' "
        "GROUP BY p.id, p.name, p.created"
    ).fetchall()
    found = [Person(int(i), str(n), int(c), str(t)) for i, n, c, t in rows]
    return sorted(found, key=lambda p: p.name)


def faces_of(con: Connection, person: Person, kind: str | None) -> list[Face]:
    """The faces of ``person`` (of ``kind``; None: every kind) in the order they were added."""
    sql = (
        "SELECT id, source, box, landmarks, created, kind, quality, content_sha256 "
        "FROM faces WHERE person_id = ?"
    )
    params: list[Any] = [person.id]
    if kind is not None:
        sql += " AND kind = ?"
        params.append(kind)
    rows = con.execute(sql + " ORDER BY id", params).fetchall()
    return [
        Face(
            int(i),
            person.name,
            src,
            None if box is None else tuple(json.loads(box)),
            None if marks is None else json.loads(marks),
            str(t),
            str(k),
            None if q is None else json.loads(q),
            None if digest is None else str(digest),
        )
        for i, src, box, marks, t, k, q, digest in rows
    ]


def chip_bytes(con: Connection, face_id: int) -> bytes:
    """The stored bytes of a face's chip; ``GalleryError`` for an unknown id."""
    row = con.execute("SELECT crop_png FROM faces WHERE id = ?", (int(face_id),)).fetchone()
    if row is None:
        raise GalleryError(f"face {face_id} is not in the gallery")
    return bytes(row[0])


def face_picture(con: Connection, face_id: int) -> tuple[bytes, Face]:
    """A face's chip (stored bytes) with what is known of it; ``GalleryError`` for an unknown
    id."""
    row = con.execute(
        "SELECT f.crop_png, p.name, f.source, f.created, f.kind, f.content_sha256 "
        "FROM faces f JOIN people p ON p.id = f.person_id WHERE f.id = ?",
        (int(face_id),),
    ).fetchone()
    if row is None:
        raise GalleryError(f"face {face_id} is not in the gallery")
    png, name, source, created, kind, digest = row
    face = Face(int(face_id), str(name), source, None, None, str(created), str(kind))
    return bytes(png), replace(face, digest=None if digest is None else str(digest))


def count_faces(con: Connection) -> int:
    """Reference faces in the gallery."""
    row = con.execute("SELECT COUNT(*) FROM faces WHERE kind = 'reference'").fetchone()
    return int(row[0])
