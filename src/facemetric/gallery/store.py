"""The gallery: people, their reference faces and embeddings per model, over any backend.

Where it lives is the backend's business (``facemetric.gallery.backend``: a SQLite file, the
default, or a PostgreSQL database several servers share); the rules are written here once. Each
face keeps a loose chip (JPEG by default; PNG or WebP by the gallery's ``chip_format``) with its
landmarks (``facemetric.gallery.records``), so a new model re-embeds the gallery from the chips,
cutting its own crops, without the original photos.
Embeddings are keyed by a hash of the model's weights and spec, so several models share one
gallery. Every change is one transaction (a crash mid-enrolment leaves nothing half-written);
reading never writes, and commands that only read never create a gallery. A person never holds
the same photo twice (``content_sha256``), so building again adds only what is new. Ids are never
handed out twice. Every change advances the gallery's *generation* and appends what it touched
to a change log, which running servers follow (``facemetric.gallery.live``) without reading the
whole gallery again.

Here are the rules and the transactions that keep them; the pieces they are made of live beside
it: ``rows`` (checks, face rows and the statements that write them), ``listing`` (people and
faces read back), ``embeddings`` (per model), ``changelog``, ``bulk`` (many people in one
transaction) and ``export``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.errors import GalleryError
from facemetric.gallery import embeddings, listing
from facemetric.gallery.backend import Backend, Connection
from facemetric.gallery.bulk import add_many
from facemetric.gallery.changelog import Changes, changes_since, current_generation, log_change
from facemetric.gallery.embeddings import GalleryEmbeddings
from facemetric.gallery.export import write_export
from facemetric.gallery.keys import model_key, weights_key
from facemetric.gallery.listing import Face, Person
from facemetric.gallery.location import open_backend
from facemetric.gallery.names import check_person_name
from facemetric.gallery.records import FaceRecord, check_chip_format, decode_chip, record_crop
from facemetric.gallery.rows import (
    as_record,
    check_crop,
    check_kind,
    face_row,
    insert_embeddings,
    insert_faces,
    known_photos,
    no_look_alike,
    now,
    person_id_of,
    photos_of,
    stored_chip_format,
)

if TYPE_CHECKING:
    from facemetric.data.align import AlignedFace
    from facemetric.models.inference import Embedder

__all__ = ["FaceRecord", "GalleryEmbeddings", "GalleryStore", "model_key", "weights_key"]


class GalleryStore:
    """A gallery at ``location``: a SQLite file path (or ``sqlite:///path``) or a
    ``postgresql://`` URL.

    ``create=True`` (for commands that add faces) makes the gallery when missing (a SQLite file
    and its folder, or the tables in an existing PostgreSQL database); ``create=False`` (for
    commands that only read) refuses a missing one with the command that builds one. Safe to
    share between threads.
    """

    def __init__(self, location: str | Path, create: bool = True) -> None:
        self.backend: Backend = open_backend(location)
        self.location = self.backend.location
        self.backend.prepare(create)
        try:
            if not create and not self.backend.exists():
                raise GalleryError(
                    f"{self.location}: no gallery there; build one with: facemetric gallery "
                    f"build PHOTOS --db {self.location}"
                )
            from facemetric.gallery.migrate import set_up_schema

            set_up_schema(self.backend)
        except self.backend.database_errors as exc:
            self.backend.close()
            raise GalleryError(f"{self.location}: not a usable gallery database ({exc})") from exc
        except BaseException:
            self.backend.close()
            raise

    @property
    def path(self) -> Path | str:
        """The SQLite file (a ``Path``), or the database URL without its password."""
        return getattr(self.backend, "path", self.location)

    @property
    def kind(self) -> str:
        return self.backend.kind

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> GalleryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- generations and the change log ----------------------------------------------------------
    def change(self, con: Connection, op: str, face_ids: Iterable[int] = (), **what: Any) -> int:
        """Inside a write: advance the generation and log ``op`` for ``face_ids``; returns the
        new generation (``facemetric.gallery.changelog``)."""
        return log_change(self.backend, con, op, face_ids, **what)

    def change_counter(self) -> int:
        """The gallery's generation: grows with every committed change (from any process)."""
        with self.backend.read() as con:
            return current_generation(con)

    generation = change_counter

    def changes_since(self, generation: int) -> Changes | None:
        """The faces touched after ``generation`` (and the generation that includes them);
        None when the log was pruned past it (read everything again)."""
        with self.backend.read() as con:
            return changes_since(con, generation)

    # ---- people ----------------------------------------------------------------------------------
    def add_person(self, name: str) -> Person:
        """Create an empty person; ``GalleryError`` when the name is empty or taken."""
        name = check_person_name(name)
        created = now()
        try:
            with self.backend.write() as con:
                self.backend.name_lock(con, name)
                if person_id_of(con, name) is not None:
                    raise GalleryError(f"person {name!r} is already in the gallery")
                no_look_alike(con, name)
                row = con.execute(
                    "INSERT INTO people (name, created) VALUES (?, ?) RETURNING id",
                    (name, created),
                ).fetchone()
                self.change(con, "person+", person_id=int(row[0]))
        except self.backend.integrity_errors as exc:
            raise GalleryError(f"person {name!r} is already in the gallery") from exc
        return Person(int(row[0]), name, 0, created)

    def list_people(self) -> list[Person]:
        """Everyone, by name, with their number of reference faces."""
        with self.backend.read() as con:
            return listing.people(con)

    def get_person(self, name: str) -> Person:
        for person in self.list_people():
            if person.name == name:
                return person
        raise GalleryError(f"person {name!r} is not in the gallery")

    def remove_person(self, name: str, keep_events: bool = False) -> int:
        """Delete a person with their faces, crops and embeddings (their past events too unless
        ``keep_events``: then those keep the name); returns the reference faces removed."""
        with self.backend.write() as con:
            person_id = person_id_of(con, name)
            if person_id is None:
                raise GalleryError(f"person {name!r} is not in the gallery")
            faces = con.execute(
                "SELECT id, kind FROM faces WHERE person_id = ?", (person_id,)
            ).fetchall()
            if not keep_events:
                con.execute("DELETE FROM events WHERE person_id = ?", (person_id,))
            con.execute("DELETE FROM people WHERE id = ?", (person_id,))  # cascades
            self.change(con, "person-", [int(f[0]) for f in faces], person_id=person_id)
        return sum(1 for f in faces if f[1] == "reference")

    # ---- faces -----------------------------------------------------------------------------------
    def add_faces(
        self,
        name: str,
        faces: Sequence[FaceRecord | AlignedFace | np.ndarray],
        embedder: Embedder | str | None = None,
        kind: str = "reference",
        vectors: np.ndarray | None = None,
        chip_format: str | None = None,
    ) -> list[int]:
        """Add faces to ``name`` (created when new), all or nothing; returns the ids of the
        faces added. A face whose photo ``name`` already has (same content hash, same kind) is
        skipped, so adding the same photos twice changes nothing.

        With an ``embedder`` the embeddings are computed first and stored in the same
        transaction; ``vectors`` (one row per face) gives them precomputed for the model of
        ``embedder`` (an embedder or a model key). Without either they are computed on first
        use. ``kind``: ``reference``, or ``negative`` (a face that is *not* ``name``, from a
        correction). Chips are stored in ``chip_format`` (None: the gallery's, ``chip_format()``);
        a record's ``chip_png`` (already encoded) is stored as it is.
        """
        name = check_person_name(name)
        check_kind(kind)
        records = [as_record(f) for f in faces]
        if not records:
            raise GalleryError(f"person {name!r}: no faces to add")
        for i, record in enumerate(records):
            check_crop(record.chip, i)
        if vectors is not None and len(vectors) != len(records):
            raise GalleryError(f"vectors: {len(vectors)} rows for {len(records)} faces")
        with self.backend.read() as con:
            known = known_photos(con, name, kind)
            fmt = check_chip_format(chip_format) if chip_format else stored_chip_format(con)
        fresh: list[int] = []
        for i, record in enumerate(records):
            digest = record.digest()
            if digest not in known:
                known.add(digest)
                fresh.append(i)
        if not fresh:
            return []
        key = embedder if isinstance(embedder, str) or embedder is None else model_key(embedder)
        chosen: np.ndarray | None = None
        if vectors is not None:
            if key is None:
                raise GalleryError("vectors: given without the model they belong to")
            chosen = np.asarray(vectors, np.float32)[fresh]
        elif embedder is not None and not isinstance(embedder, str):
            crops = [record_crop(records[i], embedder.spec) for i in fresh]
            chosen = np.asarray(embedder.embed(np.stack(crops)), np.float32)
        rows = [face_row(records[i], kind, fmt) for i in fresh]
        created = now()
        with self.backend.write() as con:
            self.backend.name_lock(con, name)  # another server may be adding the same photos
            person_id = person_id_of(con, name)
            if person_id is None:
                no_look_alike(con, name)
                person_id = int(
                    con.execute(
                        "INSERT INTO people (name, created) VALUES (?, ?) RETURNING id",
                        (name, created),
                    ).fetchone()[0]
                )
            else:  # what it has now, inside the lock: a photo added meanwhile is not added again
                stored = photos_of(con, person_id, kind)
                keep = [j for j, i in enumerate(fresh) if records[i].digest() not in stored]
                if len(keep) < len(fresh):
                    rows = [rows[j] for j in keep]
                    chosen = None if chosen is None else chosen[keep]
                    if not rows:
                        return []
            ids = insert_faces(con, [(person_id, kind, *r[:4], created, *r[4:]) for r in rows])
            if key is not None and chosen is not None:
                vecs = np.ascontiguousarray(chosen, dtype=np.float32)
                dim = int(vecs.shape[1])
                insert_embeddings(
                    con, [(i, key, dim, v.tobytes()) for i, v in zip(ids, vecs, strict=True)]
                )
            self.change(con, "face+", ids, person_id=person_id)
        return ids

    def add_many(
        self,
        batch: Sequence[tuple[str, Sequence[FaceRecord], np.ndarray | None]],
        embedder: Embedder | str | None = None,
        kind: str = "reference",
        chip_format: str | None = None,
    ) -> list[list[int]]:
        """``add_faces`` for many people in one transaction (``facemetric.gallery.bulk``):
        each ``(name, faces, vectors)`` with its embeddings precomputed by ``embedder`` (or
        None); the new face ids per entry."""
        key = embedder if isinstance(embedder, str) or embedder is None else model_key(embedder)
        return add_many(self.backend, batch, key, kind, chip_format)

    def remove_faces(self, face_ids: Sequence[int]) -> int:
        """Delete faces by id (with their embeddings); returns how many there were."""
        ids = [int(i) for i in face_ids]
        if not ids:
            return 0
        with self.backend.write() as con:
            marks = ",".join("?" * len(ids))
            found = [
                int(r[0]) for r in con.execute(f"SELECT id FROM faces WHERE id IN ({marks})", ids)
            ]
            if found:
                con.execute(f"DELETE FROM faces WHERE id IN ({marks})", ids)
                self.change(con, "face-", found)
        return len(found)

    def known_photos(self, name: str, kind: str = "reference") -> set[str]:
        """Content hashes of the faces of ``kind`` that ``name`` already has."""
        with self.backend.read() as con:
            return known_photos(con, name, kind)

    def chip_format(self) -> str:
        """The format new chips are stored in: the gallery's setting (``set_chip_format``,
        kept in the database so every writer of a shared gallery follows it), else
        ``DEFAULT_CHIP_FORMAT``. Stored chips of any format decode (``decode_chip``)."""
        with self.backend.read() as con:
            return stored_chip_format(con)

    def set_chip_format(self, fmt: str) -> str:
        """Store new chips of this gallery as ``fmt`` (``png``: lossless; ``jpeg``, ``webp``);
        chips already stored keep their bytes. Returns the checked name."""
        fmt = check_chip_format(fmt)
        with self.backend.write() as con:
            con.execute("DELETE FROM meta WHERE key = 'chip_format'")
            con.execute("INSERT INTO meta (key, value) VALUES ('chip_format', ?)", (fmt,))
        return fmt

    def faces_of(self, name: str, kind: str | None = "reference") -> list[Face]:
        """The faces of ``name`` (of ``kind``; None: every kind) in the order they were added."""
        person = self.get_person(name)
        with self.backend.read() as con:
            return listing.faces_of(con, person, kind)

    def face_thumbnail(self, face_id: int) -> bytes:
        """The stored bytes of a face's chip (PNG, JPEG or WebP: ``chip_media_type`` tells);
        ``GalleryError`` for an unknown id."""
        with self.backend.read() as con:
            return listing.chip_bytes(con, face_id)

    def face_picture(self, face_id: int) -> tuple[bytes, Face]:
        """A face's chip (stored bytes) with what is known of it; ``GalleryError`` for an
        unknown id."""
        with self.backend.read() as con:
            return listing.face_picture(con, face_id)

    def face_crop(self, face_id: int) -> np.ndarray:
        """A face's stored chip as (S, S, 3) uint8 RGB."""
        return decode_chip(self.face_thumbnail(face_id))

    def count_faces(self) -> int:
        """Reference faces in the gallery."""
        with self.backend.read() as con:
            return listing.count_faces(con)

    # ---- embeddings ------------------------------------------------------------------------------
    def reembed(
        self,
        embedder: Embedder,
        missing_only: bool = False,
        face_ids: Sequence[int] | None = None,
    ) -> int:
        """(Re)compute faces' embeddings for ``embedder`` from the stored chips, each cut the way
        its model needs (every face, or those of ``face_ids``): batches of ``EMBED_BATCH`` faces,
        one transaction each; returns the faces embedded. A face deleted meanwhile is skipped.
        ``missing_only`` keeps existing embeddings (``facemetric.gallery.embeddings``)."""
        return embeddings.reembed(self.backend, embedder, missing_only, face_ids)

    def missing_embeddings(self, key: str, face_ids: Sequence[int] | None = None) -> list[int]:
        """Faces (of ``face_ids``, or all) that have no embedding by model ``key``."""
        with self.backend.read() as con:
            return embeddings.missing_embeddings(con, key, face_ids)

    def model_keys(self) -> dict[str, int]:
        """Model keys with stored embeddings and how many faces each covers."""
        with self.backend.read() as con:
            return embeddings.model_keys(con)

    def embeddings(
        self,
        key_or_embedder: str | Embedder,
        compute_missing: bool = True,
        face_ids: Sequence[int] | None = None,
        kinds: Sequence[str] = ("reference",),
    ) -> GalleryEmbeddings:
        """Faces' embeddings for one model (of ``kinds``; only ``face_ids`` when given),
        ordered by person name then face id.

        Given an embedder, faces without an embedding for it are embedded first (on demand).
        """
        if isinstance(key_or_embedder, str):
            key = key_or_embedder
        else:
            key = model_key(key_or_embedder)
            if compute_missing:
                self.reembed(key_or_embedder, missing_only=True, face_ids=face_ids)
        with self.backend.read() as con:
            rows = embeddings.embedding_rows(con, key, kinds, face_ids)
        return embeddings.gallery_embeddings(key, rows, str(self.location))

    # ---- export ----------------------------------------------------------------------------------
    def export(self, path: str | Path, embedder: Embedder | str | None = None) -> Path:
        """Write embeddings (``.npz``) and metadata (``.json`` beside it) for other tools
        (``facemetric.gallery.export``). Without ``embedder`` the gallery must hold embeddings
        of exactly one model."""
        if embedder is None:
            keys = self.model_keys()
            if len(keys) != 1:
                raise GalleryError(
                    f"{self.path}: embeddings of {len(keys)} models stored; name one with --model"
                )
            embedder = next(iter(keys))
        emb = self.embeddings(embedder)
        if len(emb.face_ids) == 0:
            raise GalleryError(f"{self.path}: the gallery is empty, nothing to export")
        people = self.list_people()
        faces = {f.id: f for p in people for f in self.faces_of(p.name)}
        return write_export(path, str(self.path), emb, people, faces)
