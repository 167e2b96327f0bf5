"""Composite models by name (``dlib+faceres``, ``dlib:flip``, ``dlib+faceres:flip``).

Each is converted once, from its parts' converted checkpoints, into one checkpoint under
``$FACEMETRIC_HOME/pretrained/``, keyed by the parts' source digests, weights and
flip. The fusion weights come from score-level z-normalisation: each part's cosine is
standardised with its impostor mean and deviation, then mixed with weights ``alpha``; as a
concatenation that is ``w_i ∝ alpha_i / std_i`` (the means only shift every score alike).
The per-pair thresholds are calibrated on each composite's own scale (FAR 1e-3, every pair of
celeba-wild, ``benchmarks/pretrained_threshold.py``), as dlib's was.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from facemetric.errors import ModelError
from facemetric.models.checkpoint import load_checkpoint, save_checkpoint
from facemetric.models.composite import INPUT_TEMPLATE, crop_theta, parse_composite
from facemetric.models.embedder import EmbeddingNet
from facemetric.models.pretrained.convert import CACHE_FOLDER, converted_checkpoint
from facemetric.models.pretrained.model import available_pretrained, pretrained_info
from facemetric.paths import facemetric_home

log = logging.getLogger(__name__)

# Impostor statistics of each part's cosine (mean, std): the reference's dev-set figures, which
# every impostor pair of celeba-wild through the product's crops gives again (dlib 0.8302 +-
# 0.0398, faceres 0.3665 +- 0.0702; benchmarks/fusion_data.py ../shared/data/celeba-wild)
IMPOSTOR_STATS: dict[str, tuple[float, float]] = {
    "dlib": (0.830, 0.040),
    "faceres": (0.366, 0.070),
}
# The mix of z-normalised scores (chosen on shared celeba-wild, ../shared/reference/faceres.md).
ALPHA: dict[tuple[str, ...], tuple[float, ...]] = {("dlib", "faceres"): (0.8, 0.2)}
# Per-pair thresholds on each composite's scale, FAR 1e-3 on every pair of celeba-wild (3,154
# photos of 150 people: 36,976 genuine, 4,935,305 impostor pairs), the product's crops:
#   benchmarks/fusion_data.py ../shared/data/celeba-wild   (dlib there: 0.9301, TAR 81.2%)
_DATA = "celeba-wild (shared data): 3,154 photos of 150 people, every pair"
_COMMAND = "benchmarks/fusion_data.py ../shared/data/celeba-wild"


def _far(threshold: float, tar: float) -> dict[str, Any]:
    return {
        "method": "far",
        "target_far": 1e-3,
        "threshold": threshold,
        "tar": tar,
        "far": 0.0010,
        "genuine_pairs": 36_976,
        "impostor_pairs": 4_935_305,
        "data": _DATA,
        "command": _COMMAND,
    }


CALIBRATIONS: dict[str, dict[str, Any]] = {
    "dlib:flip": _far(0.9331, 0.8387),
    "faceres:flip": _far(0.6187, 0.7350),
    "dlib+faceres": _far(0.8817, 0.8475),
    "dlib+faceres:flip": _far(0.8862, 0.8637),
}
REVISION = 1


def fusion_weights(names: list[str]) -> tuple[list[float], dict[str, Any]]:
    """Concatenation weights (summing to 1) for parts ``names`` and how they were set."""
    if len(names) == 1:
        return [1.0], {"method": "single model"}
    alpha = ALPHA.get(tuple(names))
    stats = [IMPOSTOR_STATS.get(n) for n in names]
    if alpha is None or any(s is None for s in stats):
        # no measured mix: equal z-score weights where the impostor spread is known, else equal
        alpha = tuple(1.0 / len(names) for _ in names)
        if any(s is None for s in stats):
            w = [1.0 / len(names)] * len(names)
            return w, {"method": "equal weights (no impostor statistics measured)"}
    raw = [a / s[1] for a, s in zip(alpha, stats, strict=True)]  # type: ignore[index]
    total = sum(raw)
    weights = [r / total for r in raw]
    return weights, {
        "method": "z-normalised cosines (impostor mean/std per part), mixed by alpha",
        "alpha": list(alpha),
        "impostor_stats": {n: list(s) for n, s in zip(names, stats, strict=True) if s},
        "weights": weights,
    }


def is_composite_name(name: str) -> bool:
    try:
        parsed = parse_composite(name)
    except ModelError:
        return False
    return parsed is not None and all(p in available_pretrained() for p in parsed[0])


def composite_spec(names: list[str], flip: bool, part_specs: list[Any]) -> Any:
    """The composite's ``ModelSpec``: the gallery template, at the largest size any part needs."""
    from facemetric.data.align import face_template
    from facemetric.models.embedder import ModelSpec

    weights, how = fusion_weights(names)
    outer = face_template(INPUT_TEMPLATE)
    if len(part_specs) == 1:
        outer = face_template(part_specs[0].alignment)
    parts, size = [], 0
    for name, spec, w in zip(names, part_specs, weights, strict=True):
        inner = face_template(spec.alignment)
        theta = crop_theta(inner, spec.input_size, outer)
        scale = 1.0 if theta is None else abs(theta[0][0])
        size = max(size, round(spec.input_size / scale))
        parts.append({"name": name, "spec": spec.to_dict(), "weight": w, "theta": theta})
    return ModelSpec(
        backbone="composite",
        embedding_dim=sum(s.embedding_dim for s in part_specs),
        input_size=size,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        alignment=outer.name,
        head="none",
        distance="cosine",
        extra={"parts": parts, "flip": flip, "fusion": how},
    )


def composite_checkpoint(name: str) -> Path:
    """The converted checkpoint of composite model ``name`` (built on first use)."""
    parsed = parse_composite(name)
    if parsed is None:
        raise ModelError(f"model {name!r}: not a composite name (A+B, A:flip)")
    names, flip = parsed
    ckpts = [load_checkpoint(converted_checkpoint(n)) for n in names]
    spec = composite_spec(names, flip, [c.spec for c in ckpts])
    calibration = CALIBRATIONS.get(name)
    threshold = float(calibration["threshold"]) if calibration else None
    digests = [str(c.meta.get("source_sha256", c.path)) for c in ckpts]
    settings = json.dumps(
        {
            "parts": digests,
            "spec": spec.extra["fusion"],
            "flip": flip,
            "t": threshold,
            "rev": REVISION,
        },
        sort_keys=True,
    )
    tag = hashlib.sha256(settings.encode()).hexdigest()[:16]
    folder = facemetric_home() / CACHE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name.replace('+', '_').replace(':', '-')}-{tag}.pt"
    if target.is_file():
        return target
    net = EmbeddingNet(spec)
    body: Any = net.backbone.body
    for part, ckpt in zip(body.parts, ckpts, strict=True):
        part.load_state_dict(ckpt.state_dict)
    infos = [pretrained_info(n) for n in names]
    meta = {
        "pretrained": name,
        "parts": names,
        "flip": flip,
        "source_sha256": ",".join(digests),
        "package": " + ".join(i.package for i in infos),
        "licence": " + ".join(f"{i.name}: {i.licence}" for i in infos),
        "calibration": calibration or {},
        "fusion": spec.extra["fusion"],
    }
    if (
        threshold is None
    ):  # left uncalibrated: `evaluate --calibrate` or `compare --promote` sets it
        log.warning("model %s: no calibrated threshold on its scale yet", name)
    save_checkpoint(target, net.eval(), threshold, meta)
    return target
