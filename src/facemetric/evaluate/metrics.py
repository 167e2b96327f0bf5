"""Verification and identification metrics: arrays in, floats out.

Conventions used throughout:

- ``scores`` are similarities (higher = more alike); ``labels`` are booleans (True = same person,
  a *genuine* pair; False = an *impostor* pair).
- A pair is accepted at threshold ``t`` iff ``score >= t``, the rule the gallery and web app use.
  ``FAR(t)`` is the fraction of impostor scores ``>= t``, ``TAR(t)`` that of genuine scores.
- Ties: pairs with equal scores are always accepted or rejected together, so the ROC has one
  vertex per distinct score (no arbitrary order inside a tie). Between vertices the curve is a
  straight line (randomised decisions), which makes the AUC equal the Mann-Whitney statistic
  counting a tied genuine/impostor pair as one half.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facemetric.errors import ConfigError
from facemetric.models.calibration import threshold_at_far


@dataclass(frozen=True)
class Roc:
    """ROC vertices from the strictest threshold (``+inf``, nothing accepted) to the loosest."""

    thresholds: np.ndarray  # decreasing; thresholds[0] = +inf
    far: np.ndarray  # non-decreasing, far[0] = 0, far[-1] = 1
    tar: np.ndarray  # non-decreasing, tar[0] = 0, tar[-1] = 1
    n_genuine: int
    n_impostor: int


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold with the rates it achieves on the data it was chosen on."""

    threshold: float
    tar: float
    far: float
    target_far: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class KFoldResult:
    """Accuracy per fold with the threshold learned on the other folds."""

    mean: float
    std: float
    fold_accuracies: list[float] = field(default_factory=list)
    fold_thresholds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class OpenSetResult:
    """Open-set identification at a false-positive identification rate (FPIR)."""

    tpir: float  # mated probes whose top-1 is right and scores >= threshold
    fpir: float  # achieved FPIR at the threshold
    threshold: float  # chosen on the non-mated probes' top scores
    target_fpir: float
    strangers: int  # non-mated probes
    strangers_matched: int  # of those, top score >= operating threshold
    operating_threshold: float  # threshold used for strangers_matched


