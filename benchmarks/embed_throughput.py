"""Embedding speed: faces/s at batch 32 and ms per face at batch 1, PyTorch vs ONNX Runtime.

A checkpoint with random weights (speed does not depend on them) is written to a temporary
folder, exported to ONNX (verified against PyTorch), and both engines embed the same random
crops in alternating rounds, so load changes on a shared machine hit both alike; the median
round counts. ``--model dlib`` measures the pretrained model instead, beside dlib itself
(``compute_face_descriptor`` on the same 150 px chips; needs ``pip install dlib-bin``)::

    .venv/bin/python benchmarks/embed_throughput.py --model dlib
    .venv/bin/python benchmarks/embed_throughput.py --backbone resnet18 --seconds 5 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def faces_per_second(embedder: object, faces: np.ndarray, seconds: float) -> float:
    embed = embedder.embed  # type: ignore[attr-defined]
    embed(faces)  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done == 0:
        embed(faces)
        done += len(faces)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0, help="per engine and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="intra-op threads of both engines (default: all)"
    )
    parser.add_argument("--model", help="a pretrained model or checkpoint instead of --backbone")
    args = parser.parse_args()

    import torch

    from facemetric.models import (
        ModelSpec,
        TorchEmbedder,
        build_model,
        load_checkpoint,
        save_checkpoint,
    )
    from facemetric.models.export import OnnxEmbedder, export_onnx

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = ModelSpec(backbone=args.backbone, embedding_dim=args.dim, input_size=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            from facemetric.models import resolve_model_path

            path = resolve_model_path(args.model)
        else:
            path = save_checkpoint(Path(tmp) / "model.pt", build_model(spec).eval())
        report = export_onnx(path, out=Path(tmp) / "model.onnx")
        ckpt = load_checkpoint(path)
        args.backbone, args.size = ckpt.spec.backbone, ckpt.spec.input_size
        args.dim = ckpt.spec.embedding_dim
        onnx = OnnxEmbedder(ckpt, report.path, threads=args.threads)
        engines: dict[str, object] = {"torch": TorchEmbedder(ckpt), "onnx": onnx}
        if ckpt.spec.backbone == "dlib_resnet":
            dlib_engine = dlib_itself()
            if dlib_engine is not None:
                engines["dlib"] = dlib_engine
        rng = np.random.default_rng(0)
        batch = rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)
        one = batch[:1]
        print(
            f"{args.backbone} {args.size}px dim {args.dim}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads); ONNX max abs diff {report.max_abs_diff:.2e}"
        )
        rates: dict[str, list[float]] = {n: [] for n in engines}
        single: dict[str, list[float]] = {n: [] for n in engines}
        for _ in range(args.rounds):
            for name, embedder in engines.items():
                rates[name].append(faces_per_second(embedder, batch, args.seconds))
                single[name].append(1000 / faces_per_second(embedder, one, args.seconds / 2))
        print(f"{'engine':>6} {f'faces/s @{args.batch}':>14} {'ms @1':>8}")
        for name in engines:
            print(
                f"{name:>6} {statistics.median(rates[name]):>14.1f} "
                f"{statistics.median(single[name]):>8.2f}"
            )
        thr = statistics.median(rates["onnx"]) / statistics.median(rates["torch"])
        lat = statistics.median(single["torch"]) / statistics.median(single["onnx"])
        print(f"onnx/torch: throughput x{thr:.2f} at batch {args.batch}, latency x{lat:.2f} faster")
        if "dlib" in engines:
            per_face = statistics.median(single["dlib"]) / statistics.median(single["onnx"])
            print(f"onnx vs dlib itself: x{per_face:.1f} faster per face at batch 1")


class DlibItself:
    """dlib's own network on the same chips (the reference the port is measured against)."""

    def __init__(self, dlib: object, path: str) -> None:
        self.net = dlib.face_recognition_model_v1(path)  # type: ignore[attr-defined]

    def embed(self, faces: np.ndarray) -> np.ndarray:
        chips = [np.ascontiguousarray(f) for f in faces]
        return np.asarray(self.net.compute_face_descriptor(chips), dtype=np.float32)


def dlib_itself() -> DlibItself | None:
    try:
        import dlib
    except ImportError:
        print("dlib itself skipped: not installed (pip install dlib-bin)")
        return None
    from facemetric.models.pretrained.dlib import locate

    return DlibItself(dlib, str(locate()))


if __name__ == "__main__":
    main()
