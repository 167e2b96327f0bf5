"""What the open-set decision costs per frame, stage by stage, on one process and one gallery of
random 128-d faces (default 10,000: ``--people`` x ``--per-person``), the two ways
``Recognizer.decide`` can find each face's people, interleaved (the machine is shared):

- ``hits``: the index's top ``people x faces_per_person`` hits, grouped by person
  (``per_person_top_k``, what an approximate index needs and what every search did before);
- ``one scan``: the gallery grouped by person once per generation, one matrix product for the
  frame's faces and each person's best faces by ``reduceat`` (``facemetric.gallery.persons``).

Printed per face, median ms: ``search`` (people, scores, best faces, negatives),
``decision`` (``Decider.decide`` over them: margin, cohort, vetoes, threshold), and
``Recognizer.decide`` whole (search + decision + the gallery's up-to-date check), for one face
and for a frame of ``--faces`` faces; and whether the two ways agree on every decision::

    PYTHONPATH=src .venv/bin/python benchmarks/decision_speed.py                  # 500 x 20
    PYTHONPATH=src .venv/bin/python benchmarks/decision_speed.py --people 20 --per-person 500
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.gallery.store import GalleryStore
from facemetric.models import ModelSpec
from facemetric.recognize.recognizer import Recognizer


class TableEmbedder:
    """Stands in for a model: the gallery's vectors are given, queries are embedded already."""

    def __init__(self, dim: int) -> None:
        self.spec = ModelSpec(backbone="tiny", embedding_dim=dim, input_size=16)
        self.threshold = 0.3
        self.meta: dict[str, Any] = {}
        self.checkpoint_path = Path("<table>")
        self.model_key = "decision-speed"


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--per-person", type=int, default=20)
    parser.add_argument("--negatives", type=int, default=50, help="people with 2 negatives")
    parser.add_argument("--faces", type=int, default=4, help="faces in the batched frame")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    emb = TableEmbedder(128)
    centres = unit(rng.normal(size=(args.people, 128)))
    with tempfile.TemporaryDirectory() as tmp:
        store = GalleryStore(Path(tmp) / "g.db")
        for p in range(args.people):
            v = unit(centres[p] + rng.normal(scale=0.1, size=(args.per_person, 128)))
            chips = list(rng.integers(0, 255, (args.per_person, 16, 16, 3), dtype=np.uint8))
            store.add_faces(f"p{p}", chips, emb.model_key, vectors=v)
            if p < args.negatives:
                n = unit(centres[p] + rng.normal(scale=0.12, size=(2, 128)))
                chips = list(rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8))
                store.add_faces(f"p{p}", chips, emb.model_key, kind="negative", vectors=n)
        rec = Recognizer(emb, store, detector=None)  # type: ignore[arg-type]
        mated = unit(centres[:1] + rng.normal(scale=0.1, size=(1, 128)))
        frame = unit(
            centres[rng.integers(0, args.people, args.faces)]
            + rng.normal(scale=0.1, size=(args.faces, 128))
        )
        strangers = unit(rng.normal(size=(200, 128)))
        enrolled = centres[rng.integers(0, args.people, 200)]
        probes = np.vstack([unit(enrolled + rng.normal(scale=0.1, size=(200, 128))), strangers])
        start = time.perf_counter()
        rec.decide(mated)
        print(f"first answer (loads and calibrates): {time.perf_counter() - start:.2f} s")
        gallery = rec.gallery.current()
        real_top_people = gallery.top_people
        s = rec.decision_settings
        people = max(rec.top_k, s.candidates)

        def use(way: str) -> None:
            gallery.top_people = (  # type: ignore[method-assign]
                real_top_people if way == "one scan" else (lambda *a, **k: None)
            )

        def search(q: np.ndarray) -> Any:
            k_hits = min(len(gallery), people * gallery.faces_per_person)
            if gallery.top_people is real_top_people:
                return gallery.top_people(q, k_hits, people, s.agree, s.use_negatives)
            return rec._from_hits(gallery, q, k_hits, people, s.agree)

        answers = {}
        for way in ("hits", "one scan"):
            use(way)
            answers[way] = [
                (d.identity, d.reason, [c.identity for c in c_]) for c_, d in rec.decide(probes)
            ]
        same = answers["hits"] == answers["one scan"]
        named = sum(a[0] is not None for a in answers["one scan"][:200])
        wrong = sum(a[0] is not None for a in answers["one scan"][200:])
        print(
            f"{args.people} people x {args.per_person} faces = {len(gallery)} faces, "
            f"{args.negatives * 2} negatives; 200 enrolled probes: {named} named, 200 strangers:"
            f" {wrong} named; the two ways agree on all 400 decisions: {same}"
        )
        cands = rec.decide(mated)[0][0]
        decider = rec.decider()
        scores = [(c.identity, c.similarity) for c in cands]
        negs = {c.identity: c.negative for c in cands if c.negative is not None}
        bests = {c.identity: float(c.best or c.similarity) for c in cands}
        for r in range(args.rounds):
            for way in ("hits", "one scan"):
                use(way)
                n = args.repeats
                row = {
                    "search": median_ms(lambda: search(mated), n),
                    "decision": median_ms(lambda: decider.decide(scores, negs, bests), n),
                    "Recognizer.decide": median_ms(lambda: rec.decide(mated), n),
                    f"frame of {args.faces}, per face": median_ms(lambda: rec.decide(frame), n)
                    / args.faces,
                }
                parts = "  ".join(f"{k} {v:.3f}" for k, v in row.items())
                print(f"round {r + 1} {way:<8}  ms per face: {parts}", flush=True)
        use("one scan")


if __name__ == "__main__":
    main()
