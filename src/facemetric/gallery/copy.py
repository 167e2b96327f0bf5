"""``facemetric gallery copy SRC DST``: a gallery from one store into another (SQLite <->
PostgreSQL, or two of a kind), with every face's chip, landmarks, quality and the embeddings of
every model.

A face is the same face when the same person already has a face of the same kind with the same
content hash, so copying again adds nothing and a copy that was killed goes on where it stopped:
faces go in blocks, one transaction each (a kill leaves whole blocks). People keep their names;
ids are the destination's own (it may have people of its own).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from facemetric.gallery.store import ID_BLOCK, GalleryStore, insert_embeddings, insert_faces, now

BLOCK = 500  # faces per transaction


@dataclass
class CopyReport:
    people: int = 0  # people copied (new or with new faces)
    faces: int = 0  # faces copied
    embeddings: int = 0
    skipped: int = 0  # faces the destination had already


FACE_COLUMNS = (
    "kind, source, crop_png, box, landmarks, created, chip_template, chip_landmarks, "
    "content_sha256, quality"
)


def copy_gallery(
    src: GalleryStore,
    dst: GalleryStore,
    progress: Callable[[int], None] | None = None,
    block: int = BLOCK,
) -> CopyReport:
    """Copy every person of ``src`` with their faces and embeddings into ``dst``; ``progress``
    is told how many faces each block handled."""
    report = CopyReport()
    with src.backend.read() as con:
        people = con.execute("SELECT id, name, created FROM people ORDER BY id").fetchall()
    for person_id, name, created in people:
        have = _digests(dst, str(name))
        copied_any = False
        last = 0
        while True:
            with src.backend.read() as con:
                rows = con.execute(
                    f"SELECT id, {FACE_COLUMNS} FROM faces WHERE person_id = ? AND id > ? "
                    "ORDER BY id LIMIT ?",
                    (int(person_id), last, block),
                ).fetchall()
                vectors = _embeddings(con, [int(r[0]) for r in rows])
            if not rows:
                break
            last = int(rows[-1][0])
            fresh = []
            for row in rows:
                digest = row[9] or hashlib.sha256(bytes(row[3])).hexdigest()
                if (str(row[1]), str(digest)) in have:
                    report.skipped += 1
                    continue
                have.add((str(row[1]), str(digest)))
                fresh.append((row, digest))
            if fresh:
                report.embeddings += _write(dst, str(name), str(created), fresh, vectors)
                report.faces += len(fresh)
                copied_any = True
            if progress is not None:
                progress(len(rows))
        if not copied_any and _person_missing(dst, str(name)):
            dst.add_person(str(name))  # a person with no faces yet is copied too
            copied_any = True
        report.people += int(copied_any)
    return report


def _digests(store: GalleryStore, name: str) -> set[tuple[str, str]]:
    with store.backend.read() as con:
        rows = con.execute(
            "SELECT f.kind, f.content_sha256 FROM faces f JOIN people p ON p.id = f.person_id "
            "WHERE p.name = ? AND f.content_sha256 IS NOT NULL",
            (name,),
        ).fetchall()
    return {(str(k), str(d)) for k, d in rows}


def _person_missing(store: GalleryStore, name: str) -> bool:
    with store.backend.read() as con:
        return con.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone() is None


def _embeddings(con: object, face_ids: list[int]) -> dict[int, list[tuple[str, int, bytes]]]:
    out: dict[int, list[tuple[str, int, bytes]]] = {}
    for start in range(0, len(face_ids), ID_BLOCK):
        chunk = face_ids[start : start + ID_BLOCK]
        marks = ",".join("?" * len(chunk))
        for face_id, key, dim, vector in con.execute(  # type: ignore[attr-defined]
            f"SELECT face_id, model_key, dim, vector FROM embeddings WHERE face_id IN ({marks})",
            chunk,
        ):
            out.setdefault(int(face_id), []).append((str(key), int(dim), bytes(vector)))
    return out


def _write(
    dst: GalleryStore,
    name: str,
    created: str,
    fresh: list[tuple[tuple[object, ...], str]],
    vectors: dict[int, list[tuple[str, int, bytes]]],
) -> int:
    """One block into ``dst`` in one transaction; returns the embeddings written."""
    written = 0
    with dst.backend.write() as con:
        row = con.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is None:
            row = con.execute(
                "INSERT INTO people (name, created) VALUES (?, ?) RETURNING id",
                (name, created or now()),
            ).fetchone()
        person_id = int(row[0])
        new_ids = insert_faces(
            con, [(person_id, *face[1:9], digest, face[10]) for face, digest in fresh]
        )
        embedded = [
            (new_id, key, dim, blob)
            for new_id, (face, _) in zip(new_ids, fresh, strict=True)
            for key, dim, blob in vectors.get(int(face[0]), [])  # type: ignore[call-overload]
        ]
        if embedded:
            insert_embeddings(con, embedded)
            written = len(embedded)
        dst.change(con, "face+", new_ids, person_id=person_id)
    return written
