"""Corrections that stick: "this is not Ada" and "yes, this is Ada", listed and undone.

Marking an answer **wrong** stores the face as a *negative* face of that person (``faces.kind =
'negative'``): the open-set decision (``recognize.decision``) no longer names Ada for a face
closer to her negatives than to her references. Marking it **confirmed** adds the face as one of
her references. Either way a row in ``corrections`` says who, when, from where and at what
similarity, and ``undo`` removes the row with the face it added, so every correction can be
taken back. Each is one transaction through the store's change log, so running servers (this
one and any other on the same database) follow it like any other change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.errors import GalleryError
from facemetric.gallery.keys import model_key
from facemetric.gallery.records import FaceRecord, record_crop
from facemetric.gallery.rows import face_row, insert_faces, now, person_id_of, put_embeddings
from facemetric.gallery.store import GalleryStore

if TYPE_CHECKING:
    from facemetric.models.inference import Embedder

WRONG = "wrong"  # "this is not PERSON": the face becomes a negative face of PERSON
CONFIRMED = "confirmed"  # "this is PERSON": the face becomes a reference face of PERSON
KINDS = {WRONG: "negative", CONFIRMED: "reference"}


@dataclass(frozen=True)
class Correction:
    """One correction: ``kind`` wrong | confirmed, of ``person``, with the face it added."""

    id: int
    kind: str
    person: str | None  # None once the person was removed (their corrections go with them)
    face_id: int | None  # None once the face was removed
    created: str
    source: str | None = None
    similarity: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.similarity is not None:
            out["similarity"] = round(float(self.similarity), 4)
        return out


class CorrectionStore:
    """The corrections of one gallery ``store``."""

    def __init__(self, store: GalleryStore) -> None:
        self.store = store

    def add(
        self,
        kind: str,
        person: str,
        record: FaceRecord,
        embedder: Embedder,
        vector: np.ndarray | None = None,
        similarity: float | None = None,
        source: str | None = None,
        note: str | None = None,
    ) -> Correction:
        """Record ``kind`` for ``person`` (who must be in the gallery) on the face ``record``,
        embedded by ``embedder`` (or given as ``vector``): the face and the row in one go."""
        if kind not in KINDS:
            raise GalleryError(f"correction kind: {kind!r} is not one of {', '.join(KINDS)}")
        if vector is None:
            vector = embedder.embed(record_crop(record, embedder.spec)[None])[0]
        vec = np.asarray(vector, np.float32).reshape(1, -1)
        key = model_key(embedder)
        row = face_row(record, KINDS[kind], self.store.chip_format())
        created = now()
        with self.store.backend.write() as con:
            person_id = person_id_of(con, person)
            if person_id is None:
                raise GalleryError(f"person {person!r} is not in the gallery")
            (face_id,) = insert_faces(con, [(person_id, KINDS[kind], *row[:4], created, *row[4:])])
            put_embeddings(con, key, [face_id], vec)
            found = con.execute(
                "INSERT INTO corrections (kind, person_id, face_id, created, source, similarity, "
                "note) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    kind,
                    person_id,
                    face_id,
                    created,
                    source,
                    None if similarity is None else float(similarity),
                    note,
                ),
            ).fetchone()
            self.store.change(con, "face+", [face_id], person_id=person_id)
        return Correction(int(found[0]), kind, person, face_id, created, source, similarity, note)

    def list(self, person: str | None = None) -> list[Correction]:
        """Every correction (of ``person`` when given), newest first."""
        sql = (
            "SELECT c.id, c.kind, p.name, c.face_id, c.created, c.source, c.similarity, c.note "
            "FROM corrections c LEFT JOIN people p ON p.id = c.person_id"
        )
        params: Sequence[Any] = ()
        if person is not None:
            sql += " WHERE p.name = ?"
            params = (person,)
        with self.store.backend.read() as con:
            rows = con.execute(sql + " ORDER BY c.id DESC", params).fetchall()
        return [_correction(r) for r in rows]

    def get(self, correction_id: int) -> Correction:
        with self.store.backend.read() as con:
            row = con.execute(
                "SELECT c.id, c.kind, p.name, c.face_id, c.created, c.source, c.similarity, "
                "c.note FROM corrections c LEFT JOIN people p ON p.id = c.person_id "
                "WHERE c.id = ?",
                (int(correction_id),),
            ).fetchone()
        if row is None:
            raise CorrectionNotFoundError(correction_id)
        return _correction(row)

    def undo(self, correction_id: int) -> Correction:
        """Take a correction back: its row goes, with the face it added (if still there)."""
        found = self.get(correction_id)
        with self.store.backend.write() as con:
            gone = con.execute(
                "DELETE FROM corrections WHERE id = ? RETURNING id", (int(correction_id),)
            ).fetchone()
            if gone is None:  # undone meanwhile by someone else
                raise CorrectionNotFoundError(correction_id)
            touched: list[int] = []
            if found.face_id is not None:
                deleted = con.execute(
                    "DELETE FROM faces WHERE id = ? RETURNING id", (int(found.face_id),)
                ).fetchone()
                touched = [] if deleted is None else [int(deleted[0])]
            self.store.change(con, "face-", touched)
        return found


class CorrectionNotFoundError(GalleryError):
    """No correction has this id (the API answers 404)."""

    def __init__(self, correction_id: int) -> None:
        self.correction_id = int(correction_id)
        super().__init__(f"correction {correction_id} is unknown (never made, or undone)")


def _correction(row: Sequence[Any]) -> Correction:
    cid, kind, name, face_id, created, source, similarity, note = row
    return Correction(
        int(cid),
        str(kind),
        None if name is None else str(name),
        None if face_id is None else int(face_id),
        str(created),
        None if source is None else str(source),
        None if similarity is None else float(similarity),
        None if note is None else str(note),
    )
