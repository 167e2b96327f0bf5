"""Open-set identification at several gallery sizes: the shipped decision beside the old rule.

People the model never saw (../shared/data; the dlib model was not trained on them): for a
gallery of N people, 2N people are drawn, N of them (with at least 4 photos) enrolled with 3
photos each and the other N kept as strangers; probes are every other photo of the enrolled
people and every photo of the strangers. Each rule is applied to the same scores:

- ``best >= 0.9301``: the old rule (the model's per-pair threshold, FAR 1e-3 per pair);
- the issue's other rules (margin 0.02; mean of 2 best >= 0.94 + margin; best >= 0.95);
- ``decision``: ``facemetric.recognize.decision`` with the shipped ``DecisionSettings`` (FPIR 1% per
  search, calibrated on the enrolled references only, never on the strangers);
- ``--screen``: the decision again with each person enrolled through the consistency check
  of ``facemetric.enrol.screen`` (a photo unlike the person's other photos is refused and the next
  one taken; the image-quality floors need the photos, not cached, so they are not applied).

Printed per size: enrolled probes named right (TPIR) and stranger photos named (FPIR), the
mean over ``--trials`` draws. Embeddings come from ``benchmarks/openset_data.py``'s cache::

    .venv/bin/python benchmarks/openset.py --sizes 20 70 500 max --trials 3

``--models dlib dlib:flip dlib+faceres dlib+faceres:flip`` runs the same draws for each model
(embeddings from ``benchmarks/fusion_data.py``'s cache), each with its own per-pair threshold as
the decision's floor, and ends with a table of the decision's rates beside dlib's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facemetric.data.quality import consistency_floor
from facemetric.enrol.screen import MIN_VOTERS
from facemetric.recognize.calibration import calibrate
from facemetric.recognize.decision import Decider, DecisionSettings
from openset_data import cached_embeddings, identities

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
OLD = 0.9301  # the dlib model's per-pair threshold (FAR 1e-3)
REFS = 3
FLOOR = consistency_floor(OLD)  # enrolment's consistency floor for this model


def person_scores(sims: np.ndarray, labels: np.ndarray, people: int, agree: int) -> np.ndarray:
    """(Q, P): each probe's score for each person, the mean of their best ``agree`` refs."""
    out = np.full((sims.shape[0], people), -2.0, np.float32)
    for p in range(people):
        cols = sims[:, labels == p]
        if cols.shape[1]:
            out[:, p] = -np.sort(-cols, axis=1)[:, :agree].mean(axis=1)
    return out


def screened(rows: np.ndarray, x: np.ndarray, floor: float) -> list[int]:
    """The first ``REFS`` of ``rows`` that enrolment's consistency check accepts, in order:
    the first ``REFS`` photos are checked together, each later one against those accepted
    (``facemetric.enrol.screen``: median similarity to the person's other references >= ``floor``,
    refused only with at least ``MIN_VOTERS`` other references); refused photos stay probes."""
    batch = list(rows[:REFS])
    v = x[batch]
    sims = v @ v.T
    accepted = [
        r
        for i, r in enumerate(batch)
        if len(batch) - 1 < MIN_VOTERS or np.median(np.delete(sims[i], i)) >= floor
    ]
    for r in rows[REFS:]:
        if len(accepted) >= REFS:
            break
        if len(accepted) < MIN_VOTERS or np.median(x[accepted] @ x[r]) >= floor:
            accepted.append(r)
    return [int(r) for r in accepted]


