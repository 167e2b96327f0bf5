"""Grouping face embeddings into people with no gallery: the clustering core.

Stable API (``facemetric cluster`` and the unknown-face groups both call it)::

    cluster_embeddings(X, threshold=None, method=DEFAULT_METHOD, min_size=2) -> labels

``X`` is (n, d) float32, rows L2-normalised; ``threshold`` is a cosine similarity (the same scale
as the match threshold: two faces are alike when their dot product reaches it), None = the
method's default; ``labels`` is an (n,) int64 array, groups numbered 0, 1, ... largest first and
-1 for "unsorted" (a face in a group smaller than ``min_size``).

Methods, chosen by name from a registry (``METHODS``):

- ``average`` / ``complete``: agglomerative clustering (scipy's linkage) cut where the linkage
  similarity falls below the threshold. Run per connected component of the graph of pairs at or
  above the threshold: a group that average or complete linkage forms is always connected in that
  graph, so the result is the same as one linkage over all faces, at a fraction of the memory.
- ``chinese_whispers``: dlib's graph clustering (Biemann 2006) over the same graph, written on
  numpy: every face takes, in random order, the label with the largest summed edge weight among
  its neighbours, for a fixed number of passes.
- ``hdbscan``: scikit-learn's HDBSCAN (Euclidean on unit vectors, groups by density alone); a
  face with no groupmate at or above the threshold is unsorted.

``benchmarks/cluster_quality.py`` measures them (docs/cluster.md); the default is the one that
kept pairwise precision >= 0.98 with the best BCubed F there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from facemetric.errors import ConfigError

ClusterFn = Callable[[np.ndarray, float], np.ndarray]
_REGISTRY: dict[str, ClusterFn] = {}
# Default thresholds (cosine similarity) per method, for the pretrained dlib model: on CFP frontal
# photos of 120 people (benchmarks/cluster_quality.py's tuning set), the best BCubed F among the
# thresholds whose pairwise precision reaches 0.99. dlib's descriptors, L2-normalised, put even
# strangers at 0.8-0.9, hence the high values.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "average": 0.935,
    "complete": 0.92,
    "chinese_whispers": 0.945,
    "hdbscan": 0.90,
}
DEFAULT_METHOD = "average"
UNSORTED = -1


def register_method(name: str) -> Callable[[ClusterFn], ClusterFn]:
    def wrap(fn: ClusterFn) -> ClusterFn:
        _REGISTRY[name] = fn
        return fn

    return wrap


def available_methods() -> list[str]:
    return sorted(_REGISTRY)


def default_threshold(method: str = DEFAULT_METHOD) -> float:
    """The threshold ``cluster_embeddings`` uses for ``method`` when none is given."""
    _method(method)
    return DEFAULT_THRESHOLDS[method]


def cluster_embeddings(
    X: np.ndarray,
    threshold: float | None = None,
    method: str = DEFAULT_METHOD,
    min_size: int = 2,
) -> np.ndarray:
    """Group the rows of ``X`` (L2-normalised embeddings) into people; see the module doc.

    Returns (n,) int64 labels: 0 is the largest group, -1 = unsorted (groups under ``min_size``)."""
    fn = _method(method)
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ConfigError(f"embeddings: expected an (n, d) array, got shape {X.shape}")
    if min_size < 1:
        raise ConfigError(f"min_size: must be at least 1, got {min_size}")
    if not np.all(np.isfinite(X)):
        raise ConfigError("embeddings: contain NaN or infinite values")
    n = len(X)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    norms = np.linalg.norm(X, axis=1)
    if np.any(np.abs(norms - 1.0) > 1e-3):
        raise ConfigError("embeddings: rows must be L2-normalised (norm 1)")
    t = DEFAULT_THRESHOLDS[method] if threshold is None else float(threshold)
    if not -1.0 <= t <= 1.0:
        raise ConfigError(f"threshold: a cosine similarity in [-1, 1], got {t}")
    raw = fn(X, t) if n > 1 else np.zeros(1, dtype=np.int64)
    return relabel(raw, min_size)


def relabel(labels: np.ndarray, min_size: int = 2) -> np.ndarray:
    """Groups renumbered 0, 1, ... largest first (ties: first face first); groups under
    ``min_size`` faces (and faces already -1) become -1."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(len(labels), UNSORTED, dtype=np.int64)
    keep = labels >= 0
    if not keep.any():
        return out
    uniq, first, counts = np.unique(labels[keep], return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    new = np.full(len(uniq), UNSORTED, dtype=np.int64)
    k = 0
    for i in order:
        if counts[i] >= min_size:
            new[i] = k
            k += 1
    out[keep] = new[np.searchsorted(uniq, labels[keep])]
    return out


def _method(name: str) -> ClusterFn:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"method: unknown clustering method {name!r}; choose one of "
            f"{', '.join(available_methods())}"
        ) from None


