"""Faces found in photos, kept between runs: one SQLite file keyed by photo path, size,
modification time and model key, so a second ``facemetric cluster`` embeds only new or changed
photos (and a run cut short resumes where it stopped)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemetric.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS photo_faces (
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    model_key TEXT NOT NULL,
    faces TEXT NOT NULL,          -- JSON list of {"box": [...], "score": s}
    embeddings BLOB NOT NULL,     -- float32 (n_faces, dim), row-major
    dim INTEGER NOT NULL,
    PRIMARY KEY (path, model_key)
)
"""


@dataclass(frozen=True)
class PhotoFaces:
    """Every face of one photo: boxes (x1, y1, x2, y2), detector scores and embeddings."""

    boxes: list[tuple[float, float, float, float]]
    scores: list[float]
    embeddings: np.ndarray  # (n_faces, dim) float32, L2-normalised


class EmbeddingCache:
    """Photo faces by (path, size, mtime, model key); a changed photo is a miss."""

    def __init__(self, path: str | Path, model_key: str) -> None:
        self.path = Path(path)
        self.model_key = model_key
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(self.path)
            self._con.execute(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{self.path}: cannot open the embedding cache ({exc})") from exc
        self._pending = 0

    @staticmethod
    def _stat(photo: Path) -> tuple[int, int]:
        st = photo.stat()
        return int(st.st_size), int(st.st_mtime_ns)

    def get(self, photo: Path) -> PhotoFaces | None:
        size, mtime = self._stat(photo)
        row = self._con.execute(
            "SELECT faces, embeddings, dim FROM photo_faces WHERE path = ? AND model_key = ? "
            "AND size = ? AND mtime_ns = ?",
            (str(photo.resolve()), self.model_key, size, mtime),
        ).fetchone()
        if row is None:
            return None
        faces = json.loads(row[0])
        emb = np.frombuffer(row[1], dtype=np.float32).reshape(len(faces), int(row[2]))
        return PhotoFaces(
            [tuple(f["box"]) for f in faces], [float(f["score"]) for f in faces], emb.copy()
        )

    def put(self, photo: Path, found: PhotoFaces) -> None:
        size, mtime = self._stat(photo)
        faces = [
            {"box": [float(v) for v in b], "score": float(s)}
            for b, s in zip(found.boxes, found.scores, strict=True)
        ]
        emb = np.ascontiguousarray(found.embeddings, dtype=np.float32)
        dim = int(emb.shape[1]) if emb.ndim == 2 and emb.shape[0] else 0
        self._con.execute(
            "INSERT OR REPLACE INTO photo_faces VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                str(photo.resolve()),
                size,
                mtime,
                self.model_key,
                json.dumps(faces),
                emb.tobytes(),
                dim,
            ),
        )
        self._pending += 1
        if self._pending >= 50:  # a run cut short keeps most of its work
            self.commit()

    def commit(self) -> None:
        self._con.commit()
        self._pending = 0

    def close(self) -> None:
        self.commit()
        self._con.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
