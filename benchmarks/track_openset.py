"""Track-level open set: the decision over a track's evidence, against the per-photo decision.

No real video of ../shared/data people exists, so a track is made of photos: ``k`` *different*
photos of one person, each one frame, and the track's evidence is
``recognize.tracking.track_evidence`` over them (equal weights, as the tracker's evidence of
``k`` frames). Different photos are the hard case for the mean: their embeddings spread more than
the frames of one sighting, so the renormalised mean moves furthest from each frame (a video's
frames are close to one another and their mean close to each frame). Galleries as in
``benchmarks/openset.py`` (N enrolled people with 3 references each, N strangers; the decision
calibrated on the references alone, per photo, ``DecisionSettings()`` defaults); every
enrolled person's and stranger's photos outside the gallery are cut into tracks (up to
``--tracks`` random draws of ``k`` photos per person). Printed: tracks named right, stranger
tracks named, beside the per-photo figures of the same draw::

    .venv/bin/python benchmarks/track_openset.py --sizes 20 70 --frames 1 2 3 5 --trials 3
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from facemetric.recognize.calibration import calibrate
from facemetric.recognize.decision import Decider, DecisionSettings
from facemetric.recognize.tracking import track_evidence
from openset import OLD, draw, person_scores
from openset_data import cached_embeddings, identities

DATA = Path(
    os.environ.get(
        "FACEMETRIC_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    )
)


def tracks_of(
    probes: np.ndarray,
    plab: np.ndarray,
    who: np.ndarray,
    k: int,
    per_person: int,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Up to ``per_person`` draws of ``k`` different probe rows of one person (``who``: the
    probes' identities) each, with the gallery label (-1: a stranger)."""
    rows, labels = [], []
    for person in np.unique(who):
        mine = probes[who == person]
        label = int(plab[who == person][0])
        if len(mine) < k:
            continue
        seen = set()
        for _ in range(per_person * 3):
            pick = tuple(sorted(rng.choice(mine, k, replace=False).tolist()))
            if pick in seen:
                continue
            seen.add(pick)
            rows.append(np.array(pick))
            labels.append(label)
            if len(seen) >= per_person:
                break
    return rows, np.array(labels)


def rates(decider: Decider, vectors: np.ndarray, truth: np.ndarray, refs, rlab, n, settings):
    sims = vectors @ refs.T
    scores = person_scores(sims, rlab, n, settings.agree)
    top = np.argsort(-scores, axis=1)[:, : settings.candidates]
    right = named = 0
    for i in range(len(vectors)):
        d = decider.decide([(str(int(p)), float(scores[i, p])) for p in top[i]])
        if d.identity is None:
            continue
        if truth[i] < 0:
            named += 1
        elif int(d.identity) == truth[i]:
            right += 1
    enrolled = int((truth >= 0).sum())
    strangers = int((truth < 0).sum())
    return right / max(1, enrolled), named, strangers, enrolled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[20, 70])
    parser.add_argument("--frames", nargs="+", type=int, default=[1, 2, 3, 5])
    parser.add_argument("--tracks", type=int, default=10, help="tracks drawn per person")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--set", default="celeba-wild")
    parser.add_argument("--fpir", type=float, default=DecisionSettings().fpir)
    args = parser.parse_args()
    settings = DecisionSettings(fpir=args.fpir)
    es = cached_embeddings(args.data / args.set)
    x = es.embeddings.astype(np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    ids = identities(es)
    for n in args.sizes:
        start = time.perf_counter()
        table: dict[tuple[int, bool], list[tuple[float, int, int, int]]] = {}
        thresholds = []
        for trial in range(args.trials):
            rng = np.random.default_rng(trial)
            refs, rlab, probes, plab = draw(ids, n, rng)
            decider = Decider(calibrate(x[refs], rlab, OLD, settings), settings)
            thresholds.append(decider.active_threshold)
            for k in args.frames:
                rows, truth = tracks_of(probes, plab, ids[probes], k, args.tracks, rng)
                if not rows:
                    continue
                for renorm in (False, True):
                    ev = np.stack([track_evidence(x[r], np.ones(len(r)), 8, renorm) for r in rows])
                    table.setdefault((k, renorm), []).append(
                        rates(decider, ev, truth, x[refs], rlab, n, settings)
                    )
        print(
            f"\n{n} people enrolled ({args.set}, {args.trials} draws, thresholds "
            f"{', '.join(f'{t:.4f}' for t in thresholds)}; {time.perf_counter() - start:.0f} s)"
        )
        print(
            f"  {'frames per track':<28} {'tracks named right':>20} {'stranger tracks named':>26}"
        )
        for (k, renorm), values in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            tp = np.mean([v[0] for v in values])
            named = sum(v[1] for v in values)
            strangers = sum(v[2] for v in values)
            enrolled = sum(v[3] for v in values)
            fp = f"{named}/{strangers} ({named / max(1, strangers):.2%})"
            label = f"{k} (per photo)" if k == 1 else str(k)
            label += ", renormalised" if renorm else ", mean (shipped)"
            print(f"  {label:<28} {tp:>12.1%} of {enrolled:<5} {fp:>26}")


if __name__ == "__main__":
    main()
