"""The exact scan every index falls back on: float32 matrix products over all vectors, the k
best of each row. Shared by ``facemetric.gallery.index`` (the exact kinds) and
``facemetric.gallery.approximate`` (its re-scoring, and its scan of small galleries)."""

from __future__ import annotations

import numpy as np

from facemetric.gallery.slots import VectorSlots, as_matrix

# Queries per matrix product: bounds the (Q, N) similarity block kept in memory (~256 MB at 1M).
QUERY_BLOCK = 64


def empty_result(q: int, k: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return np.full((q, k), -np.inf, np.float32), np.full((q, k), -1, np.int64)


def top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest of each row of ``sims`` (Q, N), best first: (values, columns)."""
    n = sims.shape[1]
    if k < n:  # the k largest, without copying the block to negate it
        part = np.argpartition(sims, n - k, axis=1)[:, n - k :]
    else:
        part = np.broadcast_to(np.arange(n), sims.shape).copy()
    top = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)


def exact_search(slots: VectorSlots, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over every vector of ``slots``: float32 GEMM per block of queries."""
    q = as_matrix(queries, "queries", slots.dim)
    k = min(int(k), len(slots))
    if k <= 0:
        return empty_result(len(q))
    sims = np.empty((len(q), k), np.float32)
    rows = np.empty((len(q), k), np.int64)
    vectors = slots.vectors
    for start in range(0, len(q), QUERY_BLOCK):
        block = q[start : start + QUERY_BLOCK] @ vectors.T
        sims[start : start + len(block)], rows[start : start + len(block)] = top_k(block, k)
    return sims, slots.ids[rows]


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True
