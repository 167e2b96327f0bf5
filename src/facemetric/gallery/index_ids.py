"""Interim: today's row-numbered indexes behind the face-id interface the live gallery uses
(``create_index(name, ids, vectors)``, ``add``, ``remove``, ``search -> (sims, ids)``); rebuilt
on each change. Replaced by the id-keyed indexes of ``facemetric.gallery.index``."""

from __future__ import annotations

from typing import Any

import numpy as np

from facemetric.gallery import index as rows_index


class IdIndex:
    def __init__(self, name: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.kind = name
        self.ids = np.asarray(ids, np.int64)
        self.vectors = np.asarray(vectors, np.float32).reshape(len(self.ids), np.shape(vectors)[-1])
        self._build()

    def _build(self) -> None:
        self.inner = rows_index.create_index(self.kind, self.vectors)
        self.name = self.inner.name

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, np.float32).reshape(len(ids), np.shape(vectors)[-1])
        if len(self.ids) == 0:
            self.vectors = vectors.copy()
        else:
            self.vectors = np.concatenate([self.vectors, vectors])
        self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])
        self._build()

    def remove(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self.ids, np.asarray(ids, np.int64))
        self.ids, self.vectors = self.ids[keep], self.vectors[keep]
        self._build()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims, rows = self.inner.search(queries, k)
        if rows.size == 0:
            return sims, rows
        return sims, np.where(rows >= 0, self.ids[np.maximum(rows, 0)], -1)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "entries": len(self.ids)}


def create_index(name: str, ids: np.ndarray, vectors: np.ndarray) -> IdIndex:
    return IdIndex(name, ids, vectors)
