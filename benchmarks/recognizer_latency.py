"""Per-frame latency of the whole Recognizer against the face_recognition pipeline.

One 640x480 JPEG frame with one face (the scikit-image astronaut photo, or ``--photo``):
decode, detect (RetinaFace), align, embed (``--model``: the default pretrained dlib network, or
``resnet50`` with random weights: latency does not depend on them), search a 10,000-face
gallery; p50 and p95 over ``--frames`` frames. The baseline does the same job the way
``face_recognition`` does it (dlib HOG detector, 5-point shape predictor, 128-d ResNet
descriptor, numpy distances to 10,000 faces) with dlib itself (``dlib-bin``, a test extra,
never a run-time dependency), in a subprocess of the same run. Our pipeline is measured with the
detector at 640 px (photos) and 320 px (the live stream's default), with the median of every
stage on its own, and the same stages timed inside whole frames (what a frame really pays)::

    .venv/bin/python benchmarks/recognizer_latency.py [--frames 50] [--engine torch|onnx]
        [--model dlib|resnet50|dlib+faceres|...] [--detect-sizes 640,320] [--no-baseline]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

DLIB_SCRIPT = r"""
import sys, time, numpy as np, dlib
from pathlib import Path
from PIL import Image
import io
data = open(sys.argv[1], "rb").read(); frames = int(sys.argv[2]); n = int(sys.argv[3])
models = Path(sys.argv[4])
hog = dlib.get_frontal_face_detector()
pose = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
enc = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
gallery = np.random.default_rng(0).normal(size=(n, 128)).astype(np.float64)
times = []
for i in range(frames + 3):
    t = time.perf_counter()
    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    boxes = hog(img, 1)  # face_recognition.face_locations default: 1 upsample
    descs = [np.array(enc.compute_face_descriptor(img, pose(img, b), 1)) for b in boxes]
    for d in descs:
        np.argmin(np.linalg.norm(gallery - d, axis=1))
    if i >= 3:
        times.append(time.perf_counter() - t)
