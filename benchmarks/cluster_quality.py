"""Clustering quality: `facemetric cluster`'s faces and methods beside dlib's own Chinese whispers.

Every face of every photo is clustered with no gallery. The truth of a face: the photo's person
(its folder) for the largest face of the photo, a stranger of its own for every other face (a
bystander merged with someone is a wrong merge). Figures: pairwise precision / recall / F and
BCubed precision / recall / F, groups, share of faces left unsorted, time per 1,000 faces.

- facemetric: RetinaFace + the dlib ResNet port (exactly `facemetric cluster`'s pipeline and
  cache), each method of `facemetric.cluster.core` at a threshold chosen on a *tuning* set of
  other people (CFP frontal photos): the highest BCubed F whose pairwise precision reaches
  --tune-precision there. The test set's figures come from thresholds never fitted to it.
- dlib: dlib's own landmarks (5-point shape predictor inside facemetric's boxes; `--dlib-boxes hog`:
  face_recognition's whole pipeline with its HOG detector, upsample 1), 150 px chips, its ResNet
  descriptors, and `dlib.chinese_whispers_clustering` at 0.5 (dlib's example's value), in the
  same run.

Embeddings are cached (per photo, path+size+mtime) in --cache (default /tmp), so a rerun only
clusters::

    .venv/bin/python benchmarks/cluster_quality.py            # celeba-wild, tuned on CFP
    .venv/bin/python benchmarks/cluster_quality.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
THRESHOLDS = {
    "average": np.round(np.arange(0.900, 0.9651, 0.005), 3),
    "complete": np.round(np.arange(0.880, 0.9651, 0.005), 3),
    "chinese_whispers": np.round(np.arange(0.900, 0.9751, 0.005), 3),
    "hdbscan": np.round(np.arange(0.880, 0.9651, 0.01), 3),
}


def photo_sets(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """(tuning photos, test photos): CFP frontal of --tune-people people; celeba-wild."""
    cfp = sorted(p for p in (DATA / "cfp").iterdir() if p.is_dir())[: args.tune_people]
    tune = [f for d in cfp for f in sorted(d.glob("frontal_*.jpg"))]
    wild = sorted(p for p in (DATA / "celeba-wild").iterdir() if p.is_dir())
    if args.test_people:
        wild = wild[: args.test_people]
    test = [f for d in wild for f in sorted(d.iterdir()) if f.is_file()]
    return tune, test


# ---- faces --------------------------------------------------------------------------------------
def fm_pipeline():  # -> FacePipeline
    from facemetric.cluster.library import FacePipeline
    from facemetric.models import load_embedder

    return FacePipeline(load_embedder("dlib"), "retinaface")


def facemetric_faces(photos: list[Path], cache_dir: Path) -> tuple[list, dict]:
    from facemetric.cluster.cache import EmbeddingCache
    from facemetric.cluster.library import embed_photos

    pipeline = fm_pipeline()
    with EmbeddingCache(cache_dir / "facemetric.sqlite", pipeline.model_key) as cache:
        found, report = embed_photos(pipeline, photos, cache, progress=True)
    return found, {"embedded": report.embedded, "seconds": report.seconds}


class DlibPipeline:
    """dlib's own alignment and network: its 5-point shape predictor inside a face box, its
    150 px chip (padding 0.25) and ResNet descriptor. Boxes come from dlib's HOG detector
    (``hog``: face_recognition's pipeline, upsample 1) or are the ones facemetric found
    (``same``: both sides cluster the very same faces)."""

    def __init__(self, boxes: str = "same") -> None:
        import dlib

        from facemetric.models.pretrained.dlib import locate

        folder = locate().parent
        self.dlib = dlib
        self.boxes = boxes
        self.model_key = f"dlib-{boxes}-sp5-resnet-v1"
        self.hog = dlib.get_frontal_face_detector() if boxes == "hog" else None
        self.sp = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(
            str(folder / "dlib_face_recognition_resnet_model_v1.dat")
        )

    def faces(self, image: np.ndarray, given: list | None = None):  # -> PhotoFaces
        from facemetric.cluster.cache import PhotoFaces

        d = self.dlib
        if self.hog is not None:
            rects = sorted(self.hog(image, 1), key=lambda r: -r.width() * r.height())
        else:
            rects = [d.rectangle(*(round(v) for v in b)) for b in given or []]
        if not rects:
            return PhotoFaces([], [], np.zeros((0, 0), np.float32))
        shapes = d.full_object_detections()
        for r in rects:
            shapes.append(self.sp(image, r))
        desc = np.array(self.net.compute_face_descriptor(image, shapes), np.float32)
        boxes = [(float(r.left()), float(r.top()), float(r.right()), float(r.bottom()))
                 for r in rects]  # fmt: skip
        return PhotoFaces(boxes, [1.0] * len(rects), desc)


def dlib_faces(fm_found: list, cache_dir: Path, boxes: str) -> tuple[list, dict]:
    """dlib's descriptors of the photos facemetric read (on its boxes, or HOG's)."""
    from tqdm import tqdm

    from facemetric.cluster.cache import EmbeddingCache
    from facemetric.data.image import load_image

    pipeline = DlibPipeline(boxes)
    out, embedded, t0 = [], 0, time.perf_counter()
    with EmbeddingCache(cache_dir / "dlib.sqlite", pipeline.model_key) as cache:
        for photo, f in tqdm(fm_found, desc="dlib", unit="photo", file=sys.stderr):
            found = cache.get(photo)
            if found is None:
                found = pipeline.faces(load_image(photo), f.boxes)
                cache.put(photo, found)
                embedded += 1
            out.append((photo, found))
    return out, {"embedded": embedded, "seconds": time.perf_counter() - t0}


def seconds_per_1000_faces(pipeline, photos: list[Path], given: dict | None = None) -> float:
    """Read, find and embed ``photos`` afresh (no cache): seconds per 1,000 faces."""
    from facemetric.data.image import load_image

    pipeline.faces(load_image(photos[0]))  # models loaded and warm before the clock starts
    faces, t0 = 0, time.perf_counter()
    for photo in photos:
        image = load_image(photo)
        found = pipeline.faces(image) if given is None else pipeline.faces(image, given[photo])
        faces += len(found.boxes)
    return 1000.0 * (time.perf_counter() - t0) / max(1, faces)


def flatten(found: list) -> tuple[np.ndarray, np.ndarray, int]:
    """(embeddings, truth, labelled faces): largest face = the folder's person, others alone."""
    emb, truth = [], []
    names: dict[str, int] = {}
    stranger = 1_000_000
    for photo, f in found:
        person = names.setdefault(photo.parent.name, len(names))
        for i in range(len(f.boxes)):
            emb.append(f.embeddings[i])
            if i == 0:
                truth.append(person)
            else:
                truth.append(stranger)
                stranger += 1
    x = np.asarray(emb, np.float32)
    return x, np.asarray(truth, np.int64), sum(1 for _, f in found if f.boxes)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# ---- clustering -------------------------------------------------------------------------------