def draw(
    ids: np.ndarray, n: int, rng: np.random.Generator, screen: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(reference rows, their person 0..n-1, probe rows, probe person or -1 for strangers);
    ``screen``: the embeddings, to enrol through the consistency check (``screened``)."""
    people = rng.permutation(np.unique(ids))
    counts = {p: int((ids == p).sum()) for p in people}
    enrolled = [p for p in people if counts[p] > REFS][:n]
    chosen = set(enrolled)
    strangers = [p for p in people if p not in chosen][:n]
    refs, rlab, probes, plab = [], [], [], []
    for j, p in enumerate(enrolled):
        rows = rng.permutation(np.flatnonzero(ids == p))
        chosen_rows = rows[:REFS].tolist() if screen is None else screened(rows, screen, FLOOR)
        rest = [int(r) for r in rows if r not in set(chosen_rows)]
        refs += chosen_rows
        rlab += [j] * len(chosen_rows)
        probes += rest
        plab += [j] * len(rest)
    for p in strangers:
        rows = np.flatnonzero(ids == p)
        probes += rows.tolist()
        plab += [-1] * len(rows)
    return np.array(refs), np.array(rlab), np.array(probes), np.array(plab)


Rule = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def rates(named: np.ndarray, who: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    enrolled = truth >= 0
    tpir = float((named & (who == truth) & enrolled).sum() / max(1, enrolled.sum()))
    fpir = float((named & ~enrolled).sum() / max(1, (~enrolled).sum()))
    return tpir, fpir


def decided(
    sims: np.ndarray,
    rlab: np.ndarray,
    plab: np.ndarray,
    n: int,
    settings: DecisionSettings,
    gallery: np.ndarray,
    tag: str,
) -> dict[str, tuple[float, float]]:
    """The shipped decision's rates, and the same score's with T set on the strangers."""
    out: dict[str, tuple[float, float]] = {}
    cal = calibrate(gallery, rlab, OLD, settings)
    decider = Decider(cal, settings)
    scores = person_scores(sims, rlab, n, settings.agree)
    named = np.zeros(len(plab), bool)
    who = np.full(len(plab), -1)
    top = np.argsort(-scores, axis=1)[:, : settings.candidates]
    for i in range(len(plab)):
        d = decider.decide([(str(int(p)), float(scores[i, p])) for p in top[i]])
        if d.identity is not None:
            named[i], who[i] = True, int(d.identity)
    out[f"decision{tag} (FPIR {settings.fpir:g}, T={cal.threshold:.4f})"] = rates(named, who, plab)
    # The model's ceiling for this score: the threshold chosen on the strangers themselves.
    rows = np.arange(len(scores))
    m1s, m2s = scores[rows, top[:, 0]], scores[rows, top[:, 1]]
    ok = m1s - m2s >= settings.margin
    stranger = np.where(ok & (plab < 0), m1s, -2.0)[plab < 0]
    oracle = float(np.quantile(stranger, 1 - settings.fpir)) + 1e-9
    out[f"ceiling{tag}: same score, T set on the strangers"] = rates(
        ok & (m1s >= oracle), top[:, 0], plab
    )
    if settings.cohort:  # the same with the cohort's share taken off at full weight
        cohort = scores[rows[:, None], top[:, 1 : 1 + settings.cohort_size]].mean(axis=1)
        adj = m1s - settings.cohort * cohort
        stranger = np.where(ok & (plab < 0), adj, -9.0)[plab < 0]
        oracle = float(np.quantile(stranger, 1 - settings.fpir)) + 1e-9
        out[f"ceiling{tag}: cohort score, T set on the strangers"] = rates(
            ok & (adj >= oracle), top[:, 0], plab
        )
    return out


def evaluate_size(
    x: np.ndarray,
    ids: np.ndarray,
    n: int,
    seed: int,
    settings: DecisionSettings,
    screen: bool = False,
) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(seed)
    refs, rlab, probes, plab = draw(ids, n, rng)
    sims = x[probes] @ x[refs].T
    best1 = person_scores(sims, rlab, n, 1)
    best2 = person_scores(sims, rlab, n, 2)
    out: dict[str, tuple[float, float]] = {}

    def top2(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.argsort(-scores, axis=1)[:, :2]
        rows = np.arange(len(scores))
        return order[:, 0], scores[rows, order[:, 0]], scores[rows, order[:, 1]]

    who1, s1, t1 = top2(best1)
    who2, m1, m2 = top2(best2)
    out["best >= 0.9301 (old rule)"] = rates(s1 >= OLD, who1, plab)
    out["best >= 0.9301 + margin 0.02"] = rates((s1 >= OLD) & (s1 - t1 >= 0.02), who1, plab)
    out["mean of 2 >= 0.94 + margin 0.02"] = rates((m1 >= 0.94) & (m1 - m2 >= 0.02), who2, plab)
    out["best >= 0.95"] = rates(s1 >= 0.95, who1, plab)

    out.update(decided(sims, rlab, plab, n, settings, x[refs], ""))
    if screen:
        refs, rlab, probes, plab = draw(ids, n, np.random.default_rng(seed), x)
        sims = x[probes] @ x[refs].T
        out.update(decided(sims, rlab, plab, n, settings, x[refs], ", screened"))
    return out


def model_floor(model: str) -> float:
    """The model's own per-pair threshold (FAR 1e-3), the decision's floor."""
    from facemetric.models import load_checkpoint, resolve_model_path

    ckpt = load_checkpoint(resolve_model_path(model))
    if ckpt.threshold is None:
        raise SystemExit(f"{model}: no calibrated per-pair threshold (fusion_data.py prints it)")
    return float(ckpt.threshold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["dlib"], help="models by name")
    parser.add_argument("--sizes", nargs="+", default=["20", "70", "500", "max"])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--screen",
        action="store_true",
        help="also enrol through the consistency check (the decision's rows, screened)",
    )
    args = parser.parse_args()
    summary: dict[tuple[str, str], tuple[float, float]] = {}
    for model in args.models:
        global OLD, FLOOR
        OLD = model_floor(model)
        FLOOR = consistency_floor(OLD)
        print(f"\n=== {model} (per-pair threshold {OLD:.4f})")
        run_model(args, model, summary)
    if len(args.models) > 1:
        base = args.models[0]
        print(f"\nthe decision (FPIR 1%), named right / strangers named, against {base}:")
        for size in args.sizes:
            cells = []
            for model in args.models:
                if (model, size) not in summary:
                    continue
                tp, fp = summary[(model, size)]
                gain = tp - summary.get((base, size), (tp, 0))[0]
                cells.append(f"{model} {tp:.1%}/{fp:.1%} ({gain * 100:+.1f})")
            print(f"  {size:>4}: " + "; ".join(cells))


def run_model(
    args: argparse.Namespace, model: str, summary: dict[tuple[str, str], tuple[float, float]]
) -> None:
    settings = DecisionSettings()
    wild = cached_embeddings(args.data / "celeba-wild", model)
    crops_path = args.data / "celeba-crops"
    big = [s for s in args.sizes if s == "max" or int(s) * 2 > 150]
    crops = cached_embeddings(crops_path, model) if big else wild
    sets = {
        "celeba-wild": (wild.embeddings, identities(wild)),
        "celeba-wild+crops": (
            np.concatenate([wild.embeddings, crops.embeddings]),
            np.concatenate([identities(wild), identities(crops)]),
        ),
    }
    for size in args.sizes:
        x, ids = sets["celeba-wild+crops"]
        name = "celeba-wild+crops"
        if size != "max" and int(size) * 2 <= len(np.unique(sets["celeba-wild"][1])):
            name = "celeba-wild"
            x, ids = sets[name]
        counts = np.unique(ids, return_counts=True)[1]
        most = min(int((counts > REFS).sum()), len(counts) // 2)
        n = most if size == "max" else min(int(size), most)
        start = time.perf_counter()
        table: dict[str, list[tuple[float, float]]] = {}
        for trial in range(args.trials):
            for rule, r in evaluate_size(x, ids, n, trial, settings, args.screen).items():
                key = rule.split(", T=")[0] + ")" if rule.startswith("decision") else rule
                table.setdefault(key, []).append(r)
                if rule.startswith("decision"):
                    tag = "thresholds" + key[len("decision") :].split(" (")[0]
                    table.setdefault(tag, []).append((float(rule[-7:-1]), 0.0))
        print(
            f"\n{n} people enrolled ({name}, {args.trials} draws, "
            f"{time.perf_counter() - start:.0f} s on a shared, loaded machine)"
        )
        print(f"  {'rule':<54} {'named right':>12} {'strangers named':>16}")
        for rule, values in table.items():
            if rule.startswith("thresholds"):
                continue
            if model != "dlib" and not rule.startswith(("decision", "ceiling")):
                continue  # the old fixed rules are on dlib's scale
            tp = np.mean([v[0] for v in values])
            fp = np.mean([v[1] for v in values])
            print(f"  {rule:<54} {tp:>11.1%} {fp:>15.1%}")
            if rule.startswith("decision (") and not rule.startswith("decision, "):
                summary[(model, size)] = (float(tp), float(fp))
        for tag in (k for k in table if k.startswith("thresholds")):
            ts = ", ".join(f"{t:.4f}" for t, _ in table[tag])
            print(f"  decision{tag[len('thresholds') :]} thresholds per draw: {ts}")


if __name__ == "__main__":
    main()
