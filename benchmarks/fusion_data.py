"""Embeddings of the shared sets by dlib, faceres and their composites, computed once.

Each photo is detected and aligned by ``embed_folder`` (the product's pipeline) twice: on dlib's
own chips (dlib, and ``dlib:flip`` from the same crops mirrored) and on the composites' crops
(gallery template, 224 px): there the ``dlib+faceres:flip`` model's own network gives each
part's embedding of the crop and of its mirror image, from which ``faceres``,
``faceres:flip``, ``dlib+faceres`` and ``dlib+faceres:flip`` are put together exactly as the
composite's forward does (``CompositeNet.part_embedding``; checked against the product's
embedder in tests/test_composite.py). One detection per photo and crop kind, four network
passes per face instead of eight. Saved for ``benchmarks/openset.py --models`` as
``$FACEMETRIC_BENCH_CACHE/<set>-<model>.npz``; also prints each part's impostor statistics
(the fusion's z-normalisation) and the per-pair threshold at FAR 1e-3 of every model::

    .venv/bin/python benchmarks/fusion_data.py ../shared/data/celeba-wild ../shared/data/cfp
    .venv/bin/python benchmarks/fusion_data.py --per-person 5 ../shared/data/celeba-crops
    .venv/bin/python benchmarks/fusion_data.py --no-flip ../shared/data/cfp

(celeba-crops, 16,403 photos, cut to each person's first 5 photos, 4,447 photos: all of it would
take hours on this shared machine; the open-set benchmark then draws from that subset for every
model alike.)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.evaluate import metrics as M
from facemetric.evaluate.embed import EmbeddingSet, embed_folder
from facemetric.models.inference import l2_normalise
from facemetric.models.loading import load_embedder
from openset_data import CACHE, identities

MODELS = ("dlib", "dlib:flip", "faceres", "faceres:flip", "dlib+faceres", "dlib+faceres:flip")


class PairEmbedder:
    """An embedder giving [plain | mirrored] embeddings side by side (for the cache only)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.threshold = inner.threshold
        self.meta = inner.meta
        self.checkpoint_path = Path(str(inner.checkpoint_path) + "#pair")

    def embed(self, faces: np.ndarray, flip: bool = False) -> np.ndarray:
        plain = self.inner.embed(faces)
        mirrored = self.inner.embed(np.ascontiguousarray(faces[:, :, ::-1]))
        return np.concatenate([plain, mirrored], axis=1)


class PartsEmbedder:
    """The composite's parts: [dlib, dlib mirrored, faceres, faceres mirrored], each unit.

    The product's ``dlib+faceres`` embedder (ONNX Runtime) on the crop and on its mirror
    image: its output is [sqrt(w1) dlib, sqrt(w2) faceres], so dividing gives the parts."""

    def __init__(self, name: str = "dlib+faceres") -> None:
        self.inner = load_embedder(name)
        self.spec = self.inner.spec
        self.threshold = self.inner.threshold
        self.meta = self.inner.meta
        self.checkpoint_path = Path(str(self.inner.checkpoint_path) + "#parts")
        self.weights = [float(p["weight"]) for p in self.spec.extra["parts"]]

    def embed(self, faces: np.ndarray, flip: bool = False) -> np.ndarray:
        a, b = np.sqrt(self.weights[0]), np.sqrt(self.weights[1])
        plain = self.inner.embed(faces)
        mirrored = self.inner.embed(np.ascontiguousarray(faces[:, :, ::-1]))
        return np.concatenate(
            [plain[:, :128] / a, mirrored[:, :128] / a, plain[:, 128:] / b, mirrored[:, 128:] / b],
            axis=1,
        )


def derive(parts: np.ndarray, weights: list[float]) -> dict[str, np.ndarray]:
    """The four faceres/composite embeddings from the parts' (plain, mirrored) embeddings."""
    d, dm, f, fm = parts[:, :128], parts[:, 128:256], parts[:, 256:1280], parts[:, 1280:]
    df, ff = l2_normalise(d + dm), l2_normalise(f + fm)
    a, b = np.sqrt(weights[0]), np.sqrt(weights[1])
    return {
        "faceres": f,
        "faceres:flip": ff,
        "dlib+faceres": np.concatenate([a * d, b * f], axis=1),
        "dlib+faceres:flip": np.concatenate([a * df, b * ff], axis=1),
    }