def score(x: np.ndarray, truth: np.ndarray, method: str, t: float) -> tuple[dict, float]:
    from facemetric.cluster.core import cluster_embeddings
    from facemetric.cluster.metrics import cluster_scores

    t0 = time.perf_counter()
    labels = cluster_embeddings(x, threshold=float(t), method=method)
    secs = time.perf_counter() - t0
    return cluster_scores(truth, labels).to_dict(), secs


def tune(x: np.ndarray, truth: np.ndarray, target: float) -> dict[str, dict]:
    """Per method: the threshold with the best BCubed F among those reaching ``target``
    pairwise precision on the tuning set."""
    best: dict[str, dict] = {}
    for method, grid in THRESHOLDS.items():
        rows = []
        for t in grid:
            s, _ = score(x, truth, method, t)
            rows.append((float(t), s))
        ok = [r for r in rows if r[1]["pairwise_precision"] >= target] or [
            max(rows, key=lambda r: r[1]["pairwise_precision"])
        ]
        t, s = max(ok, key=lambda r: r[1]["bcubed_f"])
        best[method] = {"threshold": t, "tuning": s}
        print(f"tune {method:16s} t={t:.2f} P={s['pairwise_precision']:.4f} "
              f"F={s['bcubed_f']:.4f}", file=sys.stderr)  # fmt: skip
    return best


def oracle(rows: list[tuple[float, dict]], target: float) -> str:
    """The best BCubed F on the test set itself among thresholds reaching ``target`` pairwise
    precision there (an upper bound that sees the answers, the same for both sides)."""
    ok = [r for r in rows if r[1]["pairwise_precision"] >= target]
    if not ok:
        return f"no threshold reaches pairwise precision {target}"
    t, s = max(ok, key=lambda r: r[1]["bcubed_f"])
    return (f"t={t:.3f}: pair P {s['pairwise_precision']:.4f} R {s['pairwise_recall']:.4f}, "
            f"B3 F {s['bcubed_f']:.4f}")  # fmt: skip


def dlib_cw(desc: np.ndarray, truth: np.ndarray, t: float = 0.5) -> tuple[dict, float]:
    import dlib

    from facemetric.cluster.core import relabel
    from facemetric.cluster.metrics import cluster_scores

    vecs = [dlib.vector(d.astype(np.float64).tolist()) for d in desc]
    t0 = time.perf_counter()
    labels = np.asarray(dlib.chinese_whispers_clustering(vecs, t), np.int64)
    secs = time.perf_counter() - t0
    return cluster_scores(truth, relabel(labels, 2)).to_dict(), secs


