"""The clustering core and its metrics: brute-force checks on tiny inputs, every method."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facemetric.cluster.core import available_methods, cluster_embeddings, relabel
from facemetric.cluster.metrics import cluster_scores, singletons
from facemetric.errors import ConfigError


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, 64))
    truth = np.repeat(np.arange(6), 5)
    x = centers[truth] / np.linalg.norm(centers[truth], axis=1, keepdims=True)
    x = np.vstack([x + rng.normal(scale=0.02, size=x.shape), rng.normal(size=(4, 64))])
    truth = np.concatenate([truth, 100 + np.arange(4)])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


@pytest.mark.parametrize("method", available_methods())
def test_every_method_finds_the_groups_and_leaves_strangers_unsorted(method: str) -> None:
    x, truth = _blobs()
    labels = cluster_embeddings(x, threshold=0.8, method=method)
    assert labels.dtype == np.int64 and labels.shape == (len(x),)
    assert (labels[-4:] == -1).all()
    scores = cluster_scores(truth, labels)
    assert scores.pairwise_precision == pytest.approx(1.0)
    assert scores.bcubed_f == pytest.approx(1.0)
    assert scores.groups == 6


def test_relabel_orders_largest_first_and_drops_small_groups() -> None:
    out = relabel(np.array([5, 5, 7, 7, 7, 9, -1]), min_size=2)
    assert out.tolist() == [1, 1, 0, 0, 0, -1, -1]


def test_bad_input_is_named() -> None:
    with pytest.raises(ConfigError, match="method"):
        cluster_embeddings(np.eye(3, dtype=np.float32), method="kmeans")
    with pytest.raises(ConfigError, match="L2"):
        cluster_embeddings(np.full((3, 4), 2.0, np.float32))
    assert cluster_embeddings(np.zeros((0, 8), np.float32)).shape == (0,)
    assert cluster_embeddings(np.eye(1, 8, dtype=np.float32)).tolist() == [-1]


def _brute(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float, float]:
    pred = singletons(pred)
    tp = fp = fn = 0
    for i, j in itertools.combinations(range(len(truth)), 2):
        same_t, same_p = truth[i] == truth[j], pred[i] == pred[j]
        tp += same_t and same_p
        fp += same_p and not same_t
        fn += same_t and not same_p
    bp = np.mean([np.mean(truth[pred == pred[i]] == truth[i]) for i in range(len(truth))])
    br = np.mean([np.mean(pred[truth == truth[i]] == pred[i]) for i in range(len(truth))])
    return tp / max(1, tp + fp), tp / max(1, tp + fn), float(bp), float(br)


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_a_brute_force_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth, pred = rng.integers(0, 5, 25), rng.integers(-1, 6, 25)
    s = cluster_scores(truth, pred)
    got = (s.pairwise_precision, s.pairwise_recall, s.bcubed_precision, s.bcubed_recall)
    assert np.allclose(got, _brute(truth, pred))
