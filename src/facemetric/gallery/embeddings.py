"""A gallery's embeddings, one set per model (keyed by ``model_key``): computed from the stored
chips, each cut the way its model needs (so a new model re-embeds the gallery without the
original photos), and read back for search as ``GalleryEmbeddings``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.errors import GalleryError
from facemetric.gallery.backend import Backend, Connection
from facemetric.gallery.changelog import log_change
from facemetric.gallery.keys import model_key
from facemetric.gallery.records import cut_for_model, decode_chip
from facemetric.gallery.rows import id_blocks, put_embeddings

if TYPE_CHECKING:
    from facemetric.models.inference import Embedder

EMBED_BATCH = 64


@dataclass(frozen=True)
class GalleryEmbeddings:
    """Faces' embeddings for one model, rows aligned with ``face_ids`` and ``names``."""

    model_key: str
    vectors: np.ndarray  # (N, D) float32
    face_ids: np.ndarray  # (N,) int64
    person_ids: np.ndarray  # (N,) int64
    names: list[str]
    kinds: list[str] | None = None  # per row: reference | negative (None: all references)


def reembed(
    backend: Backend,
    embedder: Embedder,
    missing_only: bool = False,
    face_ids: Sequence[int] | None = None,
) -> int:
    """(Re)compute faces' embeddings for ``embedder`` from the stored chips (every face, or
    those of ``face_ids``): batches of ``EMBED_BATCH`` faces, one transaction each; returns the
    faces embedded. A face deleted meanwhile is skipped. ``missing_only`` keeps existing ones."""
    key = model_key(embedder)
    sql, params = "SELECT f.id FROM faces f WHERE 1 = 1", list[Any]()
    if missing_only:
        sql += (
            " AND NOT EXISTS (SELECT 1 FROM embeddings e "
            "WHERE e.face_id = f.id AND e.model_key = ?)"
        )
        params.append(key)
    with backend.read() as con:
        if face_ids is None:
            ids = [int(r[0]) for r in con.execute(sql + " ORDER BY f.id", params)]
        else:  # only these faces: asked by id, a block at a time
            ids = sorted(
                int(r[0])
                for block, marks in id_blocks(face_ids)
                for r in con.execute(f"{sql} AND f.id IN ({marks})", [*params, *block])
            )
    done = 0
    for start in range(0, len(ids), EMBED_BATCH):
        chunk = ids[start : start + EMBED_BATCH]
        marks = ",".join("?" * len(chunk))
        with backend.read() as con:
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
        with backend.write() as con:
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
                log_change(backend, con, "embed", kept_ids, model_key=key)
                done += len(keep)
    return done


def missing_embeddings(con: Connection, key: str, face_ids: Sequence[int] | None) -> list[int]:
    """Faces (of ``face_ids``, or all) that have no embedding by model ``key``."""
    sql = (
        "SELECT f.id FROM faces f WHERE NOT EXISTS (SELECT 1 FROM embeddings e "
        "WHERE e.face_id = f.id AND e.model_key = ?)"
    )
    if face_ids is None:
        return sorted(int(r[0]) for r in con.execute(sql, (key,)))
    return sorted(
        int(r[0])
        for block, marks in id_blocks(face_ids)
        for r in con.execute(f"{sql} AND f.id IN ({marks})", [key, *block])
    )


def model_keys(con: Connection) -> dict[str, int]:
    """Model keys with stored embeddings and how many faces each covers."""
    rows = con.execute("SELECT model_key, COUNT(*) FROM embeddings GROUP BY model_key").fetchall()
    return {str(k): int(n) for k, n in sorted(rows)}


def embedding_rows(
    con: Connection, key: str, kinds: Sequence[str], face_ids: Sequence[int] | None
) -> list[Any]:
    """Rows (face id, person id, name, dim, vector bytes, kind) of model ``key``'s embeddings
    of faces of ``kinds`` (only ``face_ids`` when given), by person name then face id."""
    sql = (
        "SELECT f.id, p.id, p.name, e.dim, e.vector, f.kind FROM embeddings e "
        "JOIN faces f ON f.id = e.face_id JOIN people p ON p.id = f.person_id "
        f"WHERE e.model_key = ? AND f.kind IN ({','.join('?' * len(kinds))})"
    )
    params: list[Any] = [key, *kinds]
    if face_ids is None:
        rows = list(con.execute(sql, params).fetchall())
    else:
        rows = [
            r
            for block, marks in id_blocks(face_ids)
            for r in con.execute(f"{sql} AND f.id IN ({marks})", [*params, *block])
        ]
    rows.sort(key=lambda r: (str(r[2]), int(r[0])))
    return rows


def gallery_embeddings(key: str, rows: list[Any], where: str) -> GalleryEmbeddings:
    """``embedding_rows`` as arrays; ``GalleryError`` (naming ``where``) when they mix sizes."""
    dims = {int(r[3]) for r in rows}
    if len(dims) > 1:
        raise GalleryError(f"{where}: model {key} has embeddings of sizes {sorted(dims)}")
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
