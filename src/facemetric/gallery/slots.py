"""The vectors of an id-keyed index, kept dense: rows ``0..n-1`` of one float32 matrix, a face
id per row and a map from id to row (the ids sorted beside their rows, 16 bytes a face where a
Python dict took 106, looked up by binary search). Adding appends: the matrix grows by half its
size when full, so the vectors cost O(added) amortised. Removing moves the last rows into the
holes, O(removed). Each change also rewrites the two sorted id arrays (a few ms at 1M faces).
Nothing is rebuilt from scratch. Every index keeps its float32 vectors here: the exact scan
reads them, and the approximate index re-scores its candidates with them."""

from __future__ import annotations

import numpy as np

from facemetric.errors import ConfigError

# Spare rows kept beyond those filled: a fraction of the size (at least MIN_SPARE), so that
# additions after a bulk load do not copy the whole matrix at once.
SPARE_FRACTION = 0.05
MIN_SPARE = 1024


def as_matrix(x: np.ndarray, what: str, dim: int | None = None) -> np.ndarray:
    """``x`` as a C-contiguous float32 (N, D) matrix (a 1-D vector is one row)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        want = f"(N, {dim})" if dim is not None else "(N, D)"
        raise ConfigError(f"{what}: expected a {want} matrix, got shape {x.shape}")
    return np.ascontiguousarray(x)


def as_ids(ids: np.ndarray | list[int], count: int | None = None) -> np.ndarray:
    """``ids`` as a 1-D int64 array, ``count`` long when given, without repeats."""
    out = np.asarray(ids, dtype=np.int64).reshape(-1)
    if count is not None and len(out) != count:
        raise ConfigError(f"ids: {len(out)} ids for {count} vectors")
    if len(np.unique(out)) != len(out):
        raise ConfigError("ids: the same id is given twice")
    if len(out) and out.min() < 0:
        raise ConfigError(f"ids: must be >= 0, got {int(out.min())}")
    return out


class VectorSlots:
    """Dense float32 vectors keyed by int64 ids (see the module's docstring)."""

    def __init__(self, dim: int, ids: np.ndarray | None = None, vectors: np.ndarray | None = None):
        self.dim = int(dim)
        vectors = as_matrix(
            vectors if vectors is not None else np.zeros((0, dim), np.float32), "vectors", dim
        )
        ids = as_ids(ids if ids is not None else np.arange(len(vectors)), len(vectors))
        n = len(vectors)
        capacity = n + max(MIN_SPARE, int(n * SPARE_FRACTION))
        self._vectors = np.empty((capacity, self.dim), np.float32)
        self._vectors[:n] = vectors
        self._ids = np.empty(capacity, np.int64)
        self._ids[:n] = ids
        self._n = n
        order = np.argsort(ids, kind="stable")
        self._sorted_ids, self._sorted_rows = ids[order], order.astype(np.int64)

    def __len__(self) -> int:
        return self._n

    def __contains__(self, face_id: int) -> bool:
        return bool(self.rows(np.asarray([face_id], np.int64))[0] >= 0)

    @property
    def vectors(self) -> np.ndarray:
        """The (n, D) filled rows (a view: valid until the next change)."""
        return self._vectors[: self._n]

    @property
    def ids(self) -> np.ndarray:
        """The id of each filled row (a view: valid until the next change)."""
        return self._ids[: self._n]

    def present(self, ids: np.ndarray) -> np.ndarray:
        """Those of ``ids`` that are held."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        return ids[self.rows(ids) >= 0]

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The row of each id, -1 where it is not held (any shape)."""
        ids = np.asarray(ids, np.int64)
        if not len(self._sorted_ids):
            return np.full(ids.shape, -1, np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_ids, ids), len(self._sorted_ids) - 1)
        return np.where(self._sorted_ids[pos] == ids, self._sorted_rows[pos], -1)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Hold ``vectors`` under ``ids``; an id already held gets its new vector."""
        vectors = as_matrix(vectors, "vectors", self.dim)
        ids = as_ids(ids, len(vectors))
        if not len(ids):
            return
        rows = self.rows(ids)
        old = rows >= 0
        if old.any():
            self._vectors[rows[old]] = vectors[old]
            ids, vectors = ids[~old], vectors[~old]
        n, m = self._n, len(ids)
        if not m:
            return
        if n + m > len(self._ids):
            self._resize(n + m + max(MIN_SPARE, int((n + m) * 0.5)))
        self._vectors[n : n + m] = vectors
        self._ids[n : n + m] = ids
        order = np.argsort(ids, kind="stable")
        at = np.searchsorted(self._sorted_ids, ids[order])
        self._sorted_ids = np.insert(self._sorted_ids, at, ids[order])
        self._sorted_rows = np.insert(self._sorted_rows, at, n + order)
        self._n = n + m

    def remove(self, ids: np.ndarray) -> np.ndarray:
        """Forget ``ids`` (those not held are ignored); returns the ids that were removed."""
        ids = np.unique(np.asarray(ids, np.int64).reshape(-1))
        rows = self.rows(ids)
        removed, rows = ids[rows >= 0], rows[rows >= 0]
        if not len(removed):
            return removed
        at = np.searchsorted(self._sorted_ids, removed)
        self._sorted_ids = np.delete(self._sorted_ids, at)
        self._sorted_rows = np.delete(self._sorted_rows, at)
        n_new = self._n - len(rows)
        holes = np.sort(rows[rows < n_new])
        tail = np.arange(n_new, self._n)
        tail = tail[~np.isin(tail, rows)]  # the kept rows past the new end fill the holes
        self._vectors[holes] = self._vectors[tail]
        self._ids[holes] = self._ids[tail]
        self._sorted_rows[np.searchsorted(self._sorted_ids, self._ids[holes])] = holes
        self._n = n_new
        if len(self._ids) > 4 * max(n_new, MIN_SPARE):  # most rows gone: give memory back
            self._resize(n_new + max(MIN_SPARE, int(n_new * SPARE_FRACTION)))
        return removed

    def _resize(self, capacity: int) -> None:
        vectors = np.empty((capacity, self.dim), np.float32)
        vectors[: self._n] = self._vectors[: self._n]
        ids = np.empty(capacity, np.int64)
        ids[: self._n] = self._ids[: self._n]
        self._vectors, self._ids = vectors, ids

    def memory_bytes(self) -> int:
        """Bytes held: the matrix and ids (spare rows included) and the id -> row map."""
        map_bytes = self._sorted_ids.nbytes + self._sorted_rows.nbytes
        return int(self._vectors.nbytes + self._ids.nbytes + map_bytes)
