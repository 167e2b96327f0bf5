"""The names every registry answers to, importable without torch, ONNX Runtime or OpenCV.

The CLI checks what a user typed (``--backbone resnet19``, ``--detector retina``) against these
before it loads anything heavy, so a typo is reported in a fraction of a second rather than after
torch has loaded. The registries stay the truth: ``tests/test_catalog.py`` fails when a name is
registered without being listed here, or the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable

from facemetric.errors import ConfigError

BACKBONES = (
    "dlib_resnet",
    "iresnet18",
    "iresnet50",
    "iresnet_tiny",
    "mobilenet_v3",
    "resnet18",
    "resnet50",
    "tiny",
)
PRETRAINED = ("dlib", "faceres")
# File extensions read as images (data/image.py); here so the CLI can look for photos at once.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pbm", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
)
LOSSES = ("arcface", "arcface+triplet", "cosface", "pair_threshold", "triplet")
MINERS = ("explicit", "hard", "random", "semihard")
TEACHERS = ("dlib", "init")
DETECTORS = ("mtcnn", "retinaface", "yunet")
TEMPLATES = ("arcface", "dlib", "gallery")


def check_name(value: str | None, choices: Iterable[str], field: str) -> None:
    """``ConfigError`` naming ``field`` and the choices when ``value`` is not one of them."""
    options = sorted(choices)
    if value is not None and value not in options:
        raise ConfigError(f"{field}: unknown name {value!r}; choose one of {', '.join(options)}")
