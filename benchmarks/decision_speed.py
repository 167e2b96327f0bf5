"""What the open-set decision costs per frame: the Recognizer's matching before (search + best
face per person + one threshold) and now (``Recognizer.decide``: person scores, negatives,
calibrated threshold, margin), on one process, the same gallery of random 128-d faces::

    PYTHONPATH=src .venv/bin/python benchmarks/decision_speed.py --people 500
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.gallery.store import GalleryStore
from facemetric.models import ModelSpec
from facemetric.recognize import Recognizer, per_person_top_k


class TableEmbedder:
    """Stands in for a model: the gallery's vectors are given, queries are embedded already."""

    def __init__(self, dim: int) -> None:
        self.spec = ModelSpec(backbone="tiny", embedding_dim=dim, input_size=16)
        self.threshold = 0.9301
        self.meta: dict[str, Any] = {}
        self.checkpoint_path = Path("<table>")
        self.model_key = "decision-speed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    emb = TableEmbedder(128)
    with tempfile.TemporaryDirectory() as tmp:
        store = GalleryStore(Path(tmp) / "g.db")
        for p in range(args.people):
            v = rng.normal(size=(3, 128)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            chips = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
            store.add_faces(f"p{p}", chips, emb.model_key, vectors=v)
        rec = Recognizer(emb, store, detector=None)  # type: ignore[arg-type]
        q = rng.normal(size=(1, 128)).astype(np.float32)
        q /= np.linalg.norm(q)
        start = time.perf_counter()
        rec.decide(q)
        print(f"first answer (loads and calibrates): {time.perf_counter() - start:.2f} s")

        def before() -> None:
            gal = rec.gallery.current()
            sims, ids = gal.search(q, min(len(gal), 3 * gal.faces_per_person))
            for s, r in zip(sims, ids, strict=True):
                per_person_top_k(s, r, gal, 3)

        for _ in range(2):  # interleaved: the machine is shared
            for name, fn in (("before: best face, one threshold", before),
                             ("now: Recognizer.decide", lambda: rec.decide(q))):  # fmt: skip
                t = time.perf_counter()
                for _ in range(args.repeats):
                    fn()
                ms = (time.perf_counter() - t) / args.repeats * 1000
                print(f"{name:<36} {ms:.3f} ms per face ({args.people} people, 3 faces each)")


if __name__ == "__main__":
    main()
