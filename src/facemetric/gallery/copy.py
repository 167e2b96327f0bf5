"""``facemetric gallery copy SRC DST``: a gallery from one store into another (SQLite <->
PostgreSQL, or two of a kind), with every face's chip, landmarks, quality and the embeddings of
every model.

A face is the same face when the same person already has a face of the same kind with the same
content hash, so copying again adds nothing and a copy that was killed goes on where it stopped:
faces go in blocks, one transaction each (a kill leaves whole blocks). People keep their names;
ids are the destination's own (it may have people of its own). Chips keep their bytes (PNG,
JPEG or WebP as they were stored) unless ``chip_format`` asks for one format: then chips in
another format are decoded and stored again in it (lossy formats lose a little more each time,
so converting is asked for, never done on the way).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from facemetric.gallery.bulk import person_ids
from facemetric.gallery.records import check_chip_format, decode_chip, encode_chip
from facemetric.gallery.records import chip_format as format_of
from facemetric.gallery.rows import ID_BLOCK, insert_embeddings, insert_faces, now
from facemetric.gallery.store import GalleryStore

BLOCK = 500  # faces per transaction


@dataclass
class CopyReport:
    people: int = 0  # people copied (new or with new faces)
    faces: int = 0  # faces copied
    embeddings: int = 0
    skipped: int = 0  # faces the destination had already
    converted: int = 0  # chips stored again in the asked format


FACE_COLUMNS = (
    "kind, source, crop_png, box, landmarks, created, chip_template, chip_landmarks, "
    "content_sha256, quality"
)


def copy_gallery(
    src: GalleryStore,
    dst: GalleryStore,
    progress: Callable[[int], None] | None = None,
    block: int = BLOCK,
    chip_format: str | None = None,
) -> CopyReport:
    """Copy every person of ``src`` with their faces and embeddings into ``dst``; ``progress``
    is told how many faces each block handled; ``chip_format``: store every chip in that
    format (None: as it is). Faces of several people share a transaction (``block`` faces)."""
    convert = None if chip_format is None else check_chip_format(chip_format)
    report = CopyReport()
    pending = _Pending()
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
            for row in rows:
                digest = row[9] or hashlib.sha256(bytes(row[3])).hexdigest()
                if (str(row[1]), str(digest)) in have:
                    report.skipped += 1
                    continue
                have.add((str(row[1]), str(digest)))
                if convert is not None and format_of(bytes(row[3])) != convert:
                    chip = encode_chip(decode_chip(bytes(row[3])), convert)
                    row = (*row[:3], chip, *row[4:])
                    report.converted += 1
                pending.add(str(name), str(created), row, str(digest), vectors)
                copied_any = True
            if pending.faces >= block:
                pending.flush(dst, report)
            if progress is not None:
                progress(len(rows))
        if not copied_any and _person_missing(dst, str(name)):
            dst.add_person(str(name))  # a person with no faces yet is copied too
            copied_any = True
        report.people += int(copied_any)
    pending.flush(dst, report)
    return report


class _Pending:
    """Faces read and not yet written: several people's, written in one transaction."""

    def __init__(self) -> None:
        self.people: dict[str, str] = {}  # name -> created
        self.rows: list[tuple[str, tuple[object, ...], str]] = []  # name, face row, digest
        self.vectors: dict[int, list[tuple[str, int, bytes]]] = {}

    @property
    def faces(self) -> int:
        return len(self.rows)

    def add(
        self,
        name: str,
        created: str,
        row: tuple[object, ...],
        digest: str,
        vectors: dict[int, list[tuple[str, int, bytes]]],
    ) -> None:
        self.people.setdefault(name, created)
        self.rows.append((name, row, digest))
        face_id = int(row[0])  # type: ignore[call-overload]
        self.vectors[face_id] = vectors.get(face_id, [])

    def flush(self, dst: GalleryStore, report: CopyReport) -> None:
        """Write what is pending into ``dst`` in one transaction."""
        if not self.rows:
            return
        with dst.backend.write() as con:
            ids = person_ids(con, {n: c or now() for n, c in self.people.items()})
            new_ids = insert_faces(
                con,
                [(ids[name], *face[1:9], digest, face[10]) for name, face, digest in self.rows],
            )
            embedded = [
                (new_id, key, dim, blob)
                for new_id, (_, face, _) in zip(new_ids, self.rows, strict=True)
                for key, dim, blob in self.vectors[int(face[0])]  # type: ignore[call-overload]
            ]
            if embedded:
                insert_embeddings(con, embedded)
            dst.change(con, "face+", new_ids)
        report.faces += len(new_ids)
        report.embeddings += len(embedded)
        self.people, self.rows, self.vectors = {}, [], {}


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
