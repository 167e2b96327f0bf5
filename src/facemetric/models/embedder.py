"""The embedding network: backbone + projection head -> L2-normalised embedding.

A ``ModelSpec`` says everything needed to rebuild a model and to feed it: the backbone, the
embedding size, the input size and pixel normalisation, which face template its crops are cut
with (``alignment``), whether a projection head sits on the backbone (``head``) and in which
space its training losses measure distances (``distance``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facemetric.errors import ConfigError
from facemetric.models.registry import backbone_for_spec, backbone_info

# ImageNet statistics: what torchvision backbones expect, and harmless for scratch training.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEADS = ("bn", "none")
DISTANCES = ("cosine", "euclidean")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model and feed it: stored in every checkpoint."""

    backbone: str = "resnet50"
    embedding_dim: int = 128
    input_size: int = 112
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    dropout: float = 0.0
    # Face template the crops are cut with (facemetric.data.align.TEMPLATES): every stage that
    # cuts faces for this model asks for it.
    alignment: str = "arcface"
    # "bn": dropout -> linear -> batch norm on the backbone's features; "none": the backbone's
    # output is the embedding (a pretrained face network such as dlib's).
    head: str = "bn"
    # Where training losses measure distances: "cosine" on L2-normalised embeddings, or
    # "euclidean" on the raw ones (the space a network such as dlib's was trained in).
    distance: str = "cosine"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ConfigError(f"head: {self.head!r} unknown; choose one of {', '.join(HEADS)}")
        if self.distance not in DISTANCES:
            raise ConfigError(
                f"distance: {self.distance!r} unknown; choose one of {', '.join(DISTANCES)}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(float(v) for v in known[key])
        return cls(**known)


def spec_for(backbone: str, **fields: Any) -> ModelSpec:
    """The ``ModelSpec`` of ``backbone``: its registered needs (input size, normalisation,
    alignment, head), then ``fields`` given explicitly (None values are ignored)."""
    values: dict[str, Any] = dict(backbone_info(backbone).spec_defaults)
    values.update({k: v for k, v in fields.items() if v is not None})
    return ModelSpec(backbone=backbone, **values)


class EmbeddingNet(nn.Module):
    """Backbone, then dropout -> linear -> batch norm (``head="bn"``), then L2 normalisation."""

    def __init__(self, spec: ModelSpec, pretrained: str | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = backbone_for_spec(spec, pretrained)
        self.head: nn.Module
        if spec.head == "none":
            if self.backbone.out_features != spec.embedding_dim:
                raise ConfigError(
                    f"dim: backbone {spec.backbone} outputs {self.backbone.out_features}-d "
                    f"embeddings itself (no projection head), not {spec.embedding_dim}"
                )
            self.head = nn.Identity()
        else:
            self.head = nn.Sequential(
                nn.Dropout(spec.dropout),
                nn.Linear(self.backbone.out_features, spec.embedding_dim, bias=False),
                nn.BatchNorm1d(spec.embedding_dim),
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Un-normalised embedding (what margin losses with their own normalisation want, and
        what Euclidean losses of ``distance="euclidean"`` models measure)."""
        return self.head(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(x).float(), dim=1)


def build_model(spec: ModelSpec, pretrained: str | None = None) -> EmbeddingNet:
    return EmbeddingNet(spec, pretrained)
