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
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.errors import GalleryError
from facemetric.gallery.backend import Backend, Connection
from facemetric.gallery.keys import model_key, weights_key
from facemetric.gallery.location import open_backend
from facemetric.gallery.records import (
    DEFAULT_CHIP_FORMAT,
    FaceRecord,
    check_chip_format,
    cut_for_model,
    decode_chip,
    encode_chip,
    record_crop,
)
from facemetric.gallery.skeleton import look_alike

if TYPE_CHECKING:
    from facemetric.data.align import AlignedFace
    from facemetric.models.inference import Embedder

__all__ = ["FaceRecord", "GalleryEmbeddings", "GalleryStore", "model_key", "weights_key"]

EMBED_BATCH = 64
ID_BLOCK = 500  # ids per IN (...) list
KINDS = ("reference", "negative")  # a negative face: "this is not that person" (corrections)
CHANGES_KEPT = 100_000  # change-log rows kept; a follower further behind reads everything again


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


@dataclass(frozen=True)
class GalleryEmbeddings:
    """Faces' embeddings for one model, rows aligned with ``face_ids`` and ``names``."""

    model_key: str
    vectors: np.ndarray  # (N, D) float32
    face_ids: np.ndarray  # (N,) int64
    person_ids: np.ndarray  # (N,) int64
    names: list[str]
    kinds: list[str] | None = None  # per row: reference | negative (None: all references)


