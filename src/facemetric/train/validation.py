"""Per-epoch validation on identities the model does not train on.

Small and self-contained on purpose (the evaluate stage comes later and train must not import it):
verification accuracy at the best threshold and ROC AUC on sampled same/different pairs, and
leave-one-out rank-1 identification, all from L2-normalised embeddings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from facemetric.data.dataset import FaceDataset, to_model_input


@dataclass(frozen=True)
class ValMetrics:
    accuracy: float
    threshold: float
    auc: float
    rank1: float
    pairs: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def sample_pairs(
    labels: np.ndarray, max_pairs: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``max_pairs // 2`` positive and as many negative pairs (i < j), seeded.

    Returns ``(i, j, same)``. Positives are drawn from all same-identity pairs, negatives
    uniformly from different-identity pairs, so the result is balanced.
    """
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    pos, neg = np.flatnonzero(same), np.flatnonzero(~same)
    half = max(1, max_pairs // 2)
    n = min(half, len(pos), len(neg))
    pick = np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)])
    return i[pick], j[pick], same[pick]


def best_threshold_accuracy(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Highest accuracy of ``score >= t`` over all thresholds t, and that t (midpoint)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order].astype(np.int64)
    # Predicting "same" for the first m pairs: correct = positives among them + negatives after.
    tp = np.concatenate([[0], np.cumsum(y)])
    fp = np.concatenate([[0], np.cumsum(1 - y)])
    correct = tp + (len(y) - y.sum() - fp)
    # Only cut between distinct scores.
    valid = np.ones(len(y) + 1, dtype=bool)
    valid[1:-1] = s[:-1] != s[1:]
    m = int(np.argmax(np.where(valid, correct, -1)))
    if m == 0:
        threshold = float(s[0]) + 1e-6
    elif m == len(s):
        threshold = float(s[-1]) - 1e-6
    else:
        threshold = float((s[m - 1] + s[m]) / 2)
    return float(correct[m] / len(y)), threshold


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    pos, neg = scores[same.astype(bool)], scores[~same.astype(bool)]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="stable")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # Average ranks over ties (Mann-Whitney U).
    _, start, count = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = start + (count + 1) / 2.0
    ranks[order] = np.repeat(avg, count)
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def rank1(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out: share of probes (identities with >= 2 images) whose nearest other is same."""
    sims = embeddings @ embeddings.T
    np.fill_diagonal(sims, -np.inf)
    counts = np.bincount(labels)
    probes = np.flatnonzero(counts[labels] >= 2)
    if len(probes) == 0:
        return float("nan")
    nearest = sims[probes].argmax(1)
    return float((labels[nearest] == labels[probes]).mean())


def evaluate_embeddings(
    embeddings: np.ndarray, labels: np.ndarray, max_pairs: int = 4000, seed: int = 0
) -> ValMetrics:
    i, j, same = sample_pairs(labels, max_pairs, seed)
    scores = np.einsum("nd,nd->n", embeddings[i], embeddings[j])
    accuracy, threshold = best_threshold_accuracy(scores, same)
    return ValMetrics(accuracy, threshold, roc_auc(scores, same), rank1(embeddings, labels), len(i))


@torch.no_grad()
def embed_dataset(
    model: torch.nn.Module,
    dataset: FaceDataset,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device,
    batch_size: int = 128,
    autocast_dtype: torch.dtype | None = None,
) -> np.ndarray:
    """L2-normalised embeddings of every image of ``dataset`` (no augmentation), in order."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(dataset), batch_size):
            images, _ = dataset.batch(range(start, min(start + batch_size, len(dataset))))
            x = to_model_input(images, mean, std).to(device)
            with torch.autocast(
                device.type,
                dtype=autocast_dtype or torch.float32,
                enabled=autocast_dtype is not None,
            ):
                emb = model(x)
            out.append(torch.nn.functional.normalize(emb.float(), dim=1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def validate(
    model: torch.nn.Module,
    dataset: FaceDataset,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device,
    max_pairs: int = 4000,
    seed: int = 0,
    autocast_dtype: torch.dtype | None = None,
) -> ValMetrics:
    """Embed the validation images and score them; the same pairs every epoch (fixed seed)."""
    emb = embed_dataset(model, dataset, mean, std, device, autocast_dtype=autocast_dtype)
    return evaluate_embeddings(emb, dataset.samples.labels, max_pairs, seed)
