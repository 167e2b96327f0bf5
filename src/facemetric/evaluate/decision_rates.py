"""The open-set decision measured on a folder: what ``facemetric evaluate`` reports as
``decision`` (the gallery's own calibration on its references, then every probe and stranger
decided as ``identify`` would)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from facemetric.recognize.calibration import calibrate
from facemetric.recognize.decision import Decider, Decision, DecisionSettings


def open_set_rates(
    mated: np.ndarray,
    mated_labels: Sequence[Any] | np.ndarray,
    strangers: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: Sequence[Any] | np.ndarray,
    floor: float,
    settings: DecisionSettings | None = None,
) -> dict[str, Any]:
    """The decision on a gallery of ``gallery`` references (calibrated on them alone) for
    enrolled probes ``mated`` and ``strangers``: TPIR (probes named right), FPIR (strangers
    named) and why the rest were not named (what ``facemetric evaluate`` reports)."""
    settings = settings or DecisionSettings()
    g_lab = np.asarray(gallery_labels)
    names, codes = np.unique(g_lab, return_inverse=True)
    decider = Decider(calibrate(gallery, codes, floor, settings), settings)
    gal = np.asarray(gallery, np.float32)

    def answers(probes: np.ndarray) -> list[Decision]:
        if len(probes) == 0:
            return []
        sims = np.asarray(probes, np.float32) @ gal.T
        scores = np.full((len(probes), len(names)), -2.0)
        for p in range(len(names)):
            cols = sims[:, codes == p]
            k = min(settings.agree, cols.shape[1])
            scores[:, p] = -np.sort(-cols, axis=1)[:, :k].mean(axis=1)
        top = np.argsort(-scores, axis=1)[:, : settings.candidates]
        return [
            decider.decide([(str(names[p]), float(scores[i, p])) for p in top[i]])
            for i in range(len(probes))
        ]

    on_mated = answers(mated)
    on_strangers = answers(strangers)
    m_lab = [str(v) for v in mated_labels]
    right = sum(d.identity == m for d, m in zip(on_mated, m_lab, strict=True))
    named = sum(d.is_match for d in on_strangers)
    reasons: dict[str, int] = {}
    for d in on_mated:
        if not d.is_match:
            reasons[d.reason] = reasons.get(d.reason, 0) + 1
    return {
        "threshold": round(decider.active_threshold, 4),
        "calibration": decider.calibration.to_dict(),
        "tpir": right / len(on_mated) if on_mated else None,
        "fpir": named / len(on_strangers) if on_strangers else None,
        "probes": len(on_mated),
        "strangers": len(on_strangers),
        "strangers_named": named,
        "probes_named_wrong": sum(
            d.is_match and d.identity != m for d, m in zip(on_mated, m_lab, strict=True)
        ),
        "probes_not_named": reasons,
    }
