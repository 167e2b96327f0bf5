"""The gallery: people, their reference faces and embeddings per model, in one SQLite file.

Each face keeps a loose chip (PNG) with its landmarks (``facemetric.gallery.records``), so a new
model re-embeds the gallery from the chips, cutting its own crops, without the original photos.
Embeddings are keyed by a hash of the model's weights and spec, so several models can share one
gallery. Every change is one transaction (a crash mid-enrolment leaves nothing half-written) and
WAL lets readers (the web app) read while one writer adds. A change counter, bumped by every
write, tells a ``Recognizer`` when to reload; reading never writes. A person never holds the
same photo twice (``content_sha256``), so building again adds only what is new.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.errors import GalleryError
from facemetric.gallery.keys import model_key, weights_key
from facemetric.gallery.records import (
    FaceRecord,
    cut_for_model,
    decode_png,
    encode_png,
    record_crop,
)
from facemetric.gallery.schema import MIGRATE_FROM_1, SCHEMA, SCHEMA_VERSION

if TYPE_CHECKING:
    from facemetric.data.align import AlignedFace
    from facemetric.models.inference import Embedder

__all__ = ["FaceRecord", "GalleryEmbeddings", "GalleryStore", "model_key", "weights_key"]

BUSY_TIMEOUT_MS = 10_000
EMBED_BATCH = 64


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    face_count: int
    created: str


@dataclass(frozen=True)
class Face:
    """A reference face (without its crop: ``GalleryStore.face_crop`` reads that)."""

    id: int
    person: str
    source: str | None
    box: tuple[float, float, float, float] | None
    landmarks: list[list[float]] | None
    created: str


@dataclass(frozen=True)
class GalleryEmbeddings:
    """Every face's embedding for one model, rows aligned with ``face_ids`` and ``names``."""

    model_key: str
    vectors: np.ndarray  # (N, D) float32
    face_ids: np.ndarray  # (N,) int64
    person_ids: np.ndarray  # (N,) int64
    names: list[str]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class GalleryStore:
    """A gallery in the SQLite file ``path``.

    ``create=True`` (for commands that add faces) makes the file and its folder when missing;
    ``create=False`` (for commands that only read) refuses a missing file with the command that
    builds one. Safe to share between threads: each thread gets its own connection.
    """

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if not self.path.is_file():
            if not create:
                raise GalleryError(
                    f"{self.path}: no gallery there; build one with: facemetric gallery build "
                    f"PHOTOS --db {self.path}"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._set_up_schema()
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path}: not a usable gallery database ({exc})") from exc

    def _schema_version(self) -> int | None:
        con = self._con()
        exists = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not exists:
            return None
        row = con.execute("SELECT version FROM schema_version").fetchone()
        return None if row is None else int(row[0])

    def _set_up_schema(self) -> None:
        """Create or migrate the tables; an up-to-date gallery is only read, never written."""
        version = self._schema_version()
        if version == SCHEMA_VERSION:
            return
        if version is not None and version > SCHEMA_VERSION:
            raise GalleryError(
                f"{self.path}: gallery schema {version} is newer than this facemetric "
                f"({SCHEMA_VERSION}); upgrade facemetric"
            )
        with self._transaction(bump=False) as con:
            version = self._schema_version()  # another process may have done it meanwhile
            if version is None:
                # statement by statement: executescript() would commit the open transaction
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        con.execute(statement)
                if con.execute("SELECT version FROM schema_version").fetchone() is None:
                    con.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif version == 1:
                for statement in MIGRATE_FROM_1:
                    con.execute(statement)

    # ---- connections and transactions --------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
                )
            except sqlite3.Error as exc:
                raise GalleryError(f"{self.path}: cannot open the gallery ({exc})") from exc
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            con.execute("PRAGMA foreign_keys = ON")
            self._local.con = con
            with self._lock:
                self._connections.append(con)
        return con

    @contextmanager
    def _transaction(self, bump: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: writers queue, readers go on); ``bump``
        advances the change counter that running recognizers watch."""
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
            if bump:
                con.execute(
                    "INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) "
                    "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A write transaction that advances the change counter."""
        return self._transaction(bump=True)

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for con in self._connections:
                with contextlib.suppress(sqlite3.ProgrammingError):  # closed already
                    con.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> GalleryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def change_counter(self) -> int:
        """A number that grows with every committed change (from any process)."""
        row = self._con().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    # ---- people ------------------------------------------------------------------------------
    def add_person(self, name: str) -> Person:
        """Create an empty person; ``GalleryError`` when the name is empty or taken."""
        name = _check_name(name)
        try:
            with self._write() as con:
                cur = con.execute(
                    "INSERT INTO people (name, created) VALUES (?, ?)", (name, _now())
                )
        except sqlite3.IntegrityError as exc:
            raise GalleryError(f"person {name!r} is already in the gallery") from exc
        return Person(int(cur.lastrowid or 0), name, 0, self._created(name))

    def _created(self, name: str) -> str:
        row = self._con().execute("SELECT created FROM people WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else ""

    def list_people(self) -> list[Person]:
        """Everyone, by name, with their number of faces."""
        rows = self._con().execute(
            "SELECT p.id, p.name, COUNT(f.id), p.created FROM people p "
            "LEFT JOIN faces f ON f.person_id = p.id GROUP BY p.id ORDER BY p.name"
        )
        return [Person(int(i), n, int(c), str(t)) for i, n, c, t in rows]

    def get_person(self, name: str) -> Person:
        for person in self.list_people():
            if person.name == name:
                return person
        raise GalleryError(f"person {name!r} is not in the gallery")

    def remove_person(self, name: str) -> int:
        """Delete a person with their faces, crops and embeddings; returns the faces removed."""
        with self._write() as con:
            row = con.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise GalleryError(f"person {name!r} is not in the gallery")
            count = con.execute("SELECT COUNT(*) FROM faces WHERE person_id = ?", row).fetchone()
            con.execute("DELETE FROM people WHERE id = ?", row)  # cascades to faces, embeddings
        return int(count[0])

    # ---- faces -------------------------------------------------------------------------------
    def add_faces(
        self,
        name: str,
        faces: Sequence[FaceRecord | AlignedFace | np.ndarray],
        embedder: Embedder | None = None,
    ) -> list[int]:
        """Add reference faces to ``name`` (created when new), all or nothing; returns the ids
        of the faces added. A face whose photo ``name`` already has (same content hash) is
        skipped, so adding the same photos twice changes nothing.

        With an ``embedder`` the embeddings are computed first and stored in the same
        transaction; without one they are computed on first use.
        """
        name = _check_name(name)
        records = [_as_record(f) for f in faces]
        if not records:
            raise GalleryError(f"person {name!r}: no faces to add")
        for i, record in enumerate(records):
            _check_crop(record.chip, i)
        known = self.known_photos(name)
        fresh: list[FaceRecord] = []
        for record in records:
            digest = record.digest()
            if digest not in known:
                known.add(digest)
                fresh.append(record)
        pngs = [encode_png(r.chip) for r in fresh]
        vectors = key = None
        if embedder is not None and fresh:
            key = model_key(embedder)
            vectors = embedder.embed(np.stack([record_crop(r, embedder.spec) for r in fresh]))
        now = _now()
        ids: list[int] = []
        with self._write() as con:
            row = con.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                cur = con.execute("INSERT INTO people (name, created) VALUES (?, ?)", (name, now))
                person_id = int(cur.lastrowid or 0)
            else:
                person_id = int(row[0])
            for i, (record, png) in enumerate(zip(fresh, pngs, strict=True)):
                cur = con.execute(
                    "INSERT INTO faces (person_id, source, crop_png, box, landmarks, created, "
                    "chip_template, chip_landmarks, content_sha256) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        person_id,
                        record.source,
                        png,
                        _json_or_none(record.box),
                        _json_or_none(record.landmarks),
                        now,
                        record.chip_template,
                        _json_or_none(record.chip_landmarks),
                        record.digest(),
                    ),
                )
                face_id = int(cur.lastrowid or 0)
                ids.append(face_id)
                if vectors is not None:
                    self._put_embedding(con, face_id, str(key), vectors[i])
        return ids

    def known_photos(self, name: str) -> set[str]:
        """Content hashes of the faces ``name`` already has (empty for a new person)."""
        rows = self._con().execute(
            "SELECT f.content_sha256 FROM faces f JOIN people p ON p.id = f.person_id "
            "WHERE p.name = ? AND f.content_sha256 IS NOT NULL",
            (name,),
        )
        return {str(r[0]) for r in rows}

    @staticmethod
    def _put_embedding(con: sqlite3.Connection, face_id: int, key: str, vec: np.ndarray) -> None:
        v = np.ascontiguousarray(vec, dtype=np.float32)
        con.execute(
            "INSERT OR REPLACE INTO embeddings (face_id, model_key, dim, vector) VALUES (?,?,?,?)",
            (face_id, key, int(v.shape[0]), v.tobytes()),
        )

    def faces_of(self, name: str) -> list[Face]:
        """The reference faces of ``name`` in the order they were added."""
        person = self.get_person(name)
        rows = self._con().execute(
            "SELECT id, source, box, landmarks, created FROM faces WHERE person_id = ? ORDER BY id",
            (person.id,),
        )
        return [
            Face(
                int(i),
                name,
                src,
                None if box is None else tuple(json.loads(box)),
                None if marks is None else json.loads(marks),
                str(t),
            )
            for i, src, box, marks, t in rows
        ]

    def face_thumbnail(self, face_id: int) -> bytes:
        """The PNG of a face's stored chip; ``GalleryError`` for an unknown id."""
        row = (
            self._con()
            .execute("SELECT crop_png FROM faces WHERE id = ?", (int(face_id),))
            .fetchone()
        )
        if row is None:
            raise GalleryError(f"face {face_id} is not in the gallery")
        return bytes(row[0])

    def face_crop(self, face_id: int) -> np.ndarray:
        """A face's stored chip as (S, S, 3) uint8 RGB."""
        return decode_png(self.face_thumbnail(face_id))

    def count_faces(self) -> int:
        return int(self._con().execute("SELECT COUNT(*) FROM faces").fetchone()[0])

    # ---- embeddings --------------------------------------------------------------------------
    def reembed(self, embedder: Embedder, missing_only: bool = False) -> int:
        """(Re)compute every face's embedding for ``embedder`` from the stored chips, each cut
        the way its model needs.

        Batches of ``EMBED_BATCH`` faces, one transaction each; returns the faces embedded.
        A face deleted meanwhile is skipped. ``missing_only`` keeps existing embeddings.
        """
        key = model_key(embedder)
        sql = "SELECT f.id FROM faces f"
        if missing_only:
            sql += (
                " WHERE NOT EXISTS (SELECT 1 FROM embeddings e "
                "WHERE e.face_id = f.id AND e.model_key = ?)"
            )
        params = (key,) if missing_only else ()
        ids = [int(r[0]) for r in self._con().execute(sql + " ORDER BY f.id", params)]
        done = 0
        for start in range(0, len(ids), EMBED_BATCH):
            chunk = ids[start : start + EMBED_BATCH]
            marks = ",".join("?" * len(chunk))
            rows = (
                self._con()
                .execute(
                    "SELECT id, crop_png, chip_template, chip_landmarks FROM faces "
                    f"WHERE id IN ({marks}) ORDER BY id",
                    chunk,
                )
                .fetchall()
            )
            if not rows:
                continue
            crops = [
                cut_for_model(
                    decode_png(bytes(png)),
                    template_name,
                    None if marks_json is None else np.asarray(json.loads(marks_json)),
                    embedder.spec,
                )
                for _, png, template_name, marks_json in rows
            ]
            vectors = embedder.embed(np.stack(crops))
            with self._write() as con:
                for (face_id, *_), vec in zip(rows, vectors, strict=True):
                    if con.execute("SELECT 1 FROM faces WHERE id = ?", (face_id,)).fetchone():
                        self._put_embedding(con, int(face_id), key, vec)
                        done += 1
        return done

    def model_keys(self) -> dict[str, int]:
        """Model keys with stored embeddings and how many faces each covers."""
        rows = self._con().execute(
            "SELECT model_key, COUNT(*) FROM embeddings GROUP BY model_key ORDER BY model_key"
        )
        return {str(k): int(n) for k, n in rows}

    def embeddings(
        self, key_or_embedder: str | Embedder, compute_missing: bool = True
    ) -> GalleryEmbeddings:
        """Every face's embedding for one model, ordered by person then face.

        Given an embedder, faces without an embedding for it are embedded first (on demand).
        """
        if isinstance(key_or_embedder, str):
            key = key_or_embedder
        else:
            key = model_key(key_or_embedder)
            if compute_missing:
                self.reembed(key_or_embedder, missing_only=True)
        con = self._con()
        con.execute("BEGIN")  # one snapshot for the rows below
        try:
            rows = con.execute(
                "SELECT f.id, p.id, p.name, e.dim, e.vector FROM embeddings e "
                "JOIN faces f ON f.id = e.face_id JOIN people p ON p.id = f.person_id "
                "WHERE e.model_key = ? ORDER BY p.name, f.id",
                (key,),
            ).fetchall()
        finally:
            con.execute("COMMIT")
        dims = {int(r[3]) for r in rows}
        if len(dims) > 1:
            raise GalleryError(f"{self.path}: model {key} has embeddings of sizes {sorted(dims)}")
        dim = dims.pop() if dims else 0
        vectors = np.zeros((len(rows), dim), np.float32)
        for i, row in enumerate(rows):
            vectors[i] = np.frombuffer(row[4], dtype=np.float32)
        return GalleryEmbeddings(
            model_key=key,
            vectors=vectors,
            face_ids=np.array([r[0] for r in rows], np.int64),
            person_ids=np.array([r[1] for r in rows], np.int64),
            names=[str(r[2]) for r in rows],
        )

    # ---- export ----------------------------------------------------------------------------------
    def export(self, path: str | Path, embedder: Embedder | str | None = None) -> Path:
        """Write embeddings (``.npz``) and metadata (``.json`` beside it) for other tools
        (``facemetric.gallery.export``)."""
        from facemetric.gallery.export import export_gallery

        return export_gallery(self, path, embedder)


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
