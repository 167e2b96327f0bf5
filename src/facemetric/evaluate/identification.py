"""The identification numbers of a report from one folder's embeddings: closed-set rank-k,
open-set TPIR at FPIR with strangers, and the threshold calibrated on every pair of its images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facemetric.evaluate import metrics as M
from facemetric.evaluate.embed import EmbeddingSet
from facemetric.evaluate.protocols import IdentificationSplit, identity_of
from facemetric.evaluate.verification import far_key

FPIR_TARGET = 1e-2
RANKS = (1, 5)
# Pairs of at most this many images calibrate a folder's threshold (8M pairs, ~100 MB).
CALIBRATION_IMAGES = 4000


@dataclass(frozen=True)
class Probes:
    """The embedded images of a split: gallery, mated probes (of people with a gallery image)
    and strangers, with the identity labels of the first two."""

    gallery: list[str]
    mated: list[str]
    strangers: list[str]
    gallery_labels: np.ndarray
    mated_labels: np.ndarray

    @classmethod
    def embedded(cls, split: IdentificationSplit, es: EmbeddingSet) -> Probes:
        """The images of ``split`` that ``es`` holds an embedding of."""
        gallery = [p for p in split.gallery if p in es]
        mated = [p for p in split.mated if p in es]
        strangers = [p for p in split.strangers if p in es]
        g_lab = np.array([identity_of(p) for p in gallery])
        enrolled = set(g_lab.tolist())
        mated = [p for p in mated if identity_of(p) in enrolled]
        m_lab = np.array([identity_of(p) for p in mated])
        return cls(gallery, mated, strangers, g_lab, m_lab)


def identification_metrics(
    es: EmbeddingSet, split: IdentificationSplit, probes: Probes, threshold: float
) -> dict[str, Any]:
    """Counts, rank-k accuracy (left out, with a note, where every probe would pass) and, with
    strangers, the open-set rates at ``FPIR_TARGET`` and at the operating ``threshold``."""
    gallery, mated, strangers = probes.gallery, probes.mated, probes.strangers
    g_lab, m_lab = probes.gallery_labels, probes.mated_labels
    enrolled = set(g_lab.tolist())
    ranks = M.identification_ranks(es.take(mated), m_lab, es.take(gallery), g_lab)
    rank_k: dict[int, float | None] = dict(M.rank_k_accuracy(ranks, RANKS))
    notes = []
    for k in RANKS:
        if k >= len(enrolled):  # every probe's person is among any k of them: always 1.0
            rank_k[k] = None
            notes.append(
                f"rank-{k} is left out: with {len(enrolled)} people enrolled every probe finds "
                f"its person within the first {k}; enrol more than {k} people for it"
            )
    out: dict[str, Any] = {
        "identities_enrolled": len(enrolled),
        "identities_not_enrolled": len(split.not_enrolled),
        "identities_skipped": len(split.skipped),
        "gallery_images": len(gallery),
        "probes": len(mated),
        "faces_found": float(es.found.mean()),
        **{f"rank{k}": v for k, v in rank_k.items()},
        "notes": notes,
    }
    if strangers:
        osr = M.open_set_identification(
            es.take(mated), m_lab, es.take(strangers), es.take(gallery), g_lab,
            target_fpir=FPIR_TARGET, operating_threshold=threshold,
        )  # fmt: skip
        out[far_key("tpir_at_fpir", FPIR_TARGET)] = osr.tpir
        out[far_key("threshold_at_fpir", FPIR_TARGET)] = osr.threshold
        out["strangers"] = osr.strangers
        out["strangers_matched"] = osr.strangers_matched
        out["match_threshold"] = osr.operating_threshold
    return out


def folder_calibration(
    es: EmbeddingSet, seed: int, target_far: float, eer: bool = False
) -> dict[str, Any] | None:
    """The threshold for ``target_far`` (or the EER) on every pair of a folder's images
    (same person: genuine, different people: impostor), or None when there are too few impostor
    pairs to tell that FAR. At most ``CALIBRATION_IMAGES`` images, drawn by ``seed``."""
    from facemetric.models.calibration import all_pair_scores, calibrate_on_pairs

    rows = np.arange(len(es))
    if len(rows) > CALIBRATION_IMAGES:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(rows, CALIBRATION_IMAGES, replace=False))
    labels = np.array([identity_of(es.paths[i]) for i in rows])
    scores, same = all_pair_scores(es.embeddings[rows], labels)
    if eer:
        if same.all() or not same.any():
            return None
        return M.calibrate_threshold(scores, same, method="eer")
    return calibrate_on_pairs(scores, same, target_far)