# ---- the similarity graph ------------------------------------------------------------------------
def similarity_graph(X: np.ndarray, threshold: float, block: int = 2048) -> tuple[np.ndarray, ...]:
    """Edges (i < j) whose similarity reaches ``threshold``: (rows, cols, weights), built in
    blocks so memory stays O(block * n), not O(n^2)."""
    rows, cols, weights = [], [], []
    n = len(X)
    for start in range(0, n, block):
        s = X[start : start + block] @ X.T
        i, j = np.nonzero(s >= threshold)
        i_abs = i + start
        upper = j > i_abs
        rows.append(i_abs[upper])
        cols.append(j[upper])
        weights.append(s[i[upper], j[upper]])
    return (
        np.concatenate(rows).astype(np.int64),
        np.concatenate(cols).astype(np.int64),
        np.concatenate(weights).astype(np.float32),
    )


def connected_components(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as cc

    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
    _, labels = cc(graph, directed=False)
    return labels.astype(np.int64)


# ---- methods -------------------------------------------------------------------------------------
def _linkage(X: np.ndarray, threshold: float, how: str) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    rows, cols, _ = similarity_graph(X, threshold)
    comp = connected_components(len(X), rows, cols)
    labels = np.full(len(X), UNSORTED, dtype=np.int64)
    next_label = 0
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    for members in np.split(order, bounds):
        if len(members) == 1:
            labels[members] = next_label
            next_label += 1
            continue
        dist = np.clip(pdist(X[members].astype(np.float64), "cosine"), 0.0, 2.0)
        tree = linkage(dist, method=how)
        # fcluster's "distance" keeps merges at or below t; a tiny margin makes "similarity
        # reaches the threshold" inclusive despite rounding.
        sub = fcluster(tree, t=1.0 - threshold + 1e-9, criterion="distance")
        labels[members] = sub - 1 + next_label
        next_label += int(sub.max())
    return labels


@register_method("average")
def _average(X: np.ndarray, threshold: float) -> np.ndarray:
    return _linkage(X, threshold, "average")


@register_method("complete")
def _complete(X: np.ndarray, threshold: float) -> np.ndarray:
    return _linkage(X, threshold, "complete")


@register_method("chinese_whispers")
def _chinese_whispers(
    X: np.ndarray, threshold: float, iterations: int = 100, seed: int = 0
) -> np.ndarray:
    from scipy.sparse import coo_matrix

    n = len(X)
    rows, cols, w = similarity_graph(X, threshold)
    graph = coo_matrix(
        (np.concatenate([w, w]), (np.concatenate([rows, cols]), np.concatenate([cols, rows]))),
        shape=(n, n),
    ).tocsr()
    indptr, indices, data = graph.indptr, graph.indices, graph.data
    labels = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        changed = False
        for i in rng.permutation(n):
            lo, hi = indptr[i], indptr[i + 1]
            if lo == hi:
                continue
            neigh = labels[indices[lo:hi]]
            uniq, inv = np.unique(neigh, return_inverse=True)
            score = np.bincount(inv, weights=data[lo:hi])
            best = uniq[int(np.argmax(score))]
            if best != labels[i]:
                labels[i] = best
                changed = True
        if not changed:
            break
    return labels


@register_method("hdbscan")
def _hdbscan(X: np.ndarray, threshold: float) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    if len(X) < 3:
        return np.arange(len(X), dtype=np.int64)
    # HDBSCAN finds groups by density alone (no threshold); scikit-learn 1.9's
    # cluster_selection_epsilon fails inside its tree code (TypeError in epsilon_search), so the
    # threshold acts afterwards, below.
    model = HDBSCAN(min_cluster_size=2, min_samples=1, copy=True)
    labels = model.fit_predict(X.astype(np.float64)).astype(np.int64)
    # HDBSCAN hangs a far outlier onto the nearest group once that group is born; a face with
    # no groupmate at or above the threshold is unsorted instead.
    for g in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == g)
        s = X[members] @ X[members].T
        np.fill_diagonal(s, -2.0)
        labels[members[s.max(axis=1) < threshold]] = UNSORTED
    return labels
