"""Chip formats: bytes, coding time and re-embedding accuracy of lossless PNG chips against
JPEG and WebP chips, side by side on the same faces.

Each photo of ../shared/data is detected (RetinaFace, largest face) and cut into the gallery's
200 px chip exactly as enrolment does; the chip is then stored in each format, decoded, and the
dlib model's crop cut from it as ``gallery reembed`` does. Printed per format: mean bytes per
chip, encode and decode ms, the cosine between each face's embedding and its PNG chip's
embedding, CFP verification (frontal-frontal and frontal-profile pairs: 10-fold accuracy and
TAR at FAR 1e-3) and open-set identification on celeba-wild (``benchmarks/openset.py``'s draws:
people named right and strangers named with the shipped decision and the old rule). The PNG
row is the lossless reference: its pixels are the chip's own.

Chips are kept in ``/tmp/facemetric-chips`` (``FACEMETRIC_BENCH_CACHE`` moves it) so later runs
only re-embed::

    .venv/bin/python benchmarks/chip_format.py                       # png jpeg:90/95 webp:90/95
    .venv/bin/python benchmarks/chip_format.py --formats png jpeg:95 --openset-size 70
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from facemetric.data.align import alignment_matrix, transform_points, warp_crop
from facemetric.evaluate.embed import letterbox, list_images
from facemetric.evaluate.metrics import kfold_accuracy, tar_at_far
from facemetric.gallery.records import (
    CHIP_SIZE,
    CHIP_TEMPLATE,
    cut_for_model,
    decode_chip,
    encode_chip,
)
from openset import OLD, evaluate_size
from openset_data import identities

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATA = Path(os.environ.get("FACEMETRIC_SHARED_DATA", SHARED))
CACHE = Path(os.environ.get("FACEMETRIC_BENCH_CACHE", "/tmp/facemetric-chips"))
FORMATS = ["png", "jpeg:90", "jpeg:95", "webp:90", "webp:95"]


def gallery_chips(root: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(paths, chips (N, 200, 200, 3), chip landmarks (N, 5, 2), found) of every image under
    ``root``, cut as enrolment cuts them (cached)."""
    from facemetric.data.detect import create_detector
    from facemetric.data.image import load_image

    path = CACHE / f"{root.resolve().name}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return [str(p) for p in z["paths"]], z["chips"], z["marks"], z["found"]
    detector = create_detector("retinaface")
    rels = list_images(root)
    chips = np.zeros((len(rels), CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    marks = np.zeros((len(rels), 5, 2), np.float32)
    found = np.zeros(len(rels), bool)
    start = time.perf_counter()
    for i, rel in enumerate(rels):
        image = load_image(root / rel)
        faces = sorted(detector.detect(image), key=lambda d: -d.area)
        if faces:
            points = np.asarray(faces[0].landmarks, np.float64)
            matrix = alignment_matrix(points, CHIP_SIZE, CHIP_TEMPLATE)
            chips[i] = warp_crop(image, matrix, CHIP_SIZE)
            marks[i] = transform_points(matrix, points)
            found[i] = True
        else:  # no face: the whole image, as embed_folder scores it
            chips[i] = letterbox(image, CHIP_SIZE)
    print(f"  chips of {len(rels)} images of {root} in {time.perf_counter() - start:.0f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, paths=np.asarray(rels), chips=chips, marks=marks, found=found)
    return rels, chips, marks, found


def parse_format(spec: str) -> tuple[str, int | None]:
    fmt, _, quality = spec.partition(":")
    return fmt, int(quality) if quality else None


def reembed(
    embedder: object, chips: np.ndarray, marks: np.ndarray, found: np.ndarray, spec: str
) -> tuple[np.ndarray, float, float, float]:
    """(embeddings, mean bytes, encode ms, decode ms) of ``chips`` stored as ``spec``."""
    fmt, quality = parse_format(spec)
    out, size, enc, dec = [], 0, 0.0, 0.0
    for start in range(0, len(chips), 64):
        crops = []
        for i in range(start, min(len(chips), start + 64)):
            t0 = time.perf_counter()
            data = encode_chip(chips[i], fmt, quality)
            t1 = time.perf_counter()
            chip = decode_chip(data)
            enc, dec, size = enc + t1 - t0, dec + time.perf_counter() - t1, size + len(data)
            template = CHIP_TEMPLATE if found[i] else None
            point = marks[i] if found[i] else None
            crops.append(cut_for_model(chip, template, point, embedder.spec))  # type: ignore[attr-defined]
        out.append(np.asarray(embedder.embed(np.stack(crops)), np.float32))  # type: ignore[attr-defined]
    n = len(chips)
    return np.concatenate(out), size / n, 1000 * enc / n, 1000 * dec / n


def verification(x: np.ndarray, paths: list[str], pairs: Path) -> tuple[float, float, float]:
    """(10-fold accuracy, its std, TAR at FAR 1e-3) of a CFP pairs file."""
    index = {p: i for i, p in enumerate(paths)}
    rows = [line.split("\t") for line in pairs.read_text().splitlines()[1:] if line.strip()]
    a = np.array([index[r[2]] for r in rows])
    b = np.array([index[r[3].strip()] for r in rows])
    same = np.array([r[1] == "1" for r in rows])
    folds = np.array([int(r[0]) for r in rows])
    scores = (x[a] * x[b]).sum(axis=1)
    acc = kfold_accuracy(scores, same, folds)
    return acc.mean, acc.std, tar_at_far(scores, same, 1e-3).tar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", nargs="+", default=FORMATS, help="FORMAT[:QUALITY] ...")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--openset-size", type=int, default=70, help="people enrolled")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--model", default="dlib")
    args = parser.parse_args()
    from facemetric.models.loading import load_embedder
    from facemetric.recognize.decision import DecisionSettings

    embedder = load_embedder(args.model)
    sets = {"cfp": args.data / "cfp", "celeba-wild": args.data / "celeba-wild"}
    chips = {name: gallery_chips(root) for name, root in sets.items()}
    settings = DecisionSettings()
    results: dict[str, dict[str, object]] = {}
    base: dict[str, np.ndarray] = {}
    for spec in args.formats:
        start = time.perf_counter()
        row: dict[str, object] = {}
        sizes, encs, decs = [], [], []
        for name, (paths, c, m, f) in chips.items():
            x, size, enc, dec = reembed(embedder, c, m, f, spec)
            sizes.append(size * len(c))
            encs.append(enc * len(c))
            decs.append(dec * len(c))
            if spec == args.formats[0]:
                base[name] = x
            cos = (x * base[name]).sum(axis=1)
            row[f"{name} cos"] = (float(cos.mean()), float(cos.min()))
            if name == "cfp":
                for pairs in ("FF", "FP"):
                    row[pairs] = verification(x, paths, sets["cfp"] / f"pairs_{pairs}.tsv")
            else:
                ids = identities_of(paths)
                table: dict[str, list[tuple[float, float]]] = {}
                for trial in range(args.trials):
                    rates = evaluate_size(x, ids, args.openset_size, trial, settings)
                    for rule, r in rates.items():
                        key = "decision" if rule.startswith("decision") else rule
                        table.setdefault(key, []).append(r)
                row["decision"] = tuple(np.mean(table["decision"], axis=0))
                row["old"] = tuple(np.mean(table[f"best >= {OLD} (old rule)"], axis=0))
        total = sum(len(v[0]) for v in chips.values())
        row["bytes"] = sum(sizes) / total
        row["enc"], row["dec"] = sum(encs) / total, sum(decs) / total
        results[spec] = row
        print(f"  {spec}: {time.perf_counter() - start:.0f} s", flush=True)
    report(results, args.formats[0], args.openset_size, args.trials)


def identities_of(paths: list[str]) -> np.ndarray:
    class _Paths:
        def __init__(self, p: list[str]) -> None:
            self.paths = p

    return identities(_Paths(paths))  # type: ignore[arg-type]


def report(results: dict[str, dict[str, object]], ref: str, size: int, trials: int) -> None:
    print(
        f"\nchips re-embedded with the dlib model; {ref} is the reference; CFP 10-fold accuracy "
        f"(± std over folds) and TAR@FAR 1e-3; open set: {size} people of celeba-wild enrolled, "
        f"3 photos each, as many strangers, mean of {trials} draws (named right / strangers "
        "named)"
    )
    head = (
        f"{'format':<9}{'bytes':>8}{'enc ms':>8}{'dec ms':>8}{'cos min':>9}"
        f"{'FF acc':>15}{'FF TAR':>8}{'FP acc':>15}{'FP TAR':>8}"
        f"{'decision':>15}{'old rule':>15}"
    )
    print(head)
    for spec, r in results.items():
        ff, fp = r["FF"], r["FP"]
        dec, old = r["decision"], r["old"]
        cos = min(r["cfp cos"][1], r["celeba-wild cos"][1])  # type: ignore[index]
        print(
            f"{spec:<9}{r['bytes']:>8,.0f}{r['enc']:>8.2f}{r['dec']:>8.2f}{cos:>9.4f}"
            f"{100 * ff[0]:>8.2f} ± {100 * ff[1]:.2f}{100 * ff[2]:>7.1f}%"  # type: ignore[index]
            f"{100 * fp[0]:>8.2f} ± {100 * fp[1]:.2f}{100 * fp[2]:>7.1f}%"  # type: ignore[index]
            f"{100 * dec[0]:>7.1f}%/{100 * dec[1]:.1f}%"  # type: ignore[index]
            f"{100 * old[0]:>7.1f}%/{100 * old[1]:.1f}%"  # type: ignore[index]
        )


if __name__ == "__main__":
    main()