print(len(boxes), *times)
"""


def frame_jpeg(photo: Path | None) -> bytes:
    if photo is None:
        from skimage import data

        img = Image.fromarray(data.astronaut())
    else:
        img = Image.open(photo).convert("RGB")
    img.thumbnail((640, 480))
    canvas = Image.new("RGB", (640, 480), (90, 90, 90))
    canvas.paste(img, ((640 - img.width) // 2, (480 - img.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


class RandomEmbedder:
    """Fills the gallery with random unit vectors under the real model's key."""

    def __init__(self, key: str, dim: int, spec: object) -> None:
        self.model_key, self.dim, self.spec = key, dim, spec
        self.rng = np.random.default_rng(0)

    def embed(self, faces: np.ndarray, flip: bool = False) -> np.ndarray:
        x = self.rng.normal(size=(len(faces), self.dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def build_recognizer(n: int, engine: str, model: str, tmp: Path) -> object:
    import torch

    from facemetric.data.detect import create_detector
    from facemetric.gallery.store import GalleryStore, model_key
    from facemetric.models import ModelSpec, build_model, load_embedder, save_checkpoint
    from facemetric.recognize.recognizer import Recognizer

    if model == "resnet50":
        torch.manual_seed(0)
        ckpt = tmp / "r50.pt"
        save_checkpoint(ckpt, build_model(ModelSpec(backbone="resnet50")).eval())
        if engine == "onnx":
            from facemetric.models.export import export_onnx

            export_onnx(ckpt)
    else:
        from facemetric.models import resolve_model_path

        ckpt = resolve_model_path(model)  # a pretrained model comes with its ONNX export
    embedder = load_embedder(ckpt, engine=engine)  # type: ignore[arg-type]
    store = GalleryStore(tmp / "g.db")
    fake = RandomEmbedder(model_key(embedder), embedder.spec.embedding_dim, embedder.spec)
    rng = np.random.default_rng(1)
    for i in range(n // 500):
        crops = rng.integers(0, 255, (500, 16, 16, 3), dtype=np.uint8)  # distinct: no duplicates
        store.add_faces(f"person{i:03d}", list(crops), fake)  # type: ignore[arg-type]
    return Recognizer(embedder, store, create_detector("retinaface"))


def facemetric_times(
    rec: object, data: bytes, frames: int, detect_size: int
) -> tuple[list[float], dict[str, float]]:
    """Whole-frame times, and the median of each stage measured on its own."""
    from facemetric.data.image import decode_image_bytes

    times = []
    for i in range(frames + 3):
        t = time.perf_counter()
        matches = rec.recognize(decode_image_bytes(data, "frame"), detect_size=detect_size)  # type: ignore[attr-defined]
        if i >= 3:  # warm-up: first index build, lazy initialisation
            times.append(time.perf_counter() - t)
    assert len(matches) == 1, f"expected one face, found {len(matches)}"
    in_frame = stages_in_frames(rec, data, frames, detect_size)
    image = decode_image_bytes(data, "frame")
    faces = rec.detect(image, detect_size)  # type: ignore[attr-defined]
    crops = np.stack([f.crop for f in faces])
    emb = rec.embed(crops)  # type: ignore[attr-defined]
    stages = {
        "decode": lambda: decode_image_bytes(data, "frame"),
        "detect+align": lambda: rec.detect(image, detect_size),  # type: ignore[attr-defined]
        "embed": lambda: rec.embed(crops),  # type: ignore[attr-defined]
        "search": lambda: rec.match(emb),  # type: ignore[attr-defined]
    }
    medians = {}
    for name, step in stages.items():
        ts = []
        for _ in range(max(5, frames // 2)):
            t = time.perf_counter()
            step()
            ts.append(time.perf_counter() - t)
        medians[name] = float(np.median(ts)) * 1000
    medians.update({f"{k} in frame": v for k, v in in_frame.items()})
    return times, medians


def stages_in_frames(rec: object, data: bytes, frames: int, detect_size: int) -> dict[str, float]:
    """The same stages timed in sequence, as a frame runs them (caches and thread pools in the
    state one frame leaves them for the next): where a whole frame's time goes."""
    from facemetric.data.image import decode_image_bytes

    parts: dict[str, list[float]] = {"decode": [], "detect+align": [], "embed": [], "search": []}
    for _ in range(frames):
        t0 = time.perf_counter()
        image = decode_image_bytes(data, "frame")
        t1 = time.perf_counter()
        faces = rec.detect(image, detect_size)  # type: ignore[attr-defined]
        t2 = time.perf_counter()
        emb = rec.embed(np.stack([f.crop for f in faces]))  # type: ignore[attr-defined]
        t3 = time.perf_counter()
        rec.match(emb)  # type: ignore[attr-defined]
        t4 = time.perf_counter()
        for name, a, b in (
            ("decode", t0, t1),
            ("detect+align", t1, t2),
            ("embed", t2, t3),
            ("search", t3, t4),
        ):
            parts[name].append(b - a)
    return {k: float(np.median(v)) * 1000 for k, v in parts.items()}


def stats(times: list[float]) -> tuple[float, float]:
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--gallery", type=int, default=10_000)
    ap.add_argument("--engine", default="onnx", choices=("torch", "onnx"))
    ap.add_argument("--model", default="dlib", help="dlib (pretrained, default) or resnet50")
    ap.add_argument("--photo", type=Path)
    ap.add_argument(
        "--detect-sizes",
        default="640,320",
        help="detector working sizes to measure (640: photos; 320: the live stream default)",
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the face_recognition run")
    args = ap.parse_args()
    data = frame_jpeg(args.photo)
    with tempfile.TemporaryDirectory() as tmp:
        rec = build_recognizer(args.gallery, args.engine, args.model, Path(tmp))
        label = "ResNet50 112px" if args.model == "resnet50" else f"{args.model} model"
        best = None
        for size in (int(v) for v in args.detect_sizes.split(",")):
            times, stages = facemetric_times(rec, data, args.frames, size)
            p50, p95 = stats(times)
            best = p50 if best is None else min(best, p50)
            parts = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
            print(
                f"facemetric ({args.engine}, {label}, RetinaFace at {size} px, "
                f"{args.gallery} faces): p50 {p50:.1f} ms  p95 {p95:.1f} ms  "
                f"[stage medians ms: {parts}]",
                flush=True,
            )
        assert best is not None
        ours = (best, 0.0)
        import importlib.util

        if args.no_baseline:
            return
        if importlib.util.find_spec("dlib") is None:
            print("face_recognition baseline skipped: dlib is not installed (pip install dlib-bin)")
            return
        from facemetric.models.pretrained.dlib import locate

        photo = Path(tmp) / "frame.jpg"
        photo.write_bytes(data)
        models = str(locate().parent)
        argv = [sys.executable, "-c", DLIB_SCRIPT, str(photo), str(args.frames)]
        done = subprocess.run(
            [*argv, str(args.gallery), models],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(f"face_recognition baseline failed: {done.stderr.strip()[-500:]}")
            return
        found, *rest = done.stdout.split()
        base = stats([float(x) for x in rest])
        print(
            f"face_recognition pipeline (dlib HOG + 128-d ResNet, {found} face): "
            f"p50 {base[0]:.1f} ms  p95 {base[1]:.1f} ms"
        )
        print(
            f"ratio p50 baseline/facemetric (fastest setting): {base[0] / ours[0]:.2f}x  "
            f"(goal: >= 3x; "
            f"goal p50 <= 30 ms: {'met' if ours[0] <= 30 else 'not met'})"
        )


if __name__ == "__main__":
    main()
