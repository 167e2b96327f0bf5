"""Several face networks as one model: weighted, normalised concatenation, and mirror averaging.

A composite model's name joins pretrained models with ``+`` and may end with ``:flip``
(``dlib+faceres``, ``dlib:flip``, ``dlib+faceres:flip``). It is one ``EmbeddingNet`` whose
backbone (``composite``) runs each part on its own crop and returns
``[sqrt(w1) * e1, sqrt(w2) * e2, ...]`` where each ``ei`` is the part's L2-normalised embedding
(with ``flip``, of the crop and its mirror image summed) and the weights sum to 1: the vector
has unit length, and its inner product with another is ``sum(wi * cos_i)``, the fused score.
So search, FAISS, the gallery store and the decision take it unchanged.

All parts read one input, cut with the loosest template they need (the gallery's): each part's
own crop is cut from it by a fixed affine map (``grid_sample``), the map between the two
templates, so every stage that cuts faces still asks the spec for one template and one size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facemetric.errors import ModelError
from facemetric.models.registry import Backbone, register_spec_backbone

FLIP_SUFFIX = ":flip"
INPUT_TEMPLATE = "gallery"


def parse_composite(name: str) -> tuple[list[str], bool] | None:
    """``"dlib+faceres:flip"`` -> (["dlib", "faceres"], True); None for a plain name."""
    text = str(name)
    flip = text.endswith(FLIP_SUFFIX)
    if flip:
        text = text[: -len(FLIP_SUFFIX)]
    parts = text.split("+")
    if not flip and len(parts) < 2:
        return None
    if any(not p for p in parts):
        raise ModelError(f"model {name!r}: empty part (write A+B, A:flip or A+B:flip)")
    return parts, flip


def crop_theta(part: Any, part_size: int, outer: Any) -> list[list[float]] | None:
    """``affine_grid`` parameters that cut ``part``'s crop (template ``part``) from an input
    cut with template ``outer`` (both ``FaceTemplate``s); None when they are the same."""
    from facemetric.data.align import similarity_transform

    if part.name == outer.name:
        return None
    m = similarity_transform(part.points.astype(np.float64), outer.points.astype(np.float64))
    a, b = m[:, :2], m[:, 2]
    t = a @ np.ones(2) + 2 * b - 1
    return [
        [float(a[0, 0]), float(a[0, 1]), float(t[0])],
        [float(a[1, 0]), float(a[1, 1]), float(t[1])],
    ]


class CompositeNet(nn.Module):
    """The parts' embeddings, each weighted by sqrt(w), concatenated: (N, 3, S, S) in 0..1 RGB."""

    def __init__(self, parts: list[dict[str, Any]], flip: bool) -> None:
        from facemetric.models.embedder import EmbeddingNet, ModelSpec

        super().__init__()
        self.flip = flip
        self.parts = nn.ModuleList()
        self.sizes: list[int] = []
        self.thetas: list[list[list[float]] | None] = []
        self.scales: list[float] = []
        for i, part in enumerate(parts):
            spec = ModelSpec.from_dict(part["spec"])
            self.parts.append(EmbeddingNet(spec))
            self.sizes.append(spec.input_size)
            self.thetas.append(part.get("theta"))
            self.scales.append(math.sqrt(float(part["weight"])))
            self.register_buffer(
                f"mean{i}", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False
            )
            self.register_buffer(
                f"std{i}", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False
            )
            rev = torch.arange(spec.input_size - 1, -1, -1)
            self.register_buffer(f"rev{i}", rev, persistent=False)
            if part.get("theta") is not None:  # fixed: computed once (ONNX has no affine_grid)
                th = torch.tensor(part["theta"], dtype=torch.float32).unsqueeze(0)
                size = spec.input_size
                grid = F.affine_grid(th, [1, 3, size, size], align_corners=False)
                self.register_buffer(f"grid{i}", grid, persistent=False)

    def part_input(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Part ``i``'s crop of ``x``, normalised as that part expects."""
        size, theta = self.sizes[i], self.thetas[i]
        if theta is not None:
            grid = getattr(self, f"grid{i}").expand(x.shape[0], -1, -1, -1)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        elif x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        return (x - getattr(self, f"mean{i}")) / getattr(self, f"std{i}")

    def part_embedding(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Part ``i``'s L2-normalised embedding (with ``flip``: of the crop and its mirror)."""
        xi = self.part_input(i, x)
        net: Any = self.parts[i]
        e = F.normalize(net.features(xi).float(), dim=1)
        if self.flip:
            mirrored = xi.index_select(3, getattr(self, f"rev{i}"))
            e = F.normalize(e + F.normalize(net.features(mirrored).float(), dim=1), dim=1)
        return e

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([s * self.part_embedding(i, x) for i, s in enumerate(self.scales)], dim=1)


@register_spec_backbone("composite")
def composite(spec: Any) -> Backbone:
    """Several networks fused (``spec.extra``: ``parts`` and ``flip``)."""
    parts = spec.extra.get("parts")
    if not isinstance(parts, list) or not parts:
        raise ModelError("backbone composite: the spec lists no parts (extra['parts'])")
    net = CompositeNet(parts, bool(spec.extra.get("flip", False)))
    return Backbone(net, sum(int(p["spec"]["embedding_dim"]) for p in parts))
