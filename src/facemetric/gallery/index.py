"""Nearest-neighbour search over L2-normalised embeddings (cosine = inner product), keyed by
face id.

Every index has the same small surface (``SearchIndex``): ``add(ids, vectors)`` (an id already
held gets its new vector), ``remove(ids)``, ``search(queries, k) -> (similarities, ids)`` (each
(Q, k), best first, float32 and int64; ids -1 and similarity -inf pad a row that has fewer
than k answers), ``len``, ``memory_bytes()``, ``kind`` and ``describe()``. Additions and
removals change the index in place; none rebuilds it.

Kinds are chosen by name from a registry: ``exact`` (numpy matrix product + argpartition),
``faiss`` (the same exact scan by faiss-cpu's ``knn``), ``hnsw`` and ``ivf`` (approximate: a
FAISS graph or inverted-file index proposes candidates, which are re-scored exactly in float32,
see ``facemetric.gallery.approximate``) and ``auto`` (exact up to ``AUTO_APPROX_ABOVE`` faces,
approximate above, switching in a background thread as the gallery grows or shrinks).
``create_index(kind, vectors)`` without ids numbers the vectors 0..N-1, so ids are rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from facemetric.errors import ConfigError
from facemetric.gallery import approximate
from facemetric.gallery.scan import empty_result, exact_search, faiss_available
from facemetric.gallery.slots import VectorSlots, as_ids, as_matrix


class SearchIndex(Protocol):
    """An id-keyed similarity index (see the module's docstring)."""

    dim: int

    @property
    def kind(self) -> str:
        """The search in use now: ``exact``, ``faiss``, ``hnsw`` or ``ivf``."""
        ...

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar ids for each query, best first: (sims, ids)."""
        ...

    def memory_bytes(self) -> int: ...

    def describe(self) -> dict[str, Any]: ...


IndexFactory = Callable[[np.ndarray, np.ndarray], SearchIndex]
_REGISTRY: dict[str, IndexFactory] = {}


def register_index(name: str) -> Callable[[IndexFactory], IndexFactory]:
    def wrap(factory: IndexFactory) -> IndexFactory:
        _REGISTRY[name] = factory
        return factory

    return wrap


def available_indexes() -> list[str]:
    return sorted(_REGISTRY)


def check_index_name(name: str) -> str:
    """``name`` if it is a registered kind, else a ConfigError listing them."""
    if name not in _REGISTRY:
        raise ConfigError(f"index: unknown back end {name!r}; available: {available_indexes()}")
    return name


def create_index(
    name: str,
    vectors: np.ndarray,
    ids: np.ndarray | list[int] | None = None,
) -> SearchIndex:
    """A search index of kind ``name`` over ``vectors`` (N, D) under ``ids`` (default 0..N-1)."""
    check_index_name(name)
    vectors = as_matrix(vectors, "vectors")
    ids = as_ids(np.arange(len(vectors)) if ids is None else ids, len(vectors))
    return _REGISTRY[name](ids, vectors)


class ExactIndex:
    """Brute-force cosine search with numpy over dense id-keyed vectors."""

    kind = "exact"

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.dim = int(vectors.shape[1])
        self.slots = VectorSlots(self.dim, ids, vectors)

    def __len__(self) -> int:
        return len(self.slots)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.slots.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> None:
        self.slots.remove(ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(self.slots, queries, k)

    def memory_bytes(self) -> int:
        return self.slots.memory_bytes()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "entries": len(self), "memory_bytes": self.memory_bytes()}


class FaissFlatIndex(ExactIndex):
    """The exact scan by faiss-cpu (``faiss.knn``, inner product) over the same vectors."""

    kind = "faiss"

    def __init__(self, ids: np.ndarray, vectors: np.ndarray, threads: int | None = None) -> None:
        import faiss

        # faiss-cpu 1.15 switches to BLAS only from 128000 queries x entries... per search call
        # (``distance_compute_blas_threshold`` = 20 queries in older versions); below it, it
        # runs a scalar loop ~6x slower than numpy for batched queries. Use BLAS from 2 queries.
        faiss.cvar.distance_compute_blas_threshold = 2
        if threads:  # faiss's OpenMP setting is process-wide: changed only when asked
            faiss.omp_set_num_threads(threads)
        super().__init__(ids, vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        q = as_matrix(queries, "queries", self.dim)
        k = min(int(k), len(self))
        if k <= 0:
            return empty_result(len(q))
        sims, rows = faiss.knn(q, self.slots.vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
        return sims.astype(np.float32), self.slots.ids[rows.astype(np.int64)]


def _need_faiss(name: str) -> None:
    if not faiss_available():
        raise ConfigError(f"index: {name!r} needs the faiss-cpu package (pip install faiss-cpu)")


@register_index("exact")
def _exact(ids: np.ndarray, vectors: np.ndarray) -> SearchIndex:
    return ExactIndex(ids, vectors)


@register_index("faiss")
def _faiss(ids: np.ndarray, vectors: np.ndarray) -> SearchIndex:
    _need_faiss("faiss")
    return FaissFlatIndex(ids, vectors)


@register_index("hnsw")
def _hnsw(ids: np.ndarray, vectors: np.ndarray) -> SearchIndex:
    _need_faiss("hnsw")
    return approximate.ApproximateIndex(
        ids, vectors, method="hnsw", approx_above=0, background=False
    )


@register_index("ivf")
def _ivf(ids: np.ndarray, vectors: np.ndarray) -> SearchIndex:
    _need_faiss("ivf")
    return approximate.ApproximateIndex(
        ids, vectors, method="ivf", approx_above=0, background=False
    )


@register_index("auto")
def _auto(ids: np.ndarray, vectors: np.ndarray) -> SearchIndex:
    # faiss is imported only once the gallery is large enough to need it
    return approximate.ApproximateIndex(
        ids, vectors, approx_above=approximate.AUTO_APPROX_ABOVE, background=True
    )


def planned_index(entries: int, name: str = "auto") -> dict[str, Any]:
    """The search ``name`` gives a gallery of ``entries`` faces (for ``gallery info``)."""
    check_index_name(name)
    if name == "auto":
        if entries <= approximate.AUTO_APPROX_ABOVE or not faiss_available():
            return {"kind": "exact", "entries": entries}
        name = approximate.AUTO_METHOD
    if name in ("exact", "faiss"):
        return {"kind": name, "entries": entries}
    return {"kind": name, "entries": entries, **approximate.params_for(name, entries)}
