"""Approximate search for large galleries: a FAISS index proposes candidates, which are re-scored
exactly (float32 inner products of the L2-normalised vectors), so every similarity returned is
the exact one and only a face the FAISS index never proposed can be missed.

Two candidate generators, chosen by name:

- ``ivf`` (what ``auto`` uses): an inverted file, ``IndexIVF`` with sqrt(N) lists (k-means),
  1/8 of them probed per query, each face stored as a 4-bit product code (``PQ{D/4}x4fs``, D/8
  bytes, scanned with SIMD "fast scan"); the best ``k + RERANK`` codes are re-scored. It adds
  and removes in place (``add_with_ids`` / ``remove_ids``). Measured at 1M x 128 on 2 shared
  cores (docs/search.md): 0.7 ms per query, recall@1 1.000, built in ~85 s.
- ``hnsw``: a graph (faiss ``IndexHNSWFlat``). It adds in place but cannot delete: a removed
  face stays in the graph as a dead entry that the re-scoring drops (its id is no longer held)
  until a rebuild. Its build is ~10x slower than the inverted file's here (more than 2 min per
  100k faces on 2 loaded cores), which is why ``auto`` does not use it.

``ApproximateIndex`` holds the float32 vectors itself (``VectorSlots``) and answers exactly (a
full scan) while the gallery has at most ``approx_above`` faces. Above it, and again when the
gallery has grown ``REBUILD_GROWTH`` times past the size the FAISS index was built at or a
``REBUILD_STALE`` fraction of its entries are dead, it builds a new FAISS index, in a
background thread when ``background`` (searches go on meanwhile: exact, or with the previous
FAISS index; the changes made during the build are replayed onto the new one before it
serves). Additions and removals never wait for a rebuild.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Protocol

import numpy as np

from facemetric.errors import ConfigError
from facemetric.gallery.scan import empty_result, exact_search, faiss_available, top_k
from facemetric.gallery.slots import VectorSlots, as_ids, as_matrix

log = logging.getLogger(__name__)

AUTO_APPROX_ABOVE = 100_000  # ``auto``: exact scan up to this many faces, approximate above
AUTO_METHOD = "ivf"
MIN_APPROX_ENTRIES = 64  # fewer faces than this are always scanned exactly
RERANK = 40  # candidates re-scored exactly beyond the k asked for
REBUILD_GROWTH = 2.0
REBUILD_STALE = 0.2
SHRINK_BELOW = 0.5  # drop back to the exact scan below this fraction of ``approx_above``

# HNSW: M neighbours per node; efSearch (the search's beam width) is raised with the size.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 64
# IVF: about IVF_LISTS_PER_SQRT * sqrt(N) lists (1024 at 1M), IVF_PROBE_FRACTION of them
# searched, k-means trained on IVF_TRAIN_PER_LIST faces per list.
IVF_LISTS_PER_SQRT = 1
IVF_PROBE_FRACTION = 1 / 8
IVF_TRAIN_PER_LIST = 50
IVF_PQ_FROM = 1000  # fewer faces get 8-bit scalar codes
IVF_TRAIN_MIN = 10_000  # the product quantizer learns from at least this many (or all)


def params_for(method: str, entries: int, dim: int = 128) -> dict[str, Any]:
    """The FAISS parameters a gallery of ``entries`` faces is built and searched with."""
    if method == "hnsw":
        grow = max(0.0, math.log2(max(entries, 1) / 1_000_000))  # wider beam past 1M
        return {
            "M": HNSW_M,
            "efConstruction": HNSW_EF_CONSTRUCTION,
            "efSearch": int(HNSW_EF_SEARCH * (1 + grow)),
        }
    if method == "ivf":
        nlist = 2 ** round(math.log2(max(1.0, IVF_LISTS_PER_SQRT * math.sqrt(max(entries, 1)))))
        nlist = max(1, min(nlist, entries // IVF_TRAIN_PER_LIST))
        # 4-bit product codes learn 16 centroids per part: pointless (and untrainable) on a
        # few faces, which 8-bit scalar codes serve as well
        codes = f"PQ{dim // 4}x4fs" if dim % 8 == 0 and entries >= IVF_PQ_FROM else "SQ8"
        return {
            "nlist": nlist,
            "nprobe": max(1, math.ceil(nlist * IVF_PROBE_FRACTION)),
            "codes": codes,
        }
    raise ConfigError(f"index: unknown approximate method {method!r}; use 'hnsw' or 'ivf'")


class Candidates(Protocol):
    """A FAISS index over face ids that proposes the likely nearest ones."""

    entries: int  # vectors it holds, dead ones included
    dead: int  # held but removed (or replaced) since it was built

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, n: int) -> np.ndarray: ...

    def memory_bytes(self) -> int: ...

    def params(self) -> dict[str, Any]: ...


class HNSWCandidates:
    """faiss ``IndexHNSWFlat``; its labels (insertion order) map to face ids through an array
    of ours (faiss's ``IndexIDMap`` runs an OpenMP loop per search, slow on a loaded CPU)."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray, params: dict[str, Any]) -> None:
        import faiss

        self._params = dict(params)
        self.dim = int(vectors.shape[1])
        self.index = faiss.IndexHNSWFlat(self.dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = params["efConstruction"]
        self.index.hnsw.efSearch = params["efSearch"]
        self._ids = np.zeros(0, np.int64)
        self.entries, self.dead = 0, 0
        self.add(ids, vectors)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add(vectors)
            self._ids = np.concatenate([self._ids, ids])
            self.entries += len(ids)

    def remove(self, ids: np.ndarray) -> None:
        self.dead += len(ids)  # the graph keeps them; re-scoring drops ids no longer held

    def search(self, queries: np.ndarray, n: int) -> np.ndarray:
        self.index.hnsw.efSearch = max(self._params["efSearch"], n)  # the beam covers n
        _, labels = self.index.search(queries, n)
        return np.where(labels >= 0, self._ids[np.maximum(labels, 0)], -1)

    def memory_bytes(self) -> int:
        # float32 vectors, level-0 links (2M), upper levels (~M/(M-1) per node), levels, ids
        m = self._params["M"]
        per = 4 * self.dim + 4 * 2 * m + 4 * m // (m - 1) + 4 + 8 + 8
        return int(per * self.entries)

    def params(self) -> dict[str, Any]:
        return dict(self._params)


class IVFCandidates:
    """faiss ``IndexIVF`` with ``codes`` per face (``PQ{D/4}x4fs``: 4-bit product codes scanned
    with SIMD fast-scan, D/8 bytes a face; ``SQ8``; ``Flat``), ``add_with_ids``/``remove_ids``."""

    def __init__(
        self, ids: np.ndarray, vectors: np.ndarray, params: dict[str, Any], seed: int = 0
    ) -> None:
        import faiss

        self._params = dict(params)
        self.dim = int(vectors.shape[1])
        nlist = int(params["nlist"])
        self.index = faiss.index_factory(
            self.dim, f"IVF{nlist},{params['codes']}", faiss.METRIC_INNER_PRODUCT
        )
        self._ivf = faiss.extract_index_ivf(self.index)
        sample = min(len(vectors), max(nlist * IVF_TRAIN_PER_LIST, IVF_TRAIN_MIN))
        rng = np.random.default_rng(seed)
        take = np.sort(rng.choice(len(vectors), sample, replace=False))
        self._ivf.cp.seed = seed
        self.index.train(np.ascontiguousarray(vectors[take]))
        self._ivf.nprobe = int(params["nprobe"])
        self.entries, self.dead = 0, 0
        self.add(ids, vectors)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(vectors, ids)
            self.entries += len(ids)

    def remove(self, ids: np.ndarray) -> None:
        import faiss

        if len(ids):
            self.entries -= int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))

    def search(self, queries: np.ndarray, n: int) -> np.ndarray:
        self._ivf.nprobe = int(self._params["nprobe"])
        _, ids = self.index.search(queries, n)
        return ids.astype(np.int64)

    def memory_bytes(self) -> int:
        codes = self.entries * (int(self._ivf.code_size) + 8)  # a code and an id per face
        return int(codes + 2 * int(self._params["nlist"]) * self.dim * 4)  # centroids (+ PQ)

    def params(self) -> dict[str, Any]:
        return dict(self._params)


