"""The verification numbers of a report from pair scores: k-fold accuracy, AUC, EER, TAR@FAR and
the calibrated threshold (also what the dlib baseline reports)."""

from __future__ import annotations

from typing import Any

import numpy as np

from facemetric.evaluate import metrics as M

FAR_TARGETS = (1e-2, 1e-3)


def far_key(prefix: str, target: float) -> str:
    """``tar_at_far_1e-3``-style metric names (as the issue spells them)."""
    return f"{prefix}_{target:.0e}".replace("e-0", "e-").replace("e+0", "e+")


def verification_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    target_far: float = 1e-3,
    method: str = "far",
) -> dict[str, Any]:
    """The verification numbers of the JSON report (also used by the dlib baseline).

    With fewer than two folds in the protocol, pairs are cut into 10 folds in file order.
    """
    if len(np.unique(folds)) < 2:
        folds = M.assign_folds(len(scores), 10)
    kf = M.kfold_accuracy(scores, labels, folds)
    eer, eer_t = M.eer(scores, labels)
    out: dict[str, Any] = {
        "genuine_pairs": int(labels.sum()),
        "impostor_pairs": int((~labels).sum()),
        "folds": len(kf.fold_accuracies),
        "accuracy": kf.mean,
        "accuracy_std": kf.std,
        "fold_accuracies": kf.fold_accuracies,
        "fold_thresholds": kf.fold_thresholds,
        "auc": M.auc(scores, labels),
        "eer": eer,
        "eer_threshold": eer_t,
    }
    for target in FAR_TARGETS:
        op = M.tar_at_far(scores, labels, target)
        out[far_key("tar_at_far", target)] = op.tar
        out[far_key("threshold_at_far", target)] = op.threshold
    out["calibration"] = M.calibrate_threshold(scores, labels, target_far, method)
    out["threshold"] = out["calibration"]["threshold"]
    return out
