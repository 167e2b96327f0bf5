"""Every metric against a brute-force loop or a hand-computed value on tiny arrays (ties too)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facemetric.errors import ConfigError
from facemetric.evaluate import metrics as M

# Scores on a coarse grid make ties common; at least one genuine and one impostor pair.
pair_sets = (
    st.integers(min_value=2, max_value=14)
    .flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(-4, 4), min_size=n, max_size=n),
            st.lists(st.booleans(), min_size=n, max_size=n),
        )
    )
    .filter(lambda t: any(t[1]) and not all(t[1]))
)


def as_arrays(t: tuple[list[int], list[bool]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(t[0], float) / 4.0, np.array(t[1], bool)


# ---------------------------------------------------------------- brute-force versions


def brute_roc(s: np.ndarray, y: np.ndarray) -> list[tuple[float, float, float]]:
    out = [(math.inf, 0.0, 0.0)]
    for t in sorted(set(s.tolist()), reverse=True):
        far = sum(1 for v, g in zip(s, y, strict=True) if not g and v >= t) / (~y).sum()
        tar = sum(1 for v, g in zip(s, y, strict=True) if g and v >= t) / y.sum()
        out.append((t, far, tar))
    return out


def brute_auc(s: np.ndarray, y: np.ndarray) -> float:
    total = 0.0
    for g in s[y]:
        for i in s[~y]:
            total += 1.0 if g > i else 0.5 if g == i else 0.0
    return total / (y.sum() * (~y).sum())


def brute_eer(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    pts = brute_roc(s, y)
    rate = None
    for (_, f0, t0), (_, f1, t1) in itertools.pairwise(pts):
        g0, g1 = f0 - (1 - t0), f1 - (1 - t1)
        if g0 < 0 <= g1:
            w = -g0 / (g1 - g0)
            rate = f0 + w * (f1 - f0)
            break
    best_t, best = math.inf, 2.0
    for t, f, _ in pts:  # highest threshold first: keep the first minimum
        frr = sum(1 for v, g in zip(s, y, strict=True) if g and v < t) / y.sum()
        if max(f, frr) < best:
            best_t, best = t, max(f, frr)
    assert rate is not None
    return rate, best_t


def brute_threshold_at_far(imp: np.ndarray, target: float) -> float:
    cands = {-math.inf} | set(imp.tolist()) | {float(np.nextafter(v, np.inf)) for v in imp}
    ok = [t for t in cands if np.mean(imp >= t) <= target + 1e-12]
    return min(ok)


def brute_best_threshold(s: np.ndarray, y: np.ndarray) -> float:
    u = sorted(set(s.tolist()))
    cands = [u[0] - 1.0] + [(a + b) / 2 for a, b in itertools.pairwise(u)] + [u[-1] + 1.0]
    best_t, best_acc = None, -1.0
    for t in cands:
        acc = sum(1 for v, g in zip(s, y, strict=True) if (v >= t) == g) / len(s)
        if acc > best_acc:
            best_t, best_acc = t, acc
    assert best_t is not None
    return best_t


# ---------------------------------------------------------------- ROC, AUC, EER


def test_roc_hand_computed_with_a_tie() -> None:
    s = [0.9, 0.7, 0.7, 0.2]
    y = [True, True, False, False]
    roc = M.roc_curve(s, y)
    # 0.7 holds a genuine and an impostor: both are accepted at once (one vertex, not two).
    assert roc.thresholds.tolist() == [math.inf, 0.9, 0.7, 0.2]
    assert roc.far.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert roc.tar.tolist() == [0.0, 0.5, 1.0, 1.0]
    # area: a half-square triangle from the tie + the rest: 0.5 * 0.5 * 0.5 + 0.5 * 1 = 0.875
    assert M.auc(s, y) == pytest.approx(0.875)


@settings(max_examples=150, deadline=None)
@given(pair_sets)
def test_roc_and_auc_match_brute_force(t: tuple[list[int], list[bool]]) -> None:
    s, y = as_arrays(t)
    roc = M.roc_curve(s, y)
    want = brute_roc(s, y)
    assert roc.thresholds.tolist() == [t for t, _, _ in want]
    assert roc.far.tolist() == pytest.approx([f for _, f, _ in want])
    assert roc.tar.tolist() == pytest.approx([t for _, _, t in want])
    assert M.auc(s, y) == pytest.approx(brute_auc(s, y))


@settings(max_examples=150, deadline=None)
@given(pair_sets)
def test_eer_matches_brute_force(t: tuple[list[int], list[bool]]) -> None:
    s, y = as_arrays(t)
    rate, thr = M.eer(s, y)
    b_rate, b_thr = brute_eer(s, y)
    assert rate == pytest.approx(b_rate)
    assert thr == b_thr
    assert 0.0 <= rate <= 1.0


def test_eer_hand_computed() -> None:
    # genuine 0.9 0.6 0.3, impostor 0.7 0.2 0.1: at t=0.6, FAR=1/3 and FRR=1/3.
    s = [0.9, 0.6, 0.3, 0.7, 0.2, 0.1]
    y = [True, True, True, False, False, False]
    assert M.eer(s, y) == (pytest.approx(1 / 3), 0.6)
    # perfectly separated: EER 0 at the lowest genuine score
    assert M.eer([0.9, 0.8, 0.1], [True, True, False]) == (0.0, 0.8)


# ---------------------------------------------------------------- TAR @ FAR


def test_threshold_at_far_rejects_a_tie_as_a_whole() -> None:
    imp = np.array([0.9, 0.8, 0.8, 0.1])
    # one false accept allowed: 0.9 in, the tied 0.8s out
    t = M.threshold_at_far(imp, 0.25)
    assert 0.8 < t <= 0.9 and np.mean(imp >= t) == 0.25
    # two allowed, but the 0.8s come as a pair: still only 0.9
    assert M.threshold_at_far(imp, 0.5) == t
    # three allowed: everything above 0.1
    assert np.mean(imp >= M.threshold_at_far(imp, 0.75)) == 0.75
    assert M.threshold_at_far(imp, 1.0) == -math.inf
    # fewer impostors than 1/target: just above the highest impostor
    assert M.threshold_at_far(imp, 1e-3) == np.nextafter(0.9, np.inf)


@settings(max_examples=150, deadline=None)
@given(pair_sets, st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9]))
def test_tar_at_far_matches_brute_force(t: tuple[list[int], list[bool]], target: float) -> None:
    s, y = as_arrays(t)
    op = M.tar_at_far(s, y, target)
    bt = brute_threshold_at_far(s[~y], target)
    assert op.threshold == bt
    assert op.far <= target + 1e-12
    assert op.tar == pytest.approx(np.mean(s[y] >= bt))


def test_calibration_for_far_and_eer() -> None:
    rng = np.random.default_rng(0)
    s = np.r_[rng.normal(0.6, 0.1, 500), rng.normal(0.1, 0.1, 2000)]
    y = np.r_[np.ones(500, bool), np.zeros(2000, bool)]
    cal = M.calibrate_threshold(s, y, target_far=1e-2)
    assert cal["far"] <= 1e-2 and cal["far"] > 0.005  # 20 allowed, ~20 accepted
    assert cal["threshold"] == M.threshold_at_far(s[~y], 1e-2)
    assert (cal["genuine_pairs"], cal["impostor_pairs"]) == (500, 2000)
    cal_eer = M.calibrate_threshold(s, y, method="eer")
    assert cal_eer["threshold"] == M.eer(s, y)[1] and cal_eer["target_far"] is None
    with pytest.raises(ConfigError, match="method"):
        M.calibrate_threshold(s, y, method="magic")


# ---------------------------------------------------------------- k-fold accuracy


@settings(max_examples=100, deadline=None)
@given(pair_sets)
def test_best_threshold_matches_brute_force(t: tuple[list[int], list[bool]]) -> None:
    s, y = as_arrays(t)
    thr, acc = M.best_accuracy_threshold(s, y)
    assert thr == pytest.approx(brute_best_threshold(s, y))
    assert acc == pytest.approx(np.mean((s >= thr) == y))


def test_kfold_uses_the_other_folds_threshold() -> None:
    rng = np.random.default_rng(1)
    s = rng.normal(size=60).round(1)
    y = rng.random(60) < 0.5
    folds = np.repeat(np.arange(1, 4), 20)
    res = M.kfold_accuracy(s, y, folds)
    for k, fold in enumerate((1, 2, 3)):
        train = folds != fold
        bt = brute_best_threshold(s[train], y[train])
        assert res.fold_thresholds[k] == pytest.approx(bt)
        acc = np.mean((s[~train] >= bt) == y[~train])
        assert res.fold_accuracies[k] == pytest.approx(acc)
    assert res.mean == pytest.approx(np.mean(res.fold_accuracies))
    assert res.std == pytest.approx(np.std(res.fold_accuracies))
    with pytest.raises(ConfigError, match="2 folds"):
        M.kfold_accuracy(s, y, np.ones(60))


def test_assign_folds_blocks() -> None:
    f = M.assign_folds(25, 10)
    assert f.min() == 1 and f.max() == 10 and np.all(np.diff(f) >= 0)
    assert np.bincount(f)[1:].tolist() == [3, 2, 3, 2, 3, 2, 3, 2, 3, 2]


# ---------------------------------------------------------------- embeddings: perfect and random


def identity_embeddings(n_ids: int, per_id: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, 32))
    labels = np.repeat(np.arange(n_ids), per_id)
    x = centres[labels] + noise * rng.normal(size=(len(labels), 32))
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def all_pairs(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(len(x), k=1)
    return np.sum(x[i] * x[j], axis=1), labels[i] == labels[j]


def test_perfect_embedding_scores_perfectly() -> None:
    x, lab = identity_embeddings(8, 5, noise=0.01)
    s, y = all_pairs(x, lab)
    assert M.auc(s, y) == 1.0
    assert M.eer(s, y)[0] == 0.0
    assert M.tar_at_far(s, y, 1e-3).tar == 1.0
    folds = M.assign_folds(len(s), 10)
    assert M.kfold_accuracy(s, y, folds).mean == 1.0
    gallery = np.arange(0, 40, 5)
    probes = np.setdiff1d(np.arange(40), gallery)
    ranks = M.identification_ranks(x[probes], lab[probes], x[gallery], lab[gallery])
    assert M.rank_k_accuracy(ranks) == {1: 1.0, 5: 1.0}


def test_random_embedding_scores_like_chance() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    lab = rng.integers(0, 10, 200)
    s, y = all_pairs(x, lab)
    assert M.auc(s, y) == pytest.approx(0.5, abs=0.03)
    assert M.eer(s, y)[0] == pytest.approx(0.5, abs=0.03)
    gallery = np.array([np.flatnonzero(lab == k)[0] for k in range(10)])
    probes = np.setdiff1d(np.arange(200), gallery)
    ranks = M.identification_ranks(x[probes], lab[probes], x[gallery], lab[gallery])
    assert M.rank_k_accuracy(ranks, (1,))[1] == pytest.approx(0.1, abs=0.06)


# ---------------------------------------------------------------- identification


def brute_ranks(p, pl, g, gl) -> list[int]:
    out = []
    ids = sorted(set(gl.tolist()))
    for vec, true in zip(p, pl, strict=True):
        score = {
            k: max(float(vec @ gv) for gv, gk in zip(g, gl, strict=True) if gk == k) for k in ids
        }
        out.append(1 + sum(1 for k in ids if k != true and score[k] >= score[true]))
    return out


def test_ranks_match_brute_force_and_ties_count_against_the_probe() -> None:
    x, lab = identity_embeddings(6, 4, noise=1.5, seed=2)
    gallery = np.r_[np.arange(0, 24, 4), np.arange(1, 24, 4)]  # two images per identity
    probes = np.setdiff1d(np.arange(24), gallery)
    got = M.identification_ranks(x[probes], lab[probes], x[gallery], lab[gallery])
    assert got.tolist() == brute_ranks(x[probes], lab[probes], x[gallery], lab[gallery])
    # all-equal embeddings: every identity ties, so the probe ranks last (pessimistic)
    same = np.ones((4, 3)) / np.sqrt(3)
    r = M.identification_ranks(same[:2], np.array(["a", "b"]), same[2:], np.array(["a", "b"]))
    assert r.tolist() == [2, 2]
    with pytest.raises(ConfigError, match="not in the gallery"):
        M.identification_ranks(same[:1], np.array(["z"]), same[2:], np.array(["a", "b"]))


def test_open_set_matches_brute_force() -> None:
    x, lab = identity_embeddings(10, 4, noise=0.8, seed=5)
    enrolled = lab < 6
    gallery = np.flatnonzero(enrolled & (np.arange(40) % 4 == 0))
    mated = np.flatnonzero(enrolled & (np.arange(40) % 4 != 0))
    strangers = np.flatnonzero(~enrolled)
    res = M.open_set_identification(
        x[mated], lab[mated], x[strangers], x[gallery], lab[gallery], 0.25, operating_threshold=0.3
    )
    top = [max(float(x[s] @ x[g]) for g in gallery) for s in strangers]
    thr = brute_threshold_at_far(np.array(top), 0.25)
    # res comes from a BLAS matrix product, top from one dot at a time: equal to rounding only.
    assert res.threshold == pytest.approx(thr, rel=1e-12, abs=1e-12)
    assert res.fpir == pytest.approx(np.mean(np.array(top) >= thr))
    hits = 0
    for m in mated:
        sims = [float(x[m] @ x[g]) for g in gallery]
        best = int(np.argmax(sims))
        hits += lab[gallery][best] == lab[m] and sims[best] >= thr
    assert res.tpir == pytest.approx(hits / len(mated))
    assert res.strangers == 16
    assert res.strangers_matched == sum(t >= 0.3 for t in top)


def test_input_checks_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="both genuine and impostor"):
        M.roc_curve([0.1, 0.2], [True, True])
    with pytest.raises(ConfigError, match="differ in length"):
        M.auc([0.1, 0.2], [True])
    with pytest.raises(ConfigError, match="NaN"):
        M.auc([0.1, float("nan")], [True, False])
    with pytest.raises(ConfigError, match="target_far"):
        M.threshold_at_far([0.1], 2.0)
