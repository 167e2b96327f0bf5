"""``dlib``: dlib's public-domain face-recognition ResNet, from ``face_recognition_models``.

The weights file ``dlib_face_recognition_resnet_model_v1.dat`` (Davis King; the dlib-models README
puts it in the public domain, the package's LICENSE file is CC0) is read by ``dlib_dat`` without
dlib and run by ``facemetric.models.dlib_resnet``. Its crops are dlib-style 150x150 chips cut from
RetinaFace's five landmarks (the ``dlib`` template of ``facemetric.data.align``).

``FACEMETRIC_DLIB_MODEL`` may point at the ``.dat`` file directly (a copy outside the package).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from facemetric.errors import ModelError
from facemetric.models.embedder import spec_for
from facemetric.models.pretrained.model import PretrainedModel

PACKAGE = "face_recognition_models"
FILE_NAME = "dlib_face_recognition_resnet_model_v1.dat"
ENV_PATH = "FACEMETRIC_DLIB_MODEL"
INSTALL_HINT = f"pip install {PACKAGE}"


def locate() -> Path:
    """The ``.dat`` file: ``$FACEMETRIC_DLIB_MODEL``, else inside the installed package.

    The package's ``__init__`` is never imported: it needs ``pkg_resources``, which recent
    setuptools no longer ships, so the file is found from the package's location alone.
    """
    override = os.environ.get(ENV_PATH)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelError(f"{ENV_PATH}={override}: file not found")
        return path
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the pretrained model 'dlib' needs the package {PACKAGE}, which is not installed: "
            f"{INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / FILE_NAME
    if not path.is_file():
        raise ModelError(
            f"{path}: not found although {PACKAGE} is installed; reinstall it: "
            f"pip install --force-reinstall {PACKAGE}"
        )
    return path


def convert(path: Path) -> dict[str, Any]:
    from facemetric.models.pretrained.dlib_dat import read_dlib_network, state_dict

    return state_dict(read_dlib_network(path))


# Calibrated on every pair of a shared set of ordinary photos through facemetric's own pipeline
# (RetinaFace, dlib-template chips, the port, cosine of unit vectors):
#   .venv/bin/python benchmarks/pretrained_threshold.py dlib ../shared/data/celeba-wild \
#       ../shared/data/celeba-crops --calibrate-on 0 --far 1e-3
CALIBRATION = {
    "method": "far",
    "target_far": 1e-3,
    "threshold": 0.9301,
    "tar": 0.8121,
    "far": 0.0010,
    "genuine_pairs": 36_976,
    "impostor_pairs": 4_935_305,
    "data": "celeba-wild (shared data): 3,154 photos of 150 people, every pair",
    "command": "benchmarks/pretrained_threshold.py dlib ../shared/data/celeba-wild --far 1e-3",
}
# `facemetric evaluate dlib --pairs ../shared/data/cfp/pairs_F?.tsv --root ../shared/data/cfp`
ACCURACY = {
    "CFP-FF": "98.91% ± 0.61",
    "CFP-FP": "89.58% ± 1.53",
    "celeba-wild TAR@FAR1e-3": "81.2%",
}

DLIB = PretrainedModel(
    name="dlib",
    description="dlib's 29-conv face ResNet (Davis King), trained on ~3M faces of 7,485 people",
    package=PACKAGE,
    licence="public domain (dlib-models README; CC0 in the package)",
    spec=spec_for("dlib_resnet"),
    threshold=float(CALIBRATION["threshold"]),  # type: ignore[arg-type]
    calibration=CALIBRATION,
    accuracy=ACCURACY,
    locate=locate,
    convert=convert,
    notes=[
        "source: PyPI face_recognition_models, dlib_face_recognition_resnet_model_v1.dat "
        "(Davis King, dlib-models), read without dlib",
    ],
)
