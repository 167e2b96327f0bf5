"""Embeddings of ../shared/data sets for the open-set and corrections benchmarks, computed once.

Each set is embedded the way the product does (RetinaFace, the model's own chips, largest face)
by ``embed_folder`` and kept in ``/tmp/facemetric-openset/<set>.npz`` (``FACEMETRIC_BENCH_CACHE``
moves it), so later runs take seconds. Run it directly to fill the cache::

    .venv/bin/python benchmarks/openset_data.py ../shared/data/celeba-wild \\
        ../shared/data/celeba-crops
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from facemetric.evaluate.embed import EmbeddingSet, embed_folder

CACHE = Path(os.environ.get("FACEMETRIC_BENCH_CACHE", "/tmp/facemetric-openset"))


def cached_embeddings(root: str | Path, model: str = "dlib") -> EmbeddingSet:
    """The embeddings of every image under ``root`` by ``model`` (from the cache when there)."""
    root = Path(root)
    path = CACHE / f"{root.resolve().name}-{model}.npz"
    if path.exists():
        return EmbeddingSet.load(path)
    start = time.perf_counter()
    es = embed_folder(model, root, progress=True)
    es.save(path)
    print(
        f"embedded {len(es)} images of {root} in {time.perf_counter() - start:.0f} s -> {path}",
        file=sys.stderr,
    )
    return es


def identities(es: EmbeddingSet) -> np.ndarray:
    """The person (first path part) of each embedded image."""
    return np.array([p.split("/", 1)[0] for p in es.paths])


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        found = cached_embeddings(arg)
        print(f"{arg}: {len(found)} images, faces found in {found.found.mean():.1%}")
