"""Training losses chosen by name: the triplet loss and margin softmax losses.

Every loss is an ``nn.Module`` (margin losses own a learnable class-centre matrix, so the optimizer
and the resume state must see them) whose ``forward(embeddings, labels)`` returns a ``LossOutput``:
the scalar to minimise and a few statistics for the log (such as the fraction of active triplets).
Embeddings arrive L2-normalised, or raw when the model's ``distance`` is ``euclidean`` (a
pretrained network fine-tuned in its own space: dlib's puts one person within distance 0.6, and a
triplet loss on normalised embeddings would rotate that whole space). The maths is
pytorch-metric-learning's, except ``pair_threshold`` (dlib's own training loss).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from facemetric.errors import ConfigError
from facemetric.train.triplets import all_triplets, create_miner


@dataclass
class LossOutput:
    loss: torch.Tensor
    stats: dict[str, float] = field(default_factory=dict)  # numbers for the log


@dataclass(frozen=True)
class LossSettings:
    """What any loss may need; each factory uses its own fields."""

    num_classes: int
    embedding_dim: int
    margin: float = 0.2
    miner: str = "semihard"
    distance: str = "cosine"  # "euclidean": distances between the raw embeddings
    pair_threshold: float = 0.6  # pair_threshold loss: dlib's distance threshold
    arcface_margin_deg: float = 28.6
    cosface_margin: float = 0.35
    scale: float = 64.0
    triplet_weight: float = 1.0
    seed: int = 0


LossFactory = Callable[[LossSettings], nn.Module]
_LOSSES: dict[str, LossFactory] = {}


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    def wrap(factory: LossFactory) -> LossFactory:
        _LOSSES[name] = factory
        return factory

    return wrap


def available_losses() -> list[str]:
    return sorted(_LOSSES)


def create_loss(name: str, settings: LossSettings) -> nn.Module:
    if name not in _LOSSES:
        raise ConfigError(f"loss: unknown name {name!r}; choose one of {', '.join(_LOSSES)}")
    return _LOSSES[name](settings)


class TripletLoss(nn.Module):
    """Margin triplet loss over mined triplets; stats: active fraction and triplet count.

    ``normalize``: Euclidean distances between L2-normalised embeddings (the default), or
    between the raw ones (``False``)."""

    def __init__(self, margin: float, miner: str, seed: int = 0, normalize: bool = True) -> None:
        super().__init__()
        from pytorch_metric_learning.distances import LpDistance
        from pytorch_metric_learning.losses import TripletMarginLoss

        self.margin = margin
        self.miner_name = miner
        self.normalize = normalize
        self.generator = torch.Generator().manual_seed(seed)
        self.miner = create_miner(miner, margin, self.generator, normalize)
        distance = LpDistance(normalize_embeddings=normalize, p=2)
        self.loss = TripletMarginLoss(margin=margin, distance=distance)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        embeddings = embeddings.float()
        a, p, n = self.miner(embeddings.detach(), labels)
        stats = {"active": self.active_fraction(embeddings.detach(), labels), "triplets": len(a)}
        if len(a) == 0:
            # Nothing to learn from this batch: a zero that still touches the graph, so DDP's
            # gradient all-reduce sees every parameter.
            return LossOutput(embeddings.sum() * 0.0, stats)
        return LossOutput(self.loss(embeddings, labels, (a, p, n)), stats)

    def active_fraction(self, embeddings: torch.Tensor, labels: torch.Tensor) -> float:
        """Share of ALL valid triplets of the batch that still violate the margin.

        It falls as the model learns (whatever the miner picks), and stuck at 1.0 or 0.0 from the
        start it points at a collapse or a too-easy task.
        """
        a, p, n = all_triplets(labels)
        if len(a) == 0:
            return 0.0
        if self.normalize:
            embeddings = torch.nn.functional.normalize(embeddings, dim=1)
        d = torch.cdist(embeddings, embeddings)
        return float((d[a, p] - d[a, n] + self.margin > 0).float().mean())


class PairThresholdLoss(nn.Module):
    """dlib's metric loss (``loss_metric_``) on raw Euclidean distances: every same-person pair
    is pulled below ``threshold - margin``, and as many of the hardest different-person pairs as
    there are same-person pairs are pushed above ``threshold + margin``.

    stats: the share of pairs on the wrong side of ``threshold`` (``pair_err``)."""

    def __init__(self, threshold: float, margin: float) -> None:
        super().__init__()
        self.threshold, self.margin = threshold, margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        x = embeddings.float()
        n = len(labels)
        d = torch.cdist(x, x)
        upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), diagonal=1)
        same = (labels[:, None] == labels[None, :]) & upper
        different = (labels[:, None] != labels[None, :]) & upper
        pos = torch.relu(d[same] - (self.threshold - self.margin))
        neg = torch.relu((self.threshold + self.margin) - d[different])
        hardest = torch.topk(neg, min(len(neg), max(1, len(pos)))).values if len(neg) else neg
        count = max(1, len(pos) + len(hardest))
        wrong = (d[same] >= self.threshold).sum() + (d[different] < self.threshold).sum()
        stats = {"pair_err": float(wrong) / max(1, int(same.sum() + different.sum()))}
        return LossOutput((pos.sum() + hardest.sum()) / count, stats)


class MarginSoftmaxLoss(nn.Module):
    """ArcFace or CosFace over class centres; stats: training accuracy of the centres."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        embeddings = embeddings.float()
        loss = self.inner(embeddings, labels)
        with torch.no_grad():
            centres: torch.Tensor = self.inner.W  # type: ignore[assignment]
            w = torch.nn.functional.normalize(centres.float(), dim=0)
            accuracy = ((embeddings @ w).argmax(1) == labels).float().mean().item()
        return LossOutput(loss, {"class_acc": accuracy})


class SumLoss(nn.Module):
    """``first + weight * second``, with both parts' stats."""

    def __init__(self, first: nn.Module, second: nn.Module, weight: float) -> None:
        super().__init__()
        self.first, self.second, self.weight = first, second, weight

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        one, two = self.first(embeddings, labels), self.second(embeddings, labels)
        return LossOutput(one.loss + self.weight * two.loss, {**one.stats, **two.stats})


@register_loss("triplet")
def triplet(s: LossSettings) -> nn.Module:
    return TripletLoss(s.margin, s.miner, s.seed, normalize=s.distance == "cosine")


@register_loss("pair_threshold")
def pair_threshold(s: LossSettings) -> nn.Module:
    if s.distance != "euclidean":
        raise ConfigError(
            "loss pair_threshold: dlib's loss works on raw Euclidean distances; use it to "
            "fine-tune a model whose distance is euclidean (the dlib model)"
        )
    return PairThresholdLoss(s.pair_threshold, s.margin)


@register_loss("arcface")
def arcface(s: LossSettings) -> nn.Module:
    from pytorch_metric_learning.losses import ArcFaceLoss

    inner = ArcFaceLoss(s.num_classes, s.embedding_dim, margin=s.arcface_margin_deg, scale=s.scale)
    return MarginSoftmaxLoss(inner)


@register_loss("cosface")
def cosface(s: LossSettings) -> nn.Module:
    from pytorch_metric_learning.losses import CosFaceLoss

    inner = CosFaceLoss(s.num_classes, s.embedding_dim, margin=s.cosface_margin, scale=s.scale)
    return MarginSoftmaxLoss(inner)


@register_loss("arcface+triplet")
def arcface_triplet(s: LossSettings) -> nn.Module:
    return SumLoss(arcface(s), triplet(s), s.triplet_weight)