def row(name: str, s: dict, n: int, t_embed: float | None, t_cluster: float) -> str:
    emb = "   n/a" if t_embed is None else f"{t_embed:6.1f}"
    return (
        f"| {name:34s} | {n:5d} | {s['pairwise_precision']:.4f} | {s['pairwise_recall']:.4f} | "
        f"{s['bcubed_precision']:.4f} | {s['bcubed_recall']:.4f} | {s['bcubed_f']:.4f} | "
        f"{s['groups']:4d} | {s['unsorted']:.3f} | {emb} | {1000 * t_cluster / max(1, n):6.3f} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/facemetric-cluster-bench"))
    ap.add_argument("--tune-people", type=int, default=120, help="CFP people to tune on")
    ap.add_argument("--test-people", type=int, default=0, help="celeba-wild people (0 = all)")
    ap.add_argument("--tune-precision", type=float, default=0.99)
    ap.add_argument("--target", type=float, default=0.98, help="the goal's pairwise precision")
    ap.add_argument(
        "--time-photos", type=int, default=100, help="photos re-read to time both pipelines"
    )
    ap.add_argument("--embed-only", action="store_true", help="fill the caches and stop")
    ap.add_argument("--skip-dlib", action="store_true")
    ap.add_argument(
        "--dlib-boxes",
        choices=("same", "hog"),
        default="same",
        help="dlib's faces: facemetric's boxes (same faces; default) or dlib's HOG detector "
        "(face_recognition's whole pipeline; slow: ~0.5-2 s a photo on this machine)",
    )
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    args = ap.parse_args(argv)
    if not (DATA / "celeba-wild").is_dir() or not (DATA / "cfp").is_dir():
        sys.exit(f"{DATA}: needs celeba-wild and cfp (../shared/data)")
    args.cache.mkdir(parents=True, exist_ok=True)
    tune_photos, test_photos = photo_sets(args)
    print(f"tuning: {len(tune_photos)} CFP frontal photos of {args.tune_people} people; test: "
          f"{len(test_photos)} celeba-wild photos; cpus {os.cpu_count()} (shared, loaded)",
          file=sys.stderr)  # fmt: skip
    fm_test, _ = facemetric_faces(test_photos, args.cache)
    dl_test, _ = (
        (None, None) if args.skip_dlib else dlib_faces(fm_test, args.cache, args.dlib_boxes)
    )
    fm_tune, _ = facemetric_faces(tune_photos, args.cache)
    if args.embed_only:
        return 0

    x_tune, y_tune, _ = flatten(fm_tune)
    best = tune(x_tune, y_tune, args.tune_precision)
    x, y, labelled = flatten(fm_test)
    sample = [p for p, _ in fm_test][:: max(1, len(fm_test) // args.time_photos)]
    t_fm = seconds_per_1000_faces(fm_pipeline(), sample)
    people = len({p.parent.name for p, _ in fm_test})
    out: dict = {"test_photos": len(test_photos), "people": people, "methods": {}}
    lines = [
        f"celeba-wild: {len(test_photos)} photos of {people} people; facemetric found {len(x)} "
        f"faces ({labelled} photos with a face)",
        "| method (threshold) | faces | pair P | pair R | B3 P | B3 R | B3 F | groups | "
        "unsorted | find+embed s/1k faces | cluster s/1k faces |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, b in best.items():
        s, secs = score(x, y, method, b["threshold"])
        out["methods"][method] = {**b, "test": s, "cluster_seconds": secs}
        lines.append(row(f"facemetric {method} ({b['threshold']:.3f})", s, len(x), t_fm, secs))
    if dl_test is not None:
        xd, yd, dl_labelled = flatten(dl_test)
        # timed as face_recognition runs it, HOG detector included, on the same photos
        t_dl = seconds_per_1000_faces(DlibPipeline("hog"), sample)
        s, secs = dlib_cw(xd, yd)
        out["dlib"] = {"test": s, "faces": len(xd), "cluster_seconds": secs}
        lines.append(
            row(f"dlib chinese_whispers (0.5, {args.dlib_boxes} boxes)", s, len(xd), t_dl, secs)
        )
        if args.dlib_boxes == "hog":
            lines.insert(1, f"dlib HOG found {len(xd)} faces ({dl_labelled} photos with a face)")
    lines.append("")
    lines.append(f"Oracle (thresholds chosen on the test set itself, pairwise P >= "
                 f"{args.target}):")  # fmt: skip
    for method in ("average", "chinese_whispers"):
        sweep = [(float(t), score(x, y, method, t)[0]) for t in THRESHOLDS[method]]
        out["methods"][method]["oracle"] = oracle(sweep, args.target)
        lines.append(f"  facemetric {method:16s} {oracle(sweep, args.target)}")
    if dl_test is not None:
        sweep = [(float(t), dlib_cw(xd, yd, t)[0]) for t in np.arange(0.30, 0.551, 0.025)]
        out["dlib"]["oracle"] = oracle(sweep, args.target)
        lines.append(f"  dlib chinese_whispers       {oracle(sweep, args.target)}")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
