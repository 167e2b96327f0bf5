"""How well a clustering matches the true identities: pairwise and BCubed precision and recall.

Arrays in, floats out. ``pred`` labels -1 (unsorted) count as singletons: an unsorted face is
merged with nobody, so it costs recall, never precision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ClusterScores:
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f: float
    groups: int  # predicted groups of two faces or more
    unsorted: float  # share of faces left unsorted (-1 or alone)

    def to_dict(self) -> dict[str, float | int]:
        return {k: v if isinstance(v, int) else round(float(v), 4) for k, v in asdict(self).items()}


def singletons(pred: np.ndarray) -> np.ndarray:
    """``pred`` with every -1 given a label of its own."""
    pred = np.asarray(pred, dtype=np.int64).copy()
    neg = pred < 0
    base = int(pred.max()) + 1 if (~neg).any() else 0
    pred[neg] = base + np.arange(int(neg.sum()))
    return pred


def _contingency(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts per (true, predicted) cell, with each face's cell index."""
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    cell = t.astype(np.int64) * (int(p.max()) + 1) + p
    _, inv, counts = np.unique(cell, return_inverse=True, return_counts=True)
    return t, p, counts[inv]


def _f(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def pairwise_scores(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(precision, recall) over face pairs: of the pairs put together, the share that are one
    person; of one person's pairs, the share put together. 1.0 where there is no pair to judge."""
    truth = np.asarray(truth)
    pred = singletons(pred)
    t, p, _ = _contingency(truth, pred)
    cells = np.unique(t * (int(p.max()) + 1) + p, return_counts=True)[1].astype(np.float64)
    t_counts = np.bincount(t).astype(np.float64)
    p_counts = np.bincount(p).astype(np.float64)
    both = float((cells * (cells - 1) / 2).sum())
    same_pred = float((p_counts * (p_counts - 1) / 2).sum())
    same_true = float((t_counts * (t_counts - 1) / 2).sum())
    precision = both / same_pred if same_pred else 1.0
    recall = both / same_true if same_true else 1.0
    return precision, recall


def bcubed_scores(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(precision, recall) BCubed (Bagga & Baldwin 1998): per face, the share of its predicted
    group that is its person, and of its person that is in its group; averaged over faces."""
    truth = np.asarray(truth)
    pred = singletons(pred)
    t, p, cell = _contingency(truth, pred)
    t_size = np.bincount(t)[t]
    p_size = np.bincount(p)[p]
    return float(np.mean(cell / p_size)), float(np.mean(cell / t_size))


def cluster_scores(truth: np.ndarray, pred: np.ndarray) -> ClusterScores:
    """Every figure of one clustering against the true identities."""
    truth = np.asarray(truth)
    pred = np.asarray(pred, dtype=np.int64)
    if truth.shape != pred.shape or truth.ndim != 1:
        raise ValueError(
            f"truth and pred: expected two equal 1-d arrays, got {truth.shape} and {pred.shape}"
        )
    pp, pr = pairwise_scores(truth, pred)
    bp, br = bcubed_scores(truth, pred)
    full = singletons(pred)
    _, counts = np.unique(full, return_counts=True)
    alone = float((counts == 1).sum()) / len(pred) if len(pred) else 0.0
    return ClusterScores(pp, pr, _f(pp, pr), bp, br, _f(bp, br), int((counts >= 2).sum()), alone)