def build_candidates(
    method: str, ids: np.ndarray, vectors: np.ndarray, params: dict[str, Any] | None = None
) -> Candidates:
    params = {**params_for(method, len(ids), vectors.shape[1]), **(params or {})}
    if method == "hnsw":
        return HNSWCandidates(ids, vectors, params)
    if method == "ivf":
        return IVFCandidates(ids, vectors, params)
    raise ConfigError(f"index: unknown approximate method {method!r}; use 'hnsw' or 'ivf'")


class ApproximateIndex:
    """Exact up to ``approx_above`` faces, FAISS candidates re-scored exactly above (see the
    module's docstring)."""

    def __init__(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        method: str = AUTO_METHOD,
        approx_above: int = AUTO_APPROX_ABOVE,
        background: bool = True,
        params: dict[str, Any] | None = None,
        rerank: int = RERANK,
    ) -> None:
        params_for(method, 1)  # a bad method fails here, not in a thread
        vectors = as_matrix(vectors, "vectors")
        self.dim = int(vectors.shape[1])
        self.slots = VectorSlots(self.dim, as_ids(ids, len(vectors)), vectors)
        self.method = method
        self.approx_above = int(approx_above)
        self.background = background
        self.fixed_params = dict(params) if params else None
        self.rerank = int(rerank)
        self.build_seconds: float | None = None  # how long the last build took
        self._lock = threading.RLock()
        self._cand: Candidates | None = None
        self._built_at = 0  # faces held when the FAISS index in use was built
        self._journal: list[tuple[str, np.ndarray, np.ndarray | None]] | None = None
        self._builder: threading.Thread | None = None
        self._maintain()

    # ---- what is in use -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return "exact" if self._cand is None else self.method

    @property
    def building(self) -> bool:
        return self._builder is not None

    def __len__(self) -> int:
        return len(self.slots)

    def wait(self, timeout: float | None = None) -> None:
        """Until a background build (if any) has finished."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)

    # ---- changes --------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = as_matrix(vectors, "vectors", self.dim)
        ids = as_ids(ids, len(vectors))
        with self._lock:
            replaced = self.slots.present(ids)
            self.slots.add(ids, vectors)
            self._record("remove", replaced, None)
            self._record("add", ids, vectors)
            self._maintain()

    def remove(self, ids: np.ndarray) -> None:
        with self._lock:
            removed = self.slots.remove(np.asarray(ids, np.int64))
            self._record("remove", removed, None)
            self._maintain()

    def _record(self, op: str, ids: np.ndarray, vectors: np.ndarray | None) -> None:
        if not len(ids):
            return
        if self._cand is not None:
            _apply(self._cand, op, ids, vectors)
        if self._journal is not None:  # a build is running: replay this onto its result
            self._journal.append((op, ids, None if vectors is None else vectors.copy()))

    def _maintain(self) -> None:
        """Start a build, or drop back to the exact scan, when the size says so."""
        if self._builder is not None:
            return
        n = len(self.slots)
        if n < max(MIN_APPROX_ENTRIES, self.approx_above * SHRINK_BELOW) or (
            n <= self.approx_above and self._cand is None
        ):
            self._cand, self._built_at = None, 0
            return
        cand = self._cand
        if cand is not None and (
            n <= REBUILD_GROWTH * self._built_at and cand.dead <= REBUILD_STALE * cand.entries
        ):
            return
        if not faiss_available():  # auto without faiss-cpu: the exact scan at any size
            return
        ids, vectors = self.slots.ids.copy(), self.slots.vectors.copy()
        if not self.background:
            self._install(self._build(ids, vectors), len(ids))
            return
        self._journal = []
        self._builder = threading.Thread(
            target=self._build_in_background,
            args=(ids, vectors),
            name="facemetric-index-build",
            daemon=True,
        )
        self._builder.start()

    def _build(self, ids: np.ndarray, vectors: np.ndarray) -> Candidates:
        start = time.perf_counter()
        cand = build_candidates(self.method, ids, vectors, self.fixed_params)
        self.build_seconds = time.perf_counter() - start
        log.info(
            "index: %s over %d faces built in %.1f s", self.method, len(ids), self.build_seconds
        )
        return cand

    def _install(self, cand: Candidates, built_at: int) -> None:
        self._cand, self._built_at = cand, built_at

    def _build_in_background(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        try:
            cand: Candidates | None = self._build(ids, vectors)
        except Exception:  # keep serving with what is there; the next change tries again
            log.exception("index: building the %s index failed", self.method)
            cand = None
        del vectors
        with self._lock:
            journal, self._journal, self._builder = self._journal or [], None, None
            if cand is not None:
                for op, j_ids, j_vectors in journal:
                    _apply(cand, op, j_ids, j_vectors)
                self._install(cand, len(ids))
                self._maintain()  # the gallery may have changed enough meanwhile

    # ---- search ---------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = as_matrix(queries, "queries", self.dim)
        with self._lock:
            k = min(int(k), len(self.slots))
            if k <= 0:
                return empty_result(len(q))
            if self._cand is None:
                return exact_search(self.slots, q, k)
            # dead entries (removed faces an HNSW graph still holds) may take candidates' places
            extra = self.rerank + min(self._cand.dead, k + self.rerank)
            wide = min(k + extra, self._cand.entries)
            cand_ids = self._cand.search(q, max(wide, k))
            rows = self.slots.rows(cand_ids)  # -1: padding, or dead in the FAISS index
            rows[_repeats(cand_ids)] = -1
            vectors = self.slots.vectors[np.maximum(rows, 0)]
        sims = np.einsum("qd,qcd->qc", q, vectors)
        sims[rows < 0] = -np.inf
        best, cols = top_k(sims, k)
        ids = np.take_along_axis(cand_ids, cols, axis=1)
        ids[~np.isfinite(best)] = -1
        return best.astype(np.float32), ids

    def memory_bytes(self) -> int:
        cand = self._cand
        return self.slots.memory_bytes() + (cand.memory_bytes() if cand is not None else 0)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            cand = self._cand
            out: dict[str, Any] = {
                "kind": self.kind,
                "entries": len(self),
                "memory_bytes": self.memory_bytes(),
                "approximate": self.method,
                "approx_above": self.approx_above,
                "building": self.building,
            }
            if cand is not None:
                out.update(cand.params(), dead=cand.dead, rerank=self.rerank)
            if self.build_seconds is not None:
                out["build_seconds"] = round(self.build_seconds, 3)
            return out


def _apply(cand: Candidates, op: str, ids: np.ndarray, vectors: np.ndarray | None) -> None:
    if op == "add":
        assert vectors is not None
        cand.add(ids, vectors)
    else:
        cand.remove(ids)


def _repeats(ids: np.ndarray) -> np.ndarray:
    """A mask of the entries of each row that repeat an earlier one (an HNSW graph holds a
    replaced face twice under one id)."""
    order = np.argsort(ids, axis=1, kind="stable")
    ordered = np.take_along_axis(ids, order, axis=1)
    mask = np.zeros(ids.shape, bool)
    dup = np.zeros(ids.shape, bool)
    dup[:, 1:] = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    np.put_along_axis(mask, order, dup, axis=1)
    return mask
