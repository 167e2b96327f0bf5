"""Corrections that stick: a look-alike stranger marked "not PERSON" five times, before/after.

A gallery as in ``benchmarks/openset.py`` (N people with 3 photos each, N strangers). The
look-alike is the stranger whose photos are most often named as one enrolled person (under the
old rule ``best >= 0.9301``, which names strangers far more often than the shipped decision).
Five of those wrong answers are marked (each photo becomes a negative face of the person, as
``facemetric gallery correct PHOTO --not PERSON`` does); then the stranger's *other* photos
named as the person are counted before and after, and the person's own photos named right, for
the old rule and for the shipped decision (both with the corrections' negatives)::

    .venv/bin/python benchmarks/corrections.py --sizes 70 500
"""

from __future__ import annotations

import argparse

import numpy as np

from facemetric.recognize.calibration import calibrate
from facemetric.recognize.decision import Calibration, Decider, DecisionSettings
from openset import DATA, OLD, draw, person_scores
from openset_data import cached_embeddings, identities

MARKED = 5


def named_as(
    decider: Decider,
    scores: np.ndarray,
    best: np.ndarray,
    neg: np.ndarray | None,
    person: int,
) -> np.ndarray:
    """Which probes (rows of ``scores``) the decider names ``person``; ``neg``: each probe's
    similarity to the person's closest negative face (None: no corrections)."""
    out = np.zeros(len(scores), bool)
    top = np.argsort(-scores, axis=1)[:, :4]
    for i in range(len(scores)):
        cands = [(str(p), float(scores[i, p])) for p in top[i]]
        negatives = {str(person): float(neg[i])} if neg is not None else {}
        refs = {str(p): float(best[i, p]) for p in top[i]}
        d = decider.decide(cands, negatives, refs)
        out[i] = d.identity == str(person)
    return out


def run(x: np.ndarray, ids: np.ndarray, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    refs, rlab, probes, plab = draw(ids, n, rng)
    sims = x[probes] @ x[refs].T
    best1 = person_scores(sims, rlab, n, 1)
    best2 = person_scores(sims, rlab, n, 2)
    old_named = best1.max(axis=1) >= OLD
    who = best1.argmax(axis=1)
    stranger_ids = ids[probes]
    pairs: dict[tuple[str, int], int] = {}
    for i in np.flatnonzero(old_named & (plab < 0)):
        key = (str(stranger_ids[i]), int(who[i]))
        pairs[key] = pairs.get(key, 0) + 1
    if not pairs:
        print(f"{n} people (draw {seed}): no stranger named at all")
        return
    (stranger, person), count = max(pairs.items(), key=lambda kv: kv[1])
    rows = np.flatnonzero(stranger_ids == stranger)
    order = rows[np.argsort(-best1[rows, person])]
    marked, others = order[:MARKED], order[MARKED:]
    own = np.flatnonzero(plab == person)
    negatives = x[probes[marked]]
    neg = (x[probes] @ negatives.T).max(axis=1)

    old = Decider(
        Calibration(OLD, 0.01, n, "given", OLD), DecisionSettings(agree=1, margin=0.0), OLD
    )
    shipped_settings = DecisionSettings()
    shipped = Decider(calibrate(x[refs], rlab, OLD, shipped_settings), shipped_settings)
    name = person_name(ids, refs, rlab, person)
    print(
        f"\n{n} people (draw {seed}): look-alike stranger {stranger} named {name} "
        f"in {count} of {len(rows)} photos by the old rule; {len(marked)} marked wrong, "
        f"{len(others)} other photos, the person's own probes: {len(own)}"
    )
    print(f"  {'rule':<34} {'stranger named (others)':>24} {'own photos named':>18}")
    for label, decider, score in (
        ("best >= 0.9301 (old rule)", old, best1),
        (f"decision (T={shipped.active_threshold:.4f})", shipped, best2),
    ):
        before_s = named_as(decider, score[others], best1[others], None, person).sum()
        after_s = named_as(decider, score[others], best1[others], neg[others], person).sum()
        before_o = named_as(decider, score[own], best1[own], None, person).sum()
        after_o = named_as(decider, score[own], best1[own], neg[own], person).sum()
        print(
            f"  {label:<34} {before_s:>10} -> {after_s:<11} {before_o:>7} -> {after_o:<7}"
            f" (of {len(own)})"
        )


def person_name(ids: np.ndarray, refs: np.ndarray, rlab: np.ndarray, person: int) -> str:
    return str(ids[refs[rlab == person][0]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[70, 500])
    parser.add_argument("--draws", type=int, default=2)
    args = parser.parse_args()
    wild = cached_embeddings(DATA / "celeba-wild")
    crops = cached_embeddings(DATA / "celeba-crops")
    for n in args.sizes:
        if 2 * n <= len(np.unique(identities(wild))):
            x, ids = wild.embeddings, identities(wild)
        else:
            x = np.concatenate([wild.embeddings, crops.embeddings])
            ids = np.concatenate([identities(wild), identities(crops)])
        for seed in range(args.draws):
            run(x, ids, n, seed)


if __name__ == "__main__":
    main()
