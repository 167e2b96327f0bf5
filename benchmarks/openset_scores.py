"""Which person score separates enrolled people from strangers best: each variant's ceiling.

The draws of ``benchmarks/openset.py`` (same seeds); for each way of scoring a person from
their 3 references, the share of enrolled probes named right when the threshold is set on
the strangers themselves for 1% of them named (the best any calibration of that score can
do). Scores: ``max``, ``mean2`` (the mean of the best 2: shipped), ``mean3``, ``lse<t>``
(log-sum-exp at temperature 1/t), ``w.7`` (0.7 best + 0.3 second). Decisions: ``m<x>`` (the
score, and a margin of x to the next person), ``s1-a*s2`` (a soft margin), ``s1-a*coh10``
(cohort normalisation: less a times the mean of the next 10 people, no margin), ``znorm``
(per person: z-score against the other people's references), ``s-0.5mu`` (less half the
person's mean impostor score)::

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/openset_scores.py 20 70 500 max
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from openset import DATA, REFS, draw
from openset_data import cached_embeddings, identities


def _desc(s: np.ndarray) -> np.ndarray:
    return -np.sort(-s, axis=2)


def _lse(t: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda s: np.log(np.exp(t * (s - 1)).mean(2)) / t + 1


SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max": lambda s: s.max(2),
    "mean2": lambda s: _desc(s)[:, :, :2].mean(2),
    "mean3": lambda s: s.mean(2),
    "lse50": _lse(50),
    "lse100": _lse(100),
    "w.7": lambda s: 0.7 * _desc(s)[:, :, 0] + 0.3 * _desc(s)[:, :, 1],
}


def ceiling(named_at: np.ndarray, right: np.ndarray, stranger: np.ndarray) -> tuple[float, float]:
    """(TPIR, FPIR) at the threshold that names 1% of the strangers."""
    t = np.quantile(named_at[stranger], 0.99) + 1e-9
    tpir = ((named_at >= t) & right & ~stranger).sum() / (~stranger).sum()
    return float(tpir), float((named_at[stranger] >= t).mean())


def run(size: str, x: np.ndarray, ids: np.ndarray, trials: int = 3) -> dict[str, list]:
    counts = np.unique(ids, return_counts=True)[1]
    most = min(int((counts > REFS).sum()), len(counts) // 2)
    n = most if size == "max" else min(int(size), most)
    res: dict[str, list] = {}
    for trial in range(trials):
        refs, rlab, probes, plab = draw(ids, n, np.random.default_rng(trial))
        sims = (x[probes] @ x[refs].T).reshape(len(probes), n, REFS)  # refs come per person
        rr = (x[refs] @ x[refs].T).reshape(len(refs), n, REFS)
        stranger = plab < 0
        rows = np.arange(len(probes))
        for name, fn in SCORES.items():
            s = fn(sims)
            order = np.argsort(-s, axis=1)
            s1, s2 = s[rows, order[:, 0]], s[rows, order[:, 1]]
            right = order[:, 0] == plab
            cohort = s[rows[:, None], order[:, 1 : 1 + min(10, n - 1)]].mean(1)
            for m in (0.0, 0.01, 0.02):
                named = np.where(s1 - s2 >= m, s1, -9.0)
                res.setdefault(f"{name} m{m}", []).append(ceiling(named, right, stranger))
            for a in (0.25, 0.5):
                for tag, other in (("s2", s2), ("coh10", cohort)):
                    key = f"{name} s1-{a}*{tag}"
                    res.setdefault(key, []).append(ceiling(s1 - a * other, right, stranger))
            imp = fn(rr)
            imp[np.arange(len(refs)), rlab] = np.nan  # a reference against its own person
            mu, sd = np.nanmean(imp, 0), np.nanstd(imp, 0)
            for key, adjusted in (("znorm", (s - mu) / sd), ("s-0.5mu", s - 0.5 * mu)):
                best = np.argmax(adjusted, axis=1)
                got = ceiling(adjusted[rows, best], best == plab, stranger)
                res.setdefault(f"{name} {key}", []).append(got)
    return res


def main() -> None:
    wild = cached_embeddings(DATA / "celeba-wild")
    crops = cached_embeddings(DATA / "celeba-crops")
    w = (wild.embeddings.astype(np.float32), identities(wild))
    both = (
        np.concatenate([wild.embeddings, crops.embeddings]).astype(np.float32),
        np.concatenate([identities(wild), identities(crops)]),
    )
    for size in sys.argv[1:] or ["20", "70", "500", "max"]:
        x, ids = both if size == "max" or int(size) * 2 > len(np.unique(w[1])) else w
        for key, values in run(size, x, ids).items():
            a = np.array(values)
            print(f"{size:>4} {key:<20} ceiling: named right {a[:, 0].mean():.1%}", end="")
            print(f" at {a[:, 1].mean():.2%} strangers")


if __name__ == "__main__":
    main()