def _clean(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        v = float(v)
        return None if not np.isfinite(v) else v
    return v


def _check_pairs(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ConfigError(f"scores ({s.size}) and labels ({y.size}) differ in length")
    if not np.all(np.isfinite(s)):
        raise ConfigError("scores: contain NaN or infinity")
    return s, y


def _need_both(y: np.ndarray) -> None:
    if y.all() or not y.any():
        raise ConfigError(
            f"labels: need both genuine and impostor pairs, got {int(y.sum())} genuine and "
            f"{int((~y).sum())} impostor"
        )


def roc_curve(scores: Any, labels: Any) -> Roc:
    """ROC vertices, one per distinct score (ties accepted together), plus the ``+inf`` start."""
    s, y = _check_pairs(scores, labels)
    _need_both(y)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # index where each distinct score ends
    tp = np.cumsum(y)[last_of_tie]
    fp = np.cumsum(~y)[last_of_tie]
    n_gen, n_imp = int(y.sum()), int((~y).sum())
    return Roc(
        thresholds=np.r_[np.inf, s[last_of_tie]],
        far=np.r_[0.0, fp / n_imp],
        tar=np.r_[0.0, tp / n_gen],
        n_genuine=n_gen,
        n_impostor=n_imp,
    )


def auc(scores: Any, labels: Any) -> float:
    """Area under the ROC: P(genuine score > impostor score) + 0.5 P(equal)."""
    roc = roc_curve(scores, labels)
    return float(np.sum(np.diff(roc.far) * (roc.tar[1:] + roc.tar[:-1]) / 2.0))


def eer(scores: Any, labels: Any) -> tuple[float, float]:
    """Equal error rate and its threshold.

    The rate is where the piecewise-linear ROC crosses ``FAR = 1 - TAR`` (FAR = FRR), so it is
    exact even when no threshold makes the two rates equal. The threshold is the ROC vertex
    minimising ``max(FAR, FRR)`` (the higher threshold on a tie): a real decision rule whose
    larger error is as small as possible.
    """
    roc = roc_curve(scores, labels)
    frr = 1.0 - roc.tar
    gap = roc.far - frr  # increases from -1 to +1 along the curve
    i = int(np.argmax(gap >= 0))  # first vertex at or past the crossing (i >= 1)
    g0, g1 = gap[i - 1], gap[i]
    w = 0.0 if g1 == g0 else -g0 / (g1 - g0)
    rate = roc.far[i - 1] + w * (roc.far[i] - roc.far[i - 1])
    worst = np.round(np.maximum(roc.far, frr), 12)  # 1 - 2/3 must equal 1/3 here
    j = int(np.argmin(worst))  # argmin returns the first, i.e. the highest threshold
    return float(rate), float(roc.thresholds[j])


def rates_at(scores: Any, labels: Any, threshold: float) -> tuple[float, float]:
    """(TAR, FAR) when accepting ``score >= threshold``."""
    s, y = _check_pairs(scores, labels)
    _need_both(y)
    accepted = s >= threshold
    return float(accepted[y].mean()), float(accepted[~y].mean())


def tar_at_far(scores: Any, labels: Any, target_far: float) -> OperatingPoint:
    """TAR at the threshold ``threshold_at_far`` picks on the impostor scores."""
    s, y = _check_pairs(scores, labels)
    _need_both(y)
    t = threshold_at_far(s[~y], target_far)
    tar, far = rates_at(s, y, t)
    return OperatingPoint(threshold=t, tar=tar, far=far, target_far=target_far)


def best_accuracy_threshold(scores: Any, labels: Any) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy; candidates separate distinct scores.

    Candidates are midpoints between neighbouring distinct scores plus one below the lowest and
    one above the highest; on equal accuracy the lowest threshold wins.
    """
    s, y = _check_pairs(scores, labels)
    if s.size == 0:
        raise ConfigError("no pairs to choose a threshold on")
    u = np.unique(s)  # ascending
    cands = np.r_[u[0] - 1.0, (u[1:] + u[:-1]) / 2.0, u[-1] + 1.0]
    # accuracy(t) = (#genuine >= t + #impostor < t) / n, counted with sorted searches
    gen, imp = np.sort(s[y]), np.sort(s[~y])
    gen_acc = gen.size - np.searchsorted(gen, cands, side="left")
    imp_rej = np.searchsorted(imp, cands, side="left")
    acc = np.asarray(gen_acc + imp_rej, dtype=np.float64) / s.size
    i = int(np.argmax(acc))
    return float(cands[i]), float(acc[i])


def kfold_accuracy(scores: Any, labels: Any, folds: Any) -> KFoldResult:
    """Verification accuracy per fold, thresholded by ``best_accuracy_threshold`` on the rest.

    ``folds`` gives each pair's fold id (LFW's and CFP's protocols fix them); the std is the
    population std over folds, as LFW reports it.
    """
    s, y = _check_pairs(scores, labels)
    f = np.asarray(folds).ravel()
    if f.shape != s.shape:
        raise ConfigError(f"folds ({f.size}) and scores ({s.size}) differ in length")
    ids = np.unique(f)
    if ids.size < 2:
        raise ConfigError(f"folds: need at least 2 folds, got {ids.size}")
    accs, ths = [], []
    for fold in ids:
        test = f == fold
        t, _ = best_accuracy_threshold(s[~test], y[~test])
        accs.append(float(((s[test] >= t) == y[test]).mean()))
        ths.append(t)
    return KFoldResult(
        mean=float(np.mean(accs)),
        std=float(np.std(accs)),
        fold_accuracies=accs,
        fold_thresholds=ths,
    )


def assign_folds(n: int, n_folds: int = 10) -> np.ndarray:
    """Fold ids 1..n_folds for ``n`` pairs in order, in contiguous nearly-equal blocks."""
    if n_folds < 2 or n < n_folds:
        raise ConfigError(f"n_folds={n_folds}: need 2 <= n_folds <= number of pairs ({n})")
    return (np.arange(n) * n_folds // n + 1).astype(np.int64)


def _identity_scores(
    probes: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(identities, probe x identity score = best similarity to any of its gallery images)."""
    ids, inverse = np.unique(gallery_labels, return_inverse=True)
    sims = np.asarray(probes, np.float64) @ np.asarray(gallery, np.float64).T
    per_id = np.full((sims.shape[0], ids.size), -np.inf)
    for j in range(ids.size):
        per_id[:, j] = sims[:, inverse == j].max(axis=1)
    return ids, per_id


def identification_ranks(
    probes: Any, probe_labels: Any, gallery: Any, gallery_labels: Any
) -> np.ndarray:
    """Rank (1 = best) of each probe's true identity among the gallery identities.

    An identity's score is its best-matching gallery image. Ties count against the probe: the
    rank is 1 + the number of *other* identities scoring ``>=`` the true one.
    """
    p_lab, g_lab = np.asarray(probe_labels), np.asarray(gallery_labels)
    ids, per_id = _identity_scores(np.asarray(probes), np.asarray(gallery), g_lab)
    missing = sorted(set(p_lab.tolist()) - set(ids.tolist()))
    if missing:
        raise ConfigError(f"probe identities not in the gallery: {missing[:5]}")
    col = np.searchsorted(ids, p_lab)
    true = per_id[np.arange(len(p_lab)), col]
    ge = (per_id >= true[:, None]).sum(axis=1)  # includes the true identity itself
    return (ge).astype(np.int64)


def rank_k_accuracy(ranks: Any, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Fraction of probes whose true identity ranks within the top k, for each k."""
    r = np.asarray(ranks)
    if r.size == 0:
        raise ConfigError("no probes to rank")
    return {k: float((r <= k).mean()) for k in ks}


def open_set_identification(
    mated: Any,
    mated_labels: Any,
    non_mated: Any,
    gallery: Any,
    gallery_labels: Any,
    target_fpir: float = 1e-2,
    operating_threshold: float | None = None,
) -> OpenSetResult:
    """TPIR at FPIR, and how many strangers a threshold lets through.

    Each probe's answer is its top-1 identity and score. The threshold is chosen on the
    non-mated probes' top scores with ``threshold_at_far`` (same tie rule). ``strangers_matched``
    counts non-mated probes whose top score is ``>= operating_threshold`` (the model's match
    threshold; defaults to the FPIR threshold).
    """
    g_lab = np.asarray(gallery_labels)
    ids, per_mated = _identity_scores(np.asarray(mated), np.asarray(gallery), g_lab)
    _, per_non = _identity_scores(np.asarray(non_mated), np.asarray(gallery), g_lab)
    if per_non.shape[0] == 0:
        raise ConfigError("open-set identification needs non-mated probes (strangers)")
    non_top = per_non.max(axis=1)
    t = threshold_at_far(non_top, target_fpir)
    m_lab = np.asarray(mated_labels)
    top_id = ids[np.argmax(per_mated, axis=1)] if per_mated.shape[0] else m_lab
    top_score = per_mated.max(axis=1) if per_mated.shape[0] else np.zeros(0)
    hit = (top_id == m_lab) & (top_score >= t)
    op = t if operating_threshold is None else float(operating_threshold)
    return OpenSetResult(
        tpir=float(hit.mean()) if hit.size else 0.0,
        fpir=float((non_top >= t).mean()),
        threshold=t,
        target_fpir=target_fpir,
        strangers=int(non_top.size),
        strangers_matched=int((non_top >= op).sum()),
        operating_threshold=op,
    )


CALIBRATION_METHODS = ("far", "eer")


def calibrate_threshold(
    scores: Any, labels: Any, target_far: float = 1e-3, method: str = "far"
) -> dict[str, Any]:
    """The match threshold for a target FAR (``method="far"``) or at the EER, with its rates.

    Returns what goes into the checkpoint's ``calibration`` meta: method, target, threshold and
    the TAR/FAR it achieves on these pairs and their counts.
    """
    s, y = _check_pairs(scores, labels)
    _need_both(y)
    if method == "far":
        t = threshold_at_far(s[~y], target_far)
        target: float | None = target_far
    elif method == "eer":
        _, t = eer(s, y)
        target = None
    else:
        raise ConfigError(f"calibration method {method!r}: use one of {CALIBRATION_METHODS}")
    if not np.isfinite(t):
        raise ConfigError(f"target_far={target_far}: every impostor would be accepted")
    tar, far = rates_at(s, y, t)
    return {
        "method": method,
        "target_far": target,
        "threshold": float(t),
        "tar": tar,
        "far": far,
        "genuine_pairs": int(y.sum()),
        "impostor_pairs": int((~y).sum()),
    }
