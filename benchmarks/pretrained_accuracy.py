"""Accuracy with no training: facemetric's own pipeline with a pretrained model against the same
network in dlib's own pipeline, on the same pairs, in the same run.

facemetric: RetinaFace, chips cut with the model's template (``dlib``), the PyTorch/ONNX port,
cosine of unit vectors (with and without the mirrored image added, ``--flip``). dlib:
``benchmarks/dlib_baseline.py`` (HOG detector, its 5-point predictor and ``get_face_chip``, dlib's
own network, minus the Euclidean distance). 10-fold accuracy, AUC, TAR at FAR 1e-3 per pairs
file::

    .venv/bin/python benchmarks/pretrained_accuracy.py --out work/bench/pretrained \\
        ../shared/data/cfp/pairs_FF.tsv ../shared/data/cfp/pairs_FP.tsv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_CFP = HERE.parent.parent / "shared" / "data" / "cfp"


def ours(model: str, pairs: Path, root: Path, flip: bool) -> dict:
    from facemetric.evaluate.run import EvaluateConfig, evaluate

    start = time.perf_counter()
    config = EvaluateConfig(model=model, pairs=pairs, root=root, flip=flip, progress=False)
    ver = evaluate(config).metrics["verification"]
    ver["seconds"] = time.perf_counter() - start
    return ver


def theirs(files: list[Path], root: Path, out: Path) -> dict[str, dict]:
    sys.path.insert(0, str(HERE))
    import dlib_baseline

    dlib_baseline.main([*(str(f) for f in files), "--root", str(root), "--out", str(out)])
    return {
        f.stem: json.loads((out / f.stem / "evaluation.json").read_text())["verification"]
        for f in files
    }


def row(name: str, ver: dict) -> str:
    return (
        f"| {name} | {100 * ver['accuracy']:.2f} ± {100 * ver['accuracy_std']:.2f} | "
        f"{ver['auc']:.4f} | {100 * ver['tar_at_far_1e-3']:.1f}% | "
        f"{100 * ver['faces_found']:.1f}% |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="*", type=Path)
    parser.add_argument("--root", type=Path, help="image root (default: the pairs' folder)")
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--out", type=Path, default=Path("work/bench/pretrained"))
    parser.add_argument("--no-baseline", action="store_true", help="skip dlib's own pipeline")
    args = parser.parse_args()
    files = args.pairs or [SHARED_CFP / "pairs_FF.tsv", SHARED_CFP / "pairs_FP.tsv"]
    root = args.root or files[0].parent
    results: dict[str, dict] = {}
    for f in files:
        for flip in (False, True):
            name = f"facemetric {args.model}{' + flip' if flip else ''}"
            results.setdefault(f.stem, {})[name] = ours(args.model, f, root, flip)
            print(row(name, results[f.stem][name]).replace("|", " ").strip(), f"({f.stem})")
    if not args.no_baseline:
        for stem, ver in theirs(files, root, args.out / "dlib").items():
            results[stem]["dlib's own pipeline (HOG)"] = ver
    for stem, rows in results.items():
        print(f"\n{stem}\n\n| pipeline | accuracy (10-fold) | AUC | TAR@FAR 1e-3 | faces found |")
        print("|---|---:|---:|---:|---:|")
        for name, ver in rows.items():
            print(row(name, ver))
    args.out.mkdir(parents=True, exist_ok=True)
    slim = {
        stem: {
            name: {k: v for k, v in ver.items() if isinstance(v, int | float | str)}
            for name, ver in rows.items()
        }
        for stem, rows in results.items()
    }
    (args.out / "results.json").write_text(json.dumps(slim, indent=2) + "\n")


if __name__ == "__main__":
    main()
