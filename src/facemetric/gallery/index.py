"""Nearest-neighbour search over L2-normalised embeddings (cosine = inner product).

Back ends are chosen by name from a registry: ``exact`` (numpy matrix product + argpartition),
``faiss`` (faiss-cpu ``IndexFlatIP``), ``half`` (few queries scan a float16 copy with faiss, then
the candidates are re-ranked in float32; batches go to ``exact``) and ``auto`` (``half`` above
``AUTO_HALF_ABOVE`` entries when faiss is installed, else ``exact``). Every back end returns the
same thing: ``(similarities (Q, k) float32, rows (Q, k) int64)``, best first, with float32
similarities.

One query against a large gallery is bound by memory bandwidth (1M x 128 float32 is 512 MB read
per query: ~50 ms on this 2-core machine); the float16 copy halves the bytes read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

import numpy as np

from facemetric.errors import ConfigError

AUTO_HALF_ABOVE = 200_000
# ``half``: at most this many queries per call scan the float16 copy (faiss has no BLAS path
# for it, so batches are faster in float32), and each keeps this many extra candidates for
# the float32 re-ranking (float16 similarities are off by ~1e-3 at most).
HALF_MAX_QUERIES = 8
HALF_EXTRA = 32
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
        n = len(self.vectors)
        for start in range(0, len(q), QUERY_BLOCK):
            block = q[start : start + QUERY_BLOCK] @ self.vectors.T
            if k < n:  # the k largest, without copying the block to negate it
                part = np.argpartition(block, n - k, axis=1)[:, n - k :]
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


class HalfIndex:
    """Few queries scan a float16 copy (faiss ``IndexScalarQuantizer`` fp16, half the memory
    traffic of float32), then their best ``k + HALF_EXTRA`` candidates are re-scored in float32
    and re-ranked; more queries than ``HALF_MAX_QUERIES`` per call go to ``ExactIndex``. The
    similarities returned are the float32 ones; a row is missed only when more than
    ``HALF_EXTRA`` others lie within float16 rounding (~1e-3) of the k-th best."""

    name = "half"

    def __init__(self, vectors: np.ndarray, threads: int | None = None) -> None:
        import faiss

        self.exact = ExactIndex(vectors)
        self.vectors = self.exact.vectors  # no copy of a float32 C-contiguous matrix
        self.dim = self.vectors.shape[1]
        if threads:  # faiss's OpenMP setting is process-wide: changed only when asked
            faiss.omp_set_num_threads(threads)
        self.index = faiss.IndexScalarQuantizer(
            self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        if len(self.vectors):
            self.index.add(self.vectors)

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _as_matrix(queries, "queries", self.dim)
        k = min(int(k), len(self))
        if k <= 0:
            return _empty(len(q))
        if len(q) > HALF_MAX_QUERIES:
            return self.exact.search(q, k)
        wide = min(len(self), k + HALF_EXTRA)
        _, cand = self.index.search(q, wide)
        cand = cand.astype(np.int64)
        exact = np.einsum("qd,qcd->qc", q, self.vectors[cand])
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        sims = np.take_along_axis(exact, order, axis=1).astype(np.float32)
        return sims, np.take_along_axis(cand, order, axis=1)


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


@register_index("half")
def _half(vectors: np.ndarray) -> SearchIndex:
    if not _faiss_available():
        raise ConfigError("index: 'half' needs the faiss-cpu package (pip install faiss-cpu)")
    return HalfIndex(vectors)


@register_index("auto")
def _auto(vectors: np.ndarray) -> SearchIndex:
    if len(vectors) > AUTO_HALF_ABOVE and _faiss_available():
        return HalfIndex(vectors)
    return ExactIndex(vectors)
