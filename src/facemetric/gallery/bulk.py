"""Adding the faces of many people in one transaction: imports, ``gallery copy`` and any writer
with embeddings already computed.

``GalleryStore.add_faces`` writes one person per transaction; a durable commit and a dozen round
trips to a PostgreSQL server then cost more than the rows. Here a whole batch (hundreds of faces,
any number of people) is one transaction: the people are looked up (and created) with one
statement each way, the faces and their embeddings go in one bulk copy each, and the change log
gets one generation. The rules are ``add_faces``'s: all or nothing, a photo a person already has
(same content hash and kind) is skipped, chips are stored in the gallery's chip format unless a
record brings its chip already encoded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facemetric.errors import GalleryError
from facemetric.gallery.backend import Backend, Connection
from facemetric.gallery.changelog import log_change
from facemetric.gallery.names import check_person_name
from facemetric.gallery.records import FaceRecord, check_chip_format
from facemetric.gallery.rows import (
    check_crop,
    check_kind,
    face_row,
    insert_embeddings,
    insert_faces,
    now,
    stored_chip_format,
)

PersonFaces = tuple[str, Sequence[FaceRecord], "np.ndarray | None"]  # name, faces, vectors
NAME_BLOCK = 500  # names per IN (...) list


def add_many(
    backend: Backend,
    batch: Sequence[PersonFaces],
    model_key: str | None = None,
    kind: str = "reference",
    chip_format: str | None = None,
) -> list[list[int]]:
    """Add each ``(name, faces, vectors)`` of ``batch`` in one transaction; the new face ids per
    entry (empty where every face was there already). ``vectors`` (one row per face, or None)
    are embeddings precomputed by the model ``model_key``."""
    check_kind(kind)
    entries = []
    for name, records, vectors in batch:
        name = check_person_name(name)
        if not records:
            raise GalleryError(f"person {name!r}: no faces to add")
        for i, record in enumerate(records):
            check_crop(record.chip, i)
        if vectors is not None:
            if model_key is None:
                raise GalleryError("vectors: given without the model they belong to")
            if len(vectors) != len(records):
                raise GalleryError(f"vectors: {len(vectors)} rows for {len(records)} faces")
        entries.append((name, list(records), vectors))
    names = sorted({e[0] for e in entries})
    with backend.read() as con:
        known = _known_photos(con, names, kind)
        fmt = check_chip_format(chip_format) if chip_format else stored_chip_format(con)
    rows, vecs, owners, where = [], [], [], []  # where: (entry, position) of each new face
    for e, (name, records, vectors) in enumerate(entries):
        have = known.setdefault(name, set())
        for i, record in enumerate(records):
            digest = record.digest()
            if digest in have:
                continue
            have.add(digest)
            rows.append(face_row(record, kind, fmt))
            owners.append(name)
            where.append(e)
            if vectors is not None:
                vecs.append(np.asarray(vectors[i], np.float32))
    out: list[list[int]] = [[] for _ in entries]
    if not rows:
        return out
    created = now()
    with backend.write() as con:
        people = person_ids(con, dict.fromkeys(owners, created))
        face_rows = [
            (people[o], kind, *r[:4], created, *r[4:]) for o, r in zip(owners, rows, strict=True)
        ]
        ids = insert_faces(con, face_rows)
        with_vectors = [i for i, e in zip(ids, where, strict=True) if entries[e][2] is not None]
        embedded = [
            (face_id, model_key, int(v.shape[0]), np.ascontiguousarray(v).tobytes())
            for face_id, v in zip(with_vectors, vecs, strict=True)
        ]
        if embedded:
            insert_embeddings(con, embedded)  # type: ignore[arg-type]
        log_change(backend, con, "face+", ids)
    for face_id, e in zip(ids, where, strict=True):
        out[e].append(face_id)
    return out


def _known_photos(con: Connection, names: list[str], kind: str) -> dict[str, set[str]]:
    """Content hashes of the faces of ``kind`` each of ``names`` already has."""
    out: dict[str, set[str]] = {}
    for start in range(0, len(names), NAME_BLOCK):
        block = names[start : start + NAME_BLOCK]
        marks = ",".join("?" * len(block))
        for name, digest in con.execute(
            "SELECT p.name, f.content_sha256 FROM faces f JOIN people p ON p.id = f.person_id "
            f"WHERE p.name IN ({marks}) AND f.kind = ? AND f.content_sha256 IS NOT NULL",
            [*block, kind],
        ).fetchall():
            out.setdefault(str(name), set()).add(str(digest))
    return out


def person_ids(con: Connection, people: dict[str, str]) -> dict[str, int]:
    """The ids of ``people`` (name -> created), creating those missing; a name another writer
    creates meanwhile is taken, not refused (``ON CONFLICT DO NOTHING``, then read again)."""
    names = sorted(people)
    ids: dict[str, int] = {}
    for start in range(0, len(names), NAME_BLOCK):
        block = names[start : start + NAME_BLOCK]
        marks = ",".join("?" * len(block))
        sql = f"SELECT name, id FROM people WHERE name IN ({marks})"
        ids.update((str(n), int(i)) for n, i in con.execute(sql, block).fetchall())
        missing = [n for n in block if n not in ids]
        if missing:
            values = ",".join(["(?, ?)"] * len(missing))
            con.execute(
                f"INSERT INTO people (name, created) VALUES {values} ON CONFLICT (name) DO NOTHING",
                [v for n in missing for v in (n, people[n])],
            )
            marks = ",".join("?" * len(missing))
            sql = f"SELECT name, id FROM people WHERE name IN ({marks})"
            ids.update((str(n), int(i)) for n, i in con.execute(sql, missing).fetchall())
    return ids
