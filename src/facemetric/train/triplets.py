"""Which (anchor, positive, negative) triplets a batch trains on, chosen by name.

``semihard`` (default) and ``hard`` are pytorch-metric-learning's ``TripletMarginMiner`` over all
triplets of a P x K batch, with the loss's margin and distance (Euclidean on L2-normalised
embeddings, or on the raw ones when ``normalize`` is False: a pretrained network's own space).
``random`` keeps one random negative per (anchor, positive) pair; ``explicit`` is the original
Triplet Network's scheme: one triplet per anchor image with a random positive and a random
negative, fixed before looking at distances.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from facemetric.errors import ConfigError

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
Miner = Callable[[torch.Tensor, torch.Tensor], Triplets]
MinerFactory = Callable[[float, torch.Generator, bool], Miner]

_MINERS: dict[str, MinerFactory] = {}


def register_miner(name: str) -> Callable[[MinerFactory], MinerFactory]:
    def wrap(factory: MinerFactory) -> MinerFactory:
        _MINERS[name] = factory
        return factory

    return wrap


def available_miners() -> list[str]:
    return sorted(_MINERS)


def create_miner(
    name: str,
    margin: float = 0.2,
    generator: torch.Generator | None = None,
    normalize: bool = True,
) -> Miner:
    """The miner registered as ``name``: ``miner(embeddings, labels) -> (a, p, n)`` indices.

    ``normalize``: distances between L2-normalised embeddings (False: between the raw ones)."""
    if name not in _MINERS:
        raise ConfigError(f"miner: unknown name {name!r}; choose one of {', '.join(_MINERS)}")
    return _MINERS[name](margin, generator or torch.Generator().manual_seed(0), normalize)


def _pml_miner(kind: str, margin: float, normalize: bool) -> Miner:
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.miners import TripletMarginMiner

    miner = TripletMarginMiner(
        margin=margin,
        type_of_triplets=kind,
        distance=LpDistance(normalize_embeddings=normalize, p=2),
    )

    def mine(embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        a, p, n = miner(embeddings.float(), labels)
        return a, p, n

    return mine


@register_miner("semihard")
def semihard(margin: float, generator: torch.Generator, normalize: bool) -> Miner:
    """Negatives farther than the positive but inside the margin: 0 < d(a,n) - d(a,p) <= margin."""
    return _pml_miner("semihard", margin, normalize)


@register_miner("hard")
def hard(margin: float, generator: torch.Generator, normalize: bool) -> Miner:
    """Negatives at least as close as the positive: d(a,n) <= d(a,p)."""
    return _pml_miner("hard", margin, normalize)


def all_triplets(labels: torch.Tensor) -> Triplets:
    """Every valid (a, p, n): same label for a and p (a != p), another label for n."""
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    valid = pos[:, :, None] & ~same[:, None, :]
    a, p, n = torch.nonzero(valid, as_tuple=True)
    return a, p, n


@register_miner("random")
def random_negatives(margin: float, generator: torch.Generator, normalize: bool) -> Miner:
    """Every (anchor, positive) pair with one uniformly random negative."""

    def mine(embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        del embeddings
        labels = labels.cpu()
        same = labels[:, None] == labels[None, :]
        pairs = same & ~torch.eye(len(labels), dtype=torch.bool) & (~same).any(1, keepdim=True)
        a, p = torch.nonzero(pairs, as_tuple=True)
        return a, p, _random_other(~same[a], generator)

    return mine


@register_miner("explicit")
def explicit(margin: float, generator: torch.Generator, normalize: bool) -> Miner:
    """One triplet per anchor image: a random positive and a random negative (no distances)."""

    def mine(embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        del embeddings
        return explicit_triplets(labels.cpu(), generator)

    return mine


def explicit_triplets(labels: torch.Tensor, generator: torch.Generator) -> Triplets:
    """(anchor, positive, negative) with every image that has a positive as an anchor once."""
    same = labels[:, None] == labels[None, :]
    pos_mask = same & ~torch.eye(len(labels), dtype=torch.bool)
    anchors = torch.nonzero(pos_mask.any(1) & (~same).any(1)).flatten()
    positives = _random_other(pos_mask[anchors], generator)
    negatives = _random_other(~same[anchors], generator)
    return anchors, positives, negatives


def _random_other(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each row of a boolean mask, the column of one True entry chosen uniformly."""
    if mask.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    weights = mask.float()
    return torch.multinomial(weights, 1, generator=generator).flatten()
