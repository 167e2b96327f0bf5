"""Nearest-neighbour search over L2-normalised embeddings (cosine = inner product).

Back ends are chosen by name from a registry: ``exact`` (numpy matrix product + argpartition, fine
up to about a million faces), ``faiss`` (faiss-cpu ``IndexFlatIP``) and ``auto`` (faiss above
``AUTO_FAISS_ABOVE`` entries when faiss is installed). Every back end returns the same thing:
``(similarities (Q, k) float32, rows (Q, k) int64)``, best first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

import numpy as np

from facemetric.errors import ConfigError

AUTO_FAISS_ABOVE = 1_000_000
# Queries per matrix product: bounds the (Q, N) similarity block kept in memory (~256 MB at 1M).
QUERY_BLOCK = 64


class SearchIndex(Protocol):
    name: str

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar rows for each query, best first."""
        ...


IndexFactory = Callable[[np.ndarray], SearchIndex]
_REGISTRY: dict[str, IndexFactory] = {}


def register_index(name: str) -> Callable[[IndexFactory], IndexFactory]:
    def wrap(factory: IndexFactory) -> IndexFactory:
        _REGISTRY[name] = factory
        return factory

    return wrap


def available_indexes() -> list[str]:
    return sorted(_REGISTRY)


def create_index(name: str, vectors: np.ndarray) -> SearchIndex:
    """A search index of kind ``name`` over ``vectors`` (N, D)."""
    if name not in _REGISTRY:
        raise ConfigError(f"index: unknown back end {name!r}; available: {available_indexes()}")
    return _REGISTRY[name](_as_matrix(vectors, "vectors"))


def _as_matrix(x: np.ndarray, what: str, dim: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        want = f"(N, {dim})" if dim is not None else "(N, D)"
        raise ConfigError(f"{what}: expected a {want} matrix, got shape {x.shape}")
    return np.ascontiguousarray(x)


def _empty(q: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((q, 0), np.float32), np.zeros((q, 0), np.int64)


class ExactIndex:
    """Brute-force cosine search with numpy: float32 GEMM per block of queries, argpartition."""

    name = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = _as_matrix(vectors, "vectors")

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _as_matrix(queries, "queries", self.vectors.shape[1])
        k = min(int(k), len(self.vectors))
        if k <= 0:
            return _empty(len(q))
        sims = np.empty((len(q), k), np.float32)
        rows = np.empty((len(q), k), np.int64)
        for start in range(0, len(q), QUERY_BLOCK):
            block = q[start : start + QUERY_BLOCK] @ self.vectors.T
            if k < block.shape[1]:
                part = np.argpartition(-block, k - 1, axis=1)[:, :k]
            else:
                part = np.broadcast_to(np.arange(block.shape[1]), block.shape).copy()
            top = np.take_along_axis(block, part, axis=1)
            order = np.argsort(-top, axis=1, kind="stable")
            sims[start : start + len(block)] = np.take_along_axis(top, order, axis=1)
            rows[start : start + len(block)] = np.take_along_axis(part, order, axis=1)
        return sims, rows


class FaissIndex:
    """faiss-cpu ``IndexFlatIP`` (exact inner product), tuned for small query batches."""

    name = "faiss"

    def __init__(self, vectors: np.ndarray, threads: int | None = None) -> None:
        import faiss

        # faiss-cpu 1.15 switches to BLAS only from 128000 queries x entries... per search call
        # (``distance_compute_blas_threshold`` = 20 queries in older versions); below it, it
        # runs a scalar loop ~6x slower than numpy for batched queries. Use BLAS from 2 queries.
        faiss.cvar.distance_compute_blas_threshold = 2
        faiss.omp_set_num_threads(threads or min(os.cpu_count() or 1, 8))
        vectors = _as_matrix(vectors, "vectors")
        self.dim = vectors.shape[1]
        self.index = faiss.IndexFlatIP(self.dim)
        if len(vectors):
            self.index.add(vectors)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _as_matrix(queries, "queries", self.dim)
        k = min(int(k), len(self))
        if k <= 0:
            return _empty(len(q))
        sims, rows = self.index.search(q, k)
        return sims.astype(np.float32), rows.astype(np.int64)


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


@register_index("exact")
def _exact(vectors: np.ndarray) -> SearchIndex:
    return ExactIndex(vectors)


@register_index("faiss")
def _faiss(vectors: np.ndarray) -> SearchIndex:
    if not _faiss_available():
        raise ConfigError("index: 'faiss' needs the faiss-cpu package (pip install faiss-cpu)")
    return FaissIndex(vectors)


@register_index("auto")
def _auto(vectors: np.ndarray) -> SearchIndex:
    if len(vectors) > AUTO_FAISS_ABOVE and _faiss_available():
        return FaissIndex(vectors)
    return ExactIndex(vectors)
