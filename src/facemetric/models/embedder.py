"""The embedding network: backbone + projection head -> L2-normalised embedding."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facemetric.models.backbones import create_backbone

# ImageNet statistics: what torchvision backbones expect, and harmless for scratch training.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model and feed it: stored in every checkpoint."""

    backbone: str = "resnet50"
    embedding_dim: int = 128
    input_size: int = 112
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    dropout: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

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


class EmbeddingNet(nn.Module):
    """Backbone, then dropout -> linear -> batch norm, then L2 normalisation."""

    def __init__(self, spec: ModelSpec, pretrained: str | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = create_backbone(spec.backbone, pretrained)
        self.head = nn.Sequential(
            nn.Dropout(spec.dropout),
            nn.Linear(self.backbone.out_features, spec.embedding_dim, bias=False),
            nn.BatchNorm1d(spec.embedding_dim),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Un-normalised embedding (what margin losses with their own normalisation want)."""
        return self.head(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(x).float(), dim=1)


def build_model(spec: ModelSpec, pretrained: str | None = None) -> EmbeddingNet:
    return EmbeddingNet(spec, pretrained)