def first_photos(root: Path, per_person: int) -> list[str]:
    """The first ``per_person`` images of each person (sorted), as paths under ``root``."""
    from facemetric.evaluate.embed import list_images

    out: dict[str, list[str]] = {}
    for rel in list_images(root):
        out.setdefault(rel.split("/", 1)[0], []).append(rel)
    return [r for rels in out.values() for r in sorted(rels)[:per_person]]


def plain_sets(root: Path) -> dict[str, EmbeddingSet]:
    """Without mirror images (half the work): dlib, faceres and dlib+faceres only."""
    name = root.resolve().name
    out: dict[str, EmbeddingSet] = {}
    for model in ("dlib", "dlib+faceres"):
        path = CACHE / f"{name}-{model}.npz"
        if path.exists():
            out[model] = EmbeddingSet.load(path)
            continue
        out[model] = embed_folder(load_embedder(model), root, progress=True)
        out[model].save(path)
    fused = out["dlib+faceres"]
    w = [float(p["weight"]) for p in load_embedder("dlib+faceres").spec.extra["parts"]]
    out["faceres"] = EmbeddingSet(
        fused.paths, (fused.embeddings[:, 128:] / np.sqrt(w[1])).astype(np.float32), fused.found
    )
    out["faceres"].save(CACHE / f"{name}-faceres.npz")
    return out


def model_sets(root: Path, per_person: int | None = None) -> dict[str, EmbeddingSet]:
    """Every model's EmbeddingSet of ``root`` (from the cache when there); ``per_person``: only
    each person's first photos (a smaller set, the same for every model)."""
    subset = first_photos(root, per_person) if per_person else None
    name = root.resolve().name
    paths = {m: CACHE / f"{name}-{m}.npz" for m in MODELS}
    if all(p.exists() for p in paths.values()):
        return {m: EmbeddingSet.load(p) for m, p in paths.items()}
    CACHE.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    out = {m: EmbeddingSet.load(paths[m]) for m in ("dlib", "dlib:flip") if paths[m].exists()}
    if len(out) < 2:
        pair = embed_folder(PairEmbedder(load_embedder("dlib")), root, paths=subset, progress=True)
        out = {
            "dlib": EmbeddingSet(pair.paths, pair.embeddings[:, :128], pair.found),
            "dlib:flip": EmbeddingSet(
                pair.paths,
                l2_normalise(pair.embeddings[:, :128] + pair.embeddings[:, 128:]),
                pair.found,
            ),
        }
        for m, es in out.items():
            es.save(paths[m])
    parts_emb = PartsEmbedder()
    parts = embed_folder(parts_emb, root, paths=subset, progress=True)
    for m, v in derive(parts.embeddings, parts_emb.weights).items():
        out[m] = EmbeddingSet(parts.paths, v.astype(np.float32), parts.found)
        out[m].save(paths[m])
    print(f"{root}: embedded in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return out


def pair_figures(es: EmbeddingSet, far: float = 1e-3) -> dict[str, float]:
    labels = identities(es)
    sims = es.embeddings @ es.embeddings.T
    i, j = np.triu_indices(len(labels), k=1)
    scores, same = sims[i, j].astype(np.float64), labels[i] == labels[j]
    imp = scores[~same]
    t = float(M.tar_at_far(scores, same, far).threshold)
    return {
        "threshold": float(t),
        "tar": float((scores[same] >= t).mean()),
        "far": float((imp >= t).mean()),
        "impostor_mean": float(imp.mean()),
        "impostor_std": float(imp.std()),
        "genuine_pairs": int(same.sum()),
        "impostor_pairs": int((~same).sum()),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    per_person = None
    if args[:1] == ["--per-person"]:
        per_person, args = int(args[1]), args[2:]
    plain = args[:1] == ["--no-flip"]
    args = args[1:] if plain else args
    for arg in args:
        sets = plain_sets(Path(arg)) if plain else model_sets(Path(arg), per_person)
        if Path(arg).name != "celeba-wild":
            continue
        for model, es in sets.items():
            f = pair_figures(es)
            print(
                f"{arg} {model}: threshold {f['threshold']:.4f} (FAR {f['far']:.4f}), TAR "
                f"{f['tar']:.4f}; impostors {f['impostor_mean']:.3f} +- {f['impostor_std']:.3f} "
                f"({f['genuine_pairs']} genuine, {f['impostor_pairs']} impostor pairs)"
            )
