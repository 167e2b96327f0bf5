"""Int8 or not: CFP verification accuracy and speed of a model in float ONNX vs static int8.

The int8 model is calibrated on real aligned crops of other identities (``--calib``, e.g. the
celeba-crops set aligned by ``facemetric data align``); CFP pairs are scored on aligned CFP crops
(``--crops``; the pairs file's ``.jpg`` names map to the crops' ``.png``). Issue 5's rule: ship
int8 only if 10-fold accuracy drops by less than 0.5 points. Prints both, the drop, and speed::

    .venv/bin/python benchmarks/int8_accuracy.py --model work/runs/NAME \\
        --crops work/crops/cfp --calib work/crops/celeba-crops
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def load_crops(root: Path, rels: list[str]) -> np.ndarray:
    from facemetric.data.image import load_image

    return np.stack([load_image(root / r) for r in rels])


def calibration_crops(root: Path, n: int, seed: int = 0) -> np.ndarray:
    """``n`` crops spread over identities (a few per person, people in random order)."""
    rng = np.random.default_rng(seed)
    people = sorted(p for p in root.iterdir() if p.is_dir())
    rng.shuffle(people)
    rels: list[str] = []
    for person in people:
        rels += [f"{person.name}/{f.name}" for f in sorted(person.glob("*.png"))[:2]]
        if len(rels) >= n:
            break
    return load_crops(root, rels[:n])


def png(rel: str) -> str:
    return str(Path(rel).with_suffix(".png"))


def accuracy(embedder: object, crops: np.ndarray, index: dict[str, int], protocol: object) -> float:
    """10-fold verification accuracy of the protocol's pairs (``index``: crop rel -> row)."""
    from facemetric.evaluate import kfold_accuracy

    emb = embedder.embed(crops)  # type: ignore[attr-defined]
    every = protocol.pairs  # type: ignore[attr-defined]
    pairs = [p for p in every if png(p.image1) in index and png(p.image2) in index]
    a = emb[[index[png(p.image1)] for p in pairs]]
    b = emb[[index[png(p.image2)] for p in pairs]]
    scores = (a * b).sum(axis=1)
    labels = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    return float(kfold_accuracy(scores, labels, folds).mean)


def ms_per_face(embedder: object, faces: np.ndarray, seconds: float) -> float:
    embed = embedder.embed  # type: ignore[attr-defined]
    embed(faces)
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or not times:
        t = time.perf_counter()
        embed(faces)
        times.append((time.perf_counter() - t) * 1000 / len(faces))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="best", help="checkpoint, run folder or 'best'")
    parser.add_argument("--crops", type=Path, default=Path("work/crops/cfp"))
    parser.add_argument("--pairs", type=Path, nargs="+", default=None)
    parser.add_argument("--calib", type=Path, default=Path("work/crops/celeba-crops"))
    parser.add_argument("--calib-count", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    from facemetric.evaluate import read_pairs
    from facemetric.models import load_checkpoint, resolve_model_path
    from facemetric.models.export import OnnxEmbedder, export_onnx, quantize_int8

    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "cfp"
    pair_files = args.pairs or [shared / "pairs_FF.tsv", shared / "pairs_FP.tsv"]
    ckpt_path = resolve_model_path(args.model)
    ckpt = load_checkpoint(ckpt_path)
    with tempfile.TemporaryDirectory() as tmp:
        f32 = export_onnx(ckpt_path, out=Path(tmp) / "model.onnx")
        calib = calibration_crops(args.calib, args.calib_count)
        t = time.perf_counter()
        int8 = quantize_int8(f32.path, calib, model=ckpt_path)
        print(
            f"model {ckpt_path} ({ckpt.spec.backbone}, {ckpt.spec.embedding_dim}-d); "
            f"calibrated on {len(calib)} crops of {args.calib} in {time.perf_counter() - t:.1f} s; "
            f"size {f32.path.stat().st_size / 1e6:.1f} MB -> {int8.stat().st_size / 1e6:.1f} MB"
        )
        engines = {"float": OnnxEmbedder(ckpt, f32.path), "int8": OnnxEmbedder(ckpt, int8)}
        for pair_file in pair_files:
            protocol = read_pairs(pair_file)
            rels = [png(r) for r in protocol.images if (args.crops / png(r)).is_file()]
            missing = len(protocol.images) - len(rels)  # no face found when aligning
            crops = load_crops(args.crops, rels)
            index = {r: i for i, r in enumerate(rels)}
            acc = {n: accuracy(e, crops, index, protocol) for n, e in engines.items()}
            drop = (acc["float"] - acc["int8"]) * 100
            verdict = "keep int8" if drop < 0.5 else "int8 NOT worth it (drop >= 0.5 points)"
            print(
                f"{pair_file.name}: {len(protocol.pairs)} pairs ({missing} images without a "
                f"crop: their pairs left out), 10-fold accuracy float "
                f"{acc['float'] * 100:.2f}%, int8 {acc['int8'] * 100:.2f}%, "
                f"drop {drop:+.2f} points -> {verdict}"
            )
        one, batch = calib[:1], calib[:32]
        for name, e in engines.items():
            print(
                f"{name:>5}: {ms_per_face(e, one, args.seconds):.2f} ms/face at batch 1, "
                f"{1000 / ms_per_face(e, batch, args.seconds):.0f} faces/s at batch 32"
            )


if __name__ == "__main__":
    main()
