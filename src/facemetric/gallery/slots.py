"""The vectors of an id-keyed index, kept dense: rows ``0..n-1`` of one float32 matrix, a face
id per row and a map from id to row. Adding appends (the matrix grows by half its size when
full, so additions cost O(added) amortised); removing moves the last rows into the holes
(O(removed)); nothing is ever rebuilt from scratch. Every index keeps its float32 vectors here:
the exact scan reads them, the approximate index re-scores its candidates with them."""

from __future__ import annotations

import sys

import numpy as np

from facemetric.errors import ConfigError

# Spare rows kept beyond those filled: a fraction of the size (at least MIN_SPARE), so that
# additions after a bulk load do not copy the whole matrix at once.
SPARE_FRACTION = 0.05
MIN_SPARE = 1024
# Per id in the id -> row map beyond its table (sys.getsizeof): two Python ints (measured:
# 106 MB for 1M ids, 42 MB of it the table).
MAP_BYTES_PER_ENTRY = 64


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
        self._row_of: dict[int, int] = dict(zip(ids.tolist(), range(n), strict=True))

    def __len__(self) -> int:
        return self._n

    def __contains__(self, face_id: int) -> bool:
        return int(face_id) in self._row_of

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
        row_of = self._row_of
        return np.asarray([i for i in ids.tolist() if i in row_of], np.int64)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The row of each id, -1 where it is not held (any shape)."""
        get = self._row_of.get
        flat = [get(i, -1) for i in ids.reshape(-1).tolist()]
        return np.asarray(flat, np.int64).reshape(ids.shape)

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
        if n + m > len(self._ids):
            self._resize(n + m + max(MIN_SPARE, int((n + m) * 0.5)))
        self._vectors[n : n + m] = vectors
        self._ids[n : n + m] = ids
        self._row_of.update(zip(ids.tolist(), range(n, n + m), strict=True))
        self._n = n + m

    def remove(self, ids: np.ndarray) -> np.ndarray:
        """Forget ``ids`` (those not held are ignored); returns the ids that were removed."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        pop = self._row_of.pop
        pairs = [(i, r) for i in ids.tolist() if (r := pop(i, -1)) >= 0]
        if not pairs:
            return np.zeros(0, np.int64)
        removed = np.asarray([i for i, _ in pairs], np.int64)
        rows = np.asarray([r for _, r in pairs], np.int64)
        n_new = self._n - len(rows)
        holes = np.sort(rows[rows < n_new])
        tail = np.arange(n_new, self._n)
        tail = tail[~np.isin(tail, rows)]  # the kept rows past the new end fill the holes
        self._vectors[holes] = self._vectors[tail]
        self._ids[holes] = self._ids[tail]
        self._row_of.update(zip(self._ids[holes].tolist(), holes.tolist(), strict=True))
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
        map_bytes = sys.getsizeof(self._row_of) + MAP_BYTES_PER_ENTRY * len(self._row_of)
        return int(self._vectors.nbytes + self._ids.nbytes + map_bytes)
