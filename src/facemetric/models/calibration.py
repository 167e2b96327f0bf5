"""Choosing a match threshold from similarity scores: shared by training (which calibrates on its
validation people at the end of a run) and evaluation (``--calibrate``).

Arrays in, floats out; the metrics built on these live in ``facemetric.evaluate.metrics``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facemetric.errors import ConfigError

DEFAULT_TARGET_FAR = 1e-3


def threshold_at_far(impostor_scores: Any, target_far: float) -> float:
    """The lowest threshold whose FAR on these impostor scores is at most ``target_far``.

    With ``n`` impostors at most ``k = floor(target_far * n)`` may be accepted. The threshold is
    the smallest float strictly above the (k+1)-th highest impostor score, so a tie at that score
    is rejected as a whole (FAR never exceeds the target; it may fall below it). With fewer than
    ``1 / target_far`` impostors, ``k = 0``: the threshold is just above the highest impostor.
    ``-inf`` when every impostor may be accepted.
    """
    if not 0.0 <= target_far <= 1.0:
        raise ConfigError(f"target_far={target_far}: must be in [0, 1]")
    imp = np.sort(np.asarray(impostor_scores, dtype=np.float64).ravel())[::-1]
    if imp.size == 0:
        raise ConfigError("impostor scores: none given")
    k = int(np.floor(target_far * imp.size + 1e-9))
    if k >= imp.size:
        return float(-np.inf)
    return float(np.nextafter(imp[k], np.inf))


def all_pair_scores(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity and same-label flag of every unordered pair (i < j) of unit rows."""
    emb = np.asarray(embeddings, dtype=np.float32)
    sims = emb @ emb.T
    i, j = np.triu_indices(len(labels), k=1)
    return sims[i, j].astype(np.float64), np.asarray(labels)[i] == np.asarray(labels)[j]


def calibrate_on_pairs(
    scores: np.ndarray, same: np.ndarray, target_far: float = DEFAULT_TARGET_FAR
) -> dict[str, Any] | None:
    """The threshold for ``target_far`` on these pairs with the TAR/FAR it gives, or None when
    there are too few impostor pairs to tell that FAR (fewer than ``1 / target_far``) or no
    genuine pair."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    if (~y).sum() * target_far < 1 or not y.any():
        return None
    t = threshold_at_far(s[~y], target_far)
    return {
        "method": "far",
        "target_far": target_far,
        "threshold": float(t),
        "tar": float((s[y] >= t).mean()),
        "far": float((s[~y] >= t).mean()),
        "genuine_pairs": int(y.sum()),
        "impostor_pairs": int((~y).sum()),
    }