@dataclass(frozen=True)
class Changes:
    """What changed after a generation: the faces touched (added, removed, re-embedded or moved
    to another person); ``None`` from ``changes_since`` means the log no longer reaches back."""

    generation: int
    face_ids: frozenset[int]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
        new generation. The counter row is locked until commit, so generations commit in order."""
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
        self.backend.notify(con, generation)
        return generation

    def change_counter(self) -> int:
        """The gallery's generation: grows with every committed change (from any process)."""
        with self.backend.read() as con:
            row = con.execute("SELECT generation FROM gallery_state WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    generation = change_counter

    def changes_since(self, generation: int) -> Changes | None:
        """The faces touched after ``generation`` (and the generation that includes them);
        None when the log was pruned past it (read everything again)."""
        with self.backend.read() as con:
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

    # ---- people ----------------------------------------------------------------------------------
    def add_person(self, name: str) -> Person:
        """Create an empty person; ``GalleryError`` when the name is empty or taken."""
        name = _check_name(name)
        created = now()
        try:
            with self.backend.write() as con:
                self.backend.name_lock(con, name)
                if _person_id(con, name) is not None:
                    raise GalleryError(f"person {name!r} is already in the gallery")
                _no_look_alike(con, name)
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
            rows = con.execute(
                "SELECT p.id, p.name, COUNT(f.id), p.created FROM people p "
                "LEFT JOIN faces f ON f.person_id = p.id AND f.kind = 'reference' "
                "GROUP BY p.id, p.name, p.created"
            ).fetchall()
        people = [Person(int(i), str(n), int(c), str(t)) for i, n, c, t in rows]
        return sorted(people, key=lambda p: p.name)

    def get_person(self, name: str) -> Person:
        for person in self.list_people():
            if person.name == name:
                return person
        raise GalleryError(f"person {name!r} is not in the gallery")

    def remove_person(self, name: str, keep_events: bool = False) -> int:
        """Delete a person with their faces, crops and embeddings (their past events too unless
        ``keep_events``: then those keep the name); returns the reference faces removed."""
        with self.backend.write() as con:
            person_id = _person_id(con, name)
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
        name = _check_name(name)
        if kind not in KINDS:
            raise GalleryError(f"face kind: {kind!r} is not one of {', '.join(KINDS)}")
        records = [_as_record(f) for f in faces]
        if not records:
            raise GalleryError(f"person {name!r}: no faces to add")
        for i, record in enumerate(records):
            _check_crop(record.chip, i)
        if vectors is not None and len(vectors) != len(records):
            raise GalleryError(f"vectors: {len(vectors)} rows for {len(records)} faces")
        with self.backend.read() as con:
            known = _known_photos(con, name, kind)
            fmt = check_chip_format(chip_format) if chip_format else _chip_format(con)
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
        rows = [_face_row(records[i], kind, fmt) for i in fresh]
        created = now()
        with self.backend.write() as con:
            self.backend.name_lock(con, name)  # another server may be adding the same photos
            person_id = _person_id(con, name)
            if person_id is None:
                _no_look_alike(con, name)
                person_id = int(
                    con.execute(
                        "INSERT INTO people (name, created) VALUES (?, ?) RETURNING id",
                        (name, created),
                    ).fetchone()[0]
                )
            else:  # what it has now, inside the lock: a photo added meanwhile is not added again
                stored = _photos_of(con, person_id, kind)
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
        from facemetric.gallery.bulk import add_many

        key = embedder if isinstance(embedder, str) or embedder is None else model_key(embedder)
        return add_many(self, batch, key, kind, chip_format)

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
            return _known_photos(con, name, kind)

    def chip_format(self) -> str:
        """The format new chips are stored in: the gallery's setting (``set_chip_format``,
        kept in the database so every writer of a shared gallery follows it), else
        ``DEFAULT_CHIP_FORMAT``. Stored chips of any format decode (``decode_chip``)."""
        with self.backend.read() as con:
            return _chip_format(con)

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
        sql = (
            "SELECT id, source, box, landmarks, created, kind, quality, content_sha256 "
            "FROM faces WHERE person_id = ?"
        )
        params: list[Any] = [person.id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        with self.backend.read() as con:
            rows = con.execute(sql + " ORDER BY id", params).fetchall()
        return [
            Face(
                int(i),
                name,
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

    def face_thumbnail(self, face_id: int) -> bytes:
        """The stored bytes of a face's chip (PNG, JPEG or WebP: ``chip_media_type`` tells);
        ``GalleryError`` for an unknown id."""
        with self.backend.read() as con:
            row = con.execute("SELECT crop_png FROM faces WHERE id = ?", (int(face_id),)).fetchone()
        if row is None:
            raise GalleryError(f"face {face_id} is not in the gallery")
        return bytes(row[0])

    def face_picture(self, face_id: int) -> tuple[bytes, Face]:
        """A face's chip (stored bytes) with what is known of it; ``GalleryError`` for an
        unknown id."""
        with self.backend.read() as con:
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

    def face_crop(self, face_id: int) -> np.ndarray:
        """A face's stored chip as (S, S, 3) uint8 RGB."""
        return decode_chip(self.face_thumbnail(face_id))

    def count_faces(self) -> int:
        """Reference faces in the gallery."""
        with self.backend.read() as con:
            row = con.execute("SELECT COUNT(*) FROM faces WHERE kind = 'reference'").fetchone()
        return int(row[0])

    # ---- embeddings ------------------------------------------------------------------------------
    def reembed(
        self,
        embedder: Embedder,
        missing_only: bool = False,
        face_ids: Sequence[int] | None = None,
    ) -> int:
        """(Re)compute faces' embeddings for ``embedder`` from the stored chips, each cut the way
        its model needs (every face, or those of ``face_ids``).

        Batches of ``EMBED_BATCH`` faces, one transaction each; returns the faces embedded.
        A face deleted meanwhile is skipped. ``missing_only`` keeps existing embeddings.
        """
        key = model_key(embedder)
        sql, params = "SELECT f.id FROM faces f WHERE 1 = 1", list[Any]()
        if missing_only:
            sql += (
                " AND NOT EXISTS (SELECT 1 FROM embeddings e "
                "WHERE e.face_id = f.id AND e.model_key = ?)"
            )
            params.append(key)
        if face_ids is None:
            with self.backend.read() as con:
                ids = [int(r[0]) for r in con.execute(sql + " ORDER BY f.id", params)]
        else:  # only these faces: asked by id, a block at a time (bounded parameter lists)
            ids, wanted = [], sorted({int(i) for i in face_ids})
            with self.backend.read() as con:
                for start in range(0, len(wanted), ID_BLOCK):
                    block = wanted[start : start + ID_BLOCK]
                    marks = ",".join("?" * len(block))
                    ids += [
                        int(r[0])
                        for r in con.execute(f"{sql} AND f.id IN ({marks})", [*params, *block])
                    ]
            ids.sort()
        done = 0
        for start in range(0, len(ids), EMBED_BATCH):
            chunk = ids[start : start + EMBED_BATCH]
            marks = ",".join("?" * len(chunk))
            with self.backend.read() as con:
                rows = con.execute(
                    "SELECT id, crop_png, chip_template, chip_landmarks FROM faces "
                    f"WHERE id IN ({marks}) ORDER BY id",
                    chunk,
                ).fetchall()
            if not rows:
                continue
            crops = [
                cut_for_model(
                    decode_chip(bytes(png)),
                    template_name,
                    None if marks_json is None else np.asarray(json.loads(marks_json)),
                    embedder.spec,
                )
                for _, png, template_name, marks_json in rows
            ]
            vectors = embedder.embed(np.stack(crops))
            with self.backend.write() as con:
                present = {
                    int(r[0])
                    for r in con.execute(
                        f"SELECT id FROM faces WHERE id IN ({marks})", [r[0] for r in rows]
                    )
                }
                keep = [i for i, r in enumerate(rows) if int(r[0]) in present]
                if keep:
                    kept_ids = [int(rows[i][0]) for i in keep]
                    put_embeddings(con, key, kept_ids, vectors[keep])
                    self.change(con, "embed", kept_ids, model_key=key)
                    done += len(keep)
        return done

    def missing_embeddings(self, key: str, face_ids: Sequence[int] | None = None) -> list[int]:
        """Faces (of ``face_ids``, or all) that have no embedding by model ``key``."""
        sql = (
            "SELECT f.id FROM faces f WHERE NOT EXISTS (SELECT 1 FROM embeddings e "
            "WHERE e.face_id = f.id AND e.model_key = ?)"
        )
        with self.backend.read() as con:
            if face_ids is None:
                return sorted(int(r[0]) for r in con.execute(sql, (key,)))
            out, wanted = [], sorted({int(i) for i in face_ids})
            for start in range(0, len(wanted), ID_BLOCK):
                block = wanted[start : start + ID_BLOCK]
                marks = ",".join("?" * len(block))
                out += [
                    int(r[0]) for r in con.execute(f"{sql} AND f.id IN ({marks})", [key, *block])
                ]
        return sorted(out)

    def model_keys(self) -> dict[str, int]:
        """Model keys with stored embeddings and how many faces each covers."""
        with self.backend.read() as con:
            rows = con.execute(
                "SELECT model_key, COUNT(*) FROM embeddings GROUP BY model_key"
            ).fetchall()
        return {str(k): int(n) for k, n in sorted(rows)}

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
        sql = (
            "SELECT f.id, p.id, p.name, e.dim, e.vector, f.kind FROM embeddings e "
            "JOIN faces f ON f.id = e.face_id JOIN people p ON p.id = f.person_id "
            f"WHERE e.model_key = ? AND f.kind IN ({','.join('?' * len(kinds))})"
        )
        params: list[Any] = [key, *kinds]
        with self.backend.read() as con:
            if face_ids is None:
                rows = con.execute(sql, params).fetchall()
            else:
                rows, wanted = [], sorted({int(i) for i in face_ids})
                for start in range(0, len(wanted), ID_BLOCK):
                    block = wanted[start : start + ID_BLOCK]
                    marks = ",".join("?" * len(block))
                    rows += con.execute(f"{sql} AND f.id IN ({marks})", [*params, *block])
        rows.sort(key=lambda r: (str(r[2]), int(r[0])))
        dims = {int(r[3]) for r in rows}
        if len(dims) > 1:
            raise GalleryError(
                f"{self.location}: model {key} has embeddings of sizes {sorted(dims)}"
            )
        return _embeddings(key, rows)

    # ---- export ----------------------------------------------------------------------------------
    def export(self, path: str | Path, embedder: Embedder | str | None = None) -> Path:
        """Write embeddings (``.npz``) and metadata (``.json`` beside it) for other tools
        (``facemetric.gallery.export``)."""
        from facemetric.gallery.export import export_gallery

        return export_gallery(self, path, embedder)


FACE_INSERT = (
    "INSERT INTO faces (person_id, kind, source, crop_png, box, landmarks, created, "
    "chip_template, chip_landmarks, content_sha256, quality) VALUES "
)
INSERT_BLOCK = 200  # faces per INSERT statement


FACE_COLUMNS: tuple[str, ...] = ("person_id", "kind", "source", "crop_png", "box", "landmarks")
FACE_COLUMNS += ("created", "chip_template", "chip_landmarks", "content_sha256", "quality")
FACE_TYPES = ("int8", "text", "text", "bytea", *["text"] * 7)


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


def _embeddings(key: str, rows: list[Any]) -> GalleryEmbeddings:
    dim = int(rows[0][3]) if rows else 0
    vectors = np.zeros((len(rows), dim), np.float32)
    for i, row in enumerate(rows):
        vectors[i] = np.frombuffer(bytes(row[4]), dtype=np.float32)
    return GalleryEmbeddings(
        model_key=key,
        vectors=vectors,
        face_ids=np.array([int(r[0]) for r in rows], np.int64),
        person_ids=np.array([int(r[1]) for r in rows], np.int64),
        names=[str(r[2]) for r in rows],
        kinds=[str(r[5]) for r in rows],
    )


def _no_look_alike(con: Connection, name: str) -> None:
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


def _photos_of(con: Connection, person_id: int, kind: str) -> set[str]:
    rows = con.execute(
        "SELECT content_sha256 FROM faces WHERE person_id = ? AND kind = ? "
        "AND content_sha256 IS NOT NULL",
        (person_id, kind),
    ).fetchall()
    return {str(r[0]) for r in rows}


def _person_id(con: Connection, name: str) -> int | None:
    row = con.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def _known_photos(con: Connection, name: str, kind: str) -> set[str]:
    person_id = _person_id(con, name)
    return set() if person_id is None else _photos_of(con, person_id, kind)


def _chip_format(con: Connection) -> str:
    row = con.execute("SELECT value FROM meta WHERE key = 'chip_format'").fetchone()
    return DEFAULT_CHIP_FORMAT if row is None else str(row[0])


def _face_row(record: FaceRecord, kind: str, fmt: str) -> tuple[Any, ...]:
    """A record's columns: source, chip, box, landmarks | template, chip marks, digest, quality."""
    quality = getattr(record, "quality", None)
    return (
        record.source,
        record.chip_png if record.chip_png is not None else encode_chip(record.chip, fmt),
        _json_or_none(record.box),
        _json_or_none(record.landmarks),
        record.chip_template,
        _json_or_none(record.chip_landmarks),
        record.digest(),
        None if quality is None else json.dumps(quality, sort_keys=True),
    )


def _check_name(name: str) -> str:
    from facemetric.gallery.names import check_person_name

    return check_person_name(name)


def _as_record(face: FaceRecord | AlignedFace | np.ndarray) -> FaceRecord:
    """A face to add from a record, an ``AlignedFace`` or a bare aligned crop."""
    if isinstance(face, FaceRecord):
        return face
    if isinstance(face, np.ndarray):
        return FaceRecord.from_crop(face)
    return FaceRecord.from_aligned(face)


def _json_or_none(values: Any) -> str | None:
    if values is None:
        return None
    return json.dumps(np.asarray(values, dtype=float).round(3).tolist())


def _check_crop(crop: np.ndarray, i: int) -> np.ndarray:
    arr = np.asarray(crop)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or arr.shape[0] < 8:
        raise GalleryError(
            f"face #{i + 1}: expected an aligned (S, S, 3) uint8 crop, got {arr.dtype} {arr.shape}"
        )
    return arr
