"""A face on its way into the gallery: the checks it passes, the row it becomes, the statements
that write faces and embeddings, and the look-ups a write makes inside its transaction.

Shared by the store (``facemetric.gallery.store``) and the writers beside it that write many
faces at once (``bulk``, ``copy``, ``corrections``), so every way in follows the same rules.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.errors import GalleryError
from facemetric.gallery.backend import Connection
from facemetric.gallery.records import DEFAULT_CHIP_FORMAT, FaceRecord, encode_chip
from facemetric.gallery.skeleton import look_alike

if TYPE_CHECKING:
    from facemetric.data.align import AlignedFace

ID_BLOCK = 500  # ids per IN (...) list
KINDS = ("reference", "negative")  # a negative face: "this is not that person" (corrections)

FACE_INSERT = (
    "INSERT INTO faces (person_id, kind, source, crop_png, box, landmarks, created, "
    "chip_template, chip_landmarks, content_sha256, quality) VALUES "
)
INSERT_BLOCK = 200  # faces per INSERT statement
FACE_COLUMNS: tuple[str, ...] = ("person_id", "kind", "source", "crop_png", "box", "landmarks")
FACE_COLUMNS += ("created", "chip_template", "chip_landmarks", "content_sha256", "quality")
FACE_TYPES = ("int8", "text", "text", "bytea", *["text"] * 7)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---- checks --------------------------------------------------------------------------------------
def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise GalleryError(f"face kind: {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def check_crop(crop: np.ndarray, i: int) -> np.ndarray:
    arr = np.asarray(crop)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or arr.shape[0] < 8:
        raise GalleryError(
            f"face #{i + 1}: expected an aligned (S, S, 3) uint8 crop, got {arr.dtype} {arr.shape}"
        )
    return arr


def as_record(face: FaceRecord | AlignedFace | np.ndarray) -> FaceRecord:
    """A face to add from a record, an ``AlignedFace`` or a bare aligned crop."""
    if isinstance(face, FaceRecord):
        return face
    if isinstance(face, np.ndarray):
        return FaceRecord.from_crop(face)
    return FaceRecord.from_aligned(face)


# ---- rows and the statements that write them ---------------------------------------------------
def face_row(record: FaceRecord, kind: str, fmt: str) -> tuple[Any, ...]:
    """A record's columns: source, chip, box, landmarks | template, chip marks, digest, quality."""
    quality = getattr(record, "quality", None)
    return (
        record.source,
        record.chip_png if record.chip_png is not None else encode_chip(record.chip, fmt),
        json_or_none(record.box),
        json_or_none(record.landmarks),
        record.chip_template,
        json_or_none(record.chip_landmarks),
        record.digest(),
        None if quality is None else json.dumps(quality, sort_keys=True),
    )


def json_or_none(values: Any) -> str | None:
    if values is None:
        return None
    return json.dumps(np.asarray(values, dtype=float).round(3).tolist())


def insert_faces(con: Connection, rows: Sequence[Sequence[Any]]) -> list[int]:
    """Insert face rows (``FACE_INSERT``'s columns); their new ids in the rows' order. A
    backend with bulk copy (PostgreSQL) takes ids first and copies the rows; otherwise several
    rows go per statement, matched back by person, kind and content hash (unique among one
    person's new faces; two people may share a photo)."""
    copy = getattr(con, "copy_rows", None)
    if copy is not None and rows:
        new_ids: list[int] = con.new_ids("faces", len(rows))  # type: ignore[attr-defined]
        rows = [(i, *row) for i, row in zip(new_ids, rows, strict=True)]
        copy("faces", ("id", *FACE_COLUMNS), ("int8", *FACE_TYPES), rows)
        return new_ids
    ids: list[int] = []
    for start in range(0, len(rows), INSERT_BLOCK):
        block = rows[start : start + INSERT_BLOCK]
        values = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(block))
        flat = [v for row in block for v in row]
        sql = FACE_INSERT + values + " RETURNING id, person_id, kind, content_sha256"
        made = {
            (int(p), str(k), str(d)): int(i) for i, p, k, d in con.execute(sql, flat).fetchall()
        }
        ids += [made[(int(row[0]), str(row[1]), str(row[9]))] for row in block]
    return ids


def insert_embeddings(con: Connection, rows: Sequence[tuple[int, str, int, bytes]]) -> None:
    """Embeddings of new faces (face id, model key, dim, vector bytes), none there yet."""
    copy = getattr(con, "copy_rows", None)
    if copy is not None:
        columns = ("face_id", "model_key", "dim", "vector")
        copy("embeddings", columns, ("int8", "text", "int4", "bytea"), rows)
        return
    con.executemany(
        "INSERT INTO embeddings (face_id, model_key, dim, vector) VALUES (?, ?, ?, ?)", rows
    )


def put_embeddings(con: Connection, key: str, face_ids: Sequence[int], vectors: np.ndarray) -> None:
    """Store (or replace) one model's embeddings of faces, inside a write."""
    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    con.executemany(
        "INSERT INTO embeddings (face_id, model_key, dim, vector) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (face_id, model_key) DO UPDATE SET dim = excluded.dim, "
        "vector = excluded.vector",
        [(int(i), key, int(v.shape[0]), v.tobytes()) for i, v in zip(face_ids, vecs, strict=True)],
    )


# ---- look-ups inside a transaction ---------------------------------------------------------------
def id_blocks(ids: Sequence[int] | set[int]) -> Iterator[tuple[list[int], str]]:
    """The distinct ``ids`` in order, ``ID_BLOCK`` at a time, each with its ``?,?,...`` marks
    (bounded parameter lists)."""
    wanted = sorted({int(i) for i in ids})
    for start in range(0, len(wanted), ID_BLOCK):
        block = wanted[start : start + ID_BLOCK]
        yield block, ",".join("?" * len(block))


def person_id_of(con: Connection, name: str) -> int | None:
    row = con.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def photos_of(con: Connection, person_id: int, kind: str) -> set[str]:
    """Content hashes of the faces of ``kind`` the person ``person_id`` has."""
    rows = con.execute(
        "SELECT content_sha256 FROM faces WHERE person_id = ? AND kind = ? "
        "AND content_sha256 IS NOT NULL",
        (person_id, kind),
    ).fetchall()
    return {str(r[0]) for r in rows}


def known_photos(con: Connection, name: str, kind: str) -> set[str]:
    person_id = person_id_of(con, name)
    return set() if person_id is None else photos_of(con, person_id, kind)


def stored_chip_format(con: Connection) -> str:
    row = con.execute("SELECT value FROM meta WHERE key = 'chip_format'").fetchone()
    return DEFAULT_CHIP_FORMAT if row is None else str(row[0])


def no_look_alike(con: Connection, name: str) -> None:
    """``GalleryError`` when a person whose name looks like ``name`` is in the gallery."""
    names = [str(r[0]) for r in con.execute("SELECT name FROM people").fetchall()]
    other = look_alike(name, names)
    if other is not None:
        odd = ", ".join(
            f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in name if c not in other
        )
        raise GalleryError(
            f"name {name!r} looks like {other!r}, already in the gallery"
            + (f" ({odd})" if odd else "")
            + ": use that name, or one that reads differently"
        )
