"""ONNX export of an embedder, checked against PyTorch, and the same ``Embedder`` over ONNX Runtime.

``export_onnx`` writes ``model.onnx`` beside the checkpoint by default, so ``load_embedder``
(engine ``auto``) picks it up while it is newer than the checkpoint. The export is verified on
the spot: PyTorch and ONNX Runtime embed the same crops and the largest absolute difference is
reported (and must stay under ``atol``). ONNX Runtime runs ResNet50 at batch 1 about twice as
fast as eager PyTorch on a small CPU.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.errors import ConfigError, ModelError
from facemetric.models.checkpoint import Checkpoint, load_checkpoint
from facemetric.models.inference import BatchEmbedder, preprocess
from facemetric.models.resolve import resolve_model_path

INPUT_NAME = "faces"
OUTPUT_NAME = "embeddings"
DEFAULT_OPSET = 17
DEFAULT_ATOL = 1e-4


@dataclass(frozen=True)
class ExportReport:
    """What ``export_onnx`` wrote and how closely it matches PyTorch."""

    path: Path
    checkpoint: Path
    opset: int
    max_abs_diff: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "checkpoint": str(self.checkpoint),
            "opset": self.opset,
            "max_abs_diff": self.max_abs_diff,
            "seconds": round(self.seconds, 2),
        }


def _sample_faces(size: int, n: int = 4, seed: int = 0) -> np.ndarray:
    """Face-like test input: smooth random images (a real crop is not needed to compare engines)."""
    rng = np.random.default_rng(seed)
    import cv2

    small = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (size, size), interpolation=cv2.INTER_CUBIC) for s in small])


def export_onnx(
    model: str | Path | None,
    out: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    atol: float = DEFAULT_ATOL,
) -> ExportReport:
    """Export MODEL (checkpoint, run folder or 'best') to ONNX with a dynamic batch axis.

    ``out`` defaults to the checkpoint's path with ``.onnx``. The file is written atomically.
    With ``verify``, PyTorch and ONNX Runtime embed the same inputs (batch 1 and 4) and a
    difference above ``atol`` raises ``ModelError``.
    """
    import torch

    if opset < 13:
        raise ConfigError(f"opset: {opset} is too old; use 13 or newer (default {DEFAULT_OPSET})")
    start = time.perf_counter()
    ckpt_path = resolve_model_path(model)
    ckpt = load_checkpoint(ckpt_path)
    target = Path(out) if out is not None else ckpt_path.with_suffix(".onnx")
    if target.is_dir():
        target = target / ckpt_path.with_suffix(".onnx").name
    target.parent.mkdir(parents=True, exist_ok=True)
    net = ckpt.build()
    size = ckpt.spec.input_size
    example = torch.from_numpy(preprocess(_sample_faces(size, 2), ckpt.spec))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                net,
                (example,),
                tmp,
                dynamo=False,  # the dynamo exporter needs onnxscript; this one needs nothing
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
            )
        diff = _max_abs_diff(net, ckpt, Path(tmp)) if verify else float("nan")
        if verify and not diff <= atol:
            raise ModelError(
                f"{ckpt_path}: ONNX export differs from PyTorch by {diff:.3g} (> {atol:g})"
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ExportReport(target, ckpt_path, opset, diff, time.perf_counter() - start)


def _max_abs_diff(net: Any, ckpt: Checkpoint, onnx_path: Path) -> float:
    """Largest |PyTorch - ONNX Runtime| over the embeddings of batches of 1 and 4 faces."""
    import torch

    session = _session(onnx_path)
    worst = 0.0
    for n in (1, 4):
        x = preprocess(_sample_faces(ckpt.spec.input_size, n, seed=n), ckpt.spec)
        with torch.inference_mode():
            ref = net(torch.from_numpy(x)).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def _session(onnx_path: Path, threads: int | None = None, spin: bool = False) -> Any:
    """An ONNX Runtime CPU session tuned for small, shared machines: all graph optimisations,
    one inter-op thread, intra-op threads = the cores (at most 8), and no busy-wait spinning.

    Spinning threads win a little on an idle machine but lose badly when the cores are shared
    (other processes, the web app's worker threads): ResNet18 at batch 1 on this 2-core box
    under load took 85 ms spinning, 40 ms not.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or min(8, os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    try:
        return ort.InferenceSession(
            str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ORT raises its own exception types for unreadable models
        raise ModelError(f"{onnx_path}: not a readable ONNX model ({exc})") from exc


class _CropReader:
    """Feeds preprocessed calibration crops to ONNX Runtime's quantiser, ``batch`` at a time."""

    def __init__(self, crops: np.ndarray, spec: Any, batch: int = 16) -> None:
        self.batches = [preprocess(crops[i : i + batch], spec) for i in range(0, len(crops), batch)]
        self.pos = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= len(self.batches):
            return None
        self.pos += 1
        return {INPUT_NAME: self.batches[self.pos - 1]}

    def rewind(self) -> None:
        self.pos = 0


def quantize_int8(
    onnx_path: str | Path,
    crops: np.ndarray,
    model: str | Path | None = None,
    out: str | Path | None = None,
) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights) of an exported model.

    ``crops`` (N, S, S, 3) uint8 are real aligned faces for calibrating activation ranges (a
    few hundred, from identities outside any evaluation set). Keep the int8 model only when its
    verification accuracy is within 0.5 points of the float one (``benchmarks/int8_accuracy.py``
    measures both). ``out`` defaults to ``NAME.int8.onnx`` beside ``onnx_path``.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: ONNX model not found; export it first")
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8 or len(crops) < 16:
        raise ConfigError(
            f"crops: need at least 16 aligned (N, S, S, 3) uint8 crops, got {crops.dtype} "
            f"{crops.shape}"
        )
    spec = load_checkpoint(resolve_model_path(model)).spec
    target = Path(out) if out is not None else onnx_path.with_suffix(".int8.onnx")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        result = Path(tmp) / "int8.onnx"
        quantize_static(
            str(prepared),
            str(result),
            _CropReader(crops, spec),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
        os.replace(result, target)
    return target


class OnnxEmbedder(BatchEmbedder):
    """ONNX Runtime inference with the surface of ``TorchEmbedder``."""

    def __init__(
        self,
        ckpt: Checkpoint,
        onnx_path: str | Path,
        threads: int | None = None,
        batch_size: int = 64,
        spin: bool = False,
    ) -> None:
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise ModelError(
                f"{onnx_path}: no ONNX export; run: facemetric export {ckpt.path or 'MODEL'} --onnx"
            )
        self.spec = ckpt.spec
        self.threshold = ckpt.match_threshold
        self.meta = ckpt.meta
        self.checkpoint_path = ckpt.path or Path("<memory>")
        self.onnx_path = onnx_path
        self.batch_size = batch_size
        self.session = _session(onnx_path, threads, spin)
        shape = self.session.get_inputs()[0].shape
        if len(shape) != 4 or shape[2:] != [self.spec.input_size] * 2:
            raise ModelError(
                f"{onnx_path}: input shape {shape} does not match the checkpoint's "
                f"{self.spec.input_size} px crops; export it again"
            )

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = [
            self.session.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + self.batch_size]})[0]
            for i in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.spec.embedding_dim), np.float32)
