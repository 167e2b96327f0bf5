"""The backbone registry: backbones chosen by name, each returning a flat feature vector.

Every factory takes ``pretrained`` (None, ``"imagenet"`` or a local state-dict path) and returns
a module with an ``out_features`` attribute, so the embedding head never needs to know which
backbone it sits on. The built-in backbones register themselves in ``backbones.py`` (and the
modules it imports), which ``facemetric.models`` imports before anything can look one up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facemetric.errors import ConfigError, ModelError

BackboneFactory = Callable[[str | None], "Backbone"]


class Backbone(nn.Module):
    """A feature extractor: (N, 3, H, W) float -> (N, out_features)."""

    def __init__(self, body: nn.Module, out_features: int) -> None:
        super().__init__()
        self.body = body
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.body(x), 1)


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    factory: BackboneFactory
    description: str
    # ModelSpec fields this backbone needs other than the defaults (input size, normalisation,
    # alignment, head, distance); see ``facemetric.models.embedder.spec_for``.
    spec_defaults: dict[str, Any] = field(default_factory=dict)
    # Training settings that suit fine-tuning a trained model of this backbone (lr,
    # freeze_stages, ...); used by ``facemetric train`` where the user gives none.
    finetune: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, BackboneInfo] = {}


def register_backbone(
    name: str,
    description: str,
    finetune: dict[str, Any] | None = None,
    **spec_defaults: Any,
) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator adding a backbone factory to the registry under ``name``.

    ``spec_defaults`` are the ``ModelSpec`` fields the backbone needs (``input_size=150``,
    ``head="none"`` when its output already is the embedding, ...); ``finetune`` the training
    settings that suit fine-tuning it (``lr``, ``freeze_stages``).
    """

    def wrap(factory: BackboneFactory) -> BackboneFactory:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        info = BackboneInfo(name, factory, description, dict(spec_defaults), dict(finetune or {}))
        _REGISTRY[name] = info
        return factory

    return wrap


def available_backbones() -> list[str]:
    return sorted(_REGISTRY)


def backbone_info(name: str) -> BackboneInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"backbone: unknown name {name!r}; choose one of {', '.join(available_backbones())}"
        ) from None


def create_backbone(name: str, pretrained: str | None = None) -> Backbone:
    """Build the backbone registered as ``name``."""
    return backbone_info(name).factory(pretrained)


# Backbones whose structure is data kept in the spec (``ModelSpec.extra``), not code: a graph read
# from a file (``tfjs_graph``) or several networks fused (``composite``). Never trained here.
SpecFactory = Callable[[Any], Backbone]
_SPEC_REGISTRY: dict[str, SpecFactory] = {}


def register_spec_backbone(name: str) -> Callable[[SpecFactory], SpecFactory]:
    """Decorator adding a backbone built from its ``ModelSpec`` (structure in ``spec.extra``)."""

    def wrap(factory: SpecFactory) -> SpecFactory:
        if name in _SPEC_REGISTRY or name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        _SPEC_REGISTRY[name] = factory
        return factory

    return wrap


def backbone_for_spec(spec: Any, pretrained: str | None = None) -> Backbone:
    """The backbone of ``spec``: built from the spec itself for a spec backbone, else by name."""
    if spec.backbone in _SPEC_REGISTRY:
        if pretrained is not None:
            raise ConfigError(f"backbone {spec.backbone}: takes no --pretrained weights")
        return _SPEC_REGISTRY[spec.backbone](spec)
    return create_backbone(spec.backbone, pretrained)


# --- pretrained weights -------------------------------------------------------------------------


def _load_local_state(module: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"--pretrained {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"--pretrained {path}: cannot read state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    missing, _unexpected = module.load_state_dict(state, strict=False)
    matched = len(module.state_dict()) - len(missing)
    if matched == 0:
        raise ModelError(f"--pretrained {path}: no parameter names match this backbone")


def _imagenet_state(weights: Any) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights, from the torch hub cache or downloaded into it."""
    from torch.hub import get_dir, load_state_dict_from_url

    url: str = weights.url
    cached = Path(get_dir()) / "checkpoints" / Path(url).name
    try:
        return load_state_dict_from_url(url, progress=True, check_hash=False)
    except Exception as exc:
        raise ModelError(
            f"--pretrained imagenet: cannot download {url} ({exc.__class__.__name__}: {exc}); "
            f"offline, place that file at {cached}"
        ) from exc


def apply_pretrained(model: nn.Module, pretrained: str | None, weights: Any) -> None:
    if pretrained is None:
        return
    if pretrained == "imagenet":
        if weights is None:
            raise ModelError("--pretrained imagenet: this backbone has no ImageNet weights")
        model.load_state_dict(_imagenet_state(weights))
    else:
        _load_local_state(model, Path(pretrained))
