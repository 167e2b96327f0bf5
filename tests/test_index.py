"""Search back ends against a brute-force loop on tiny inputs, and the registry."""

from __future__ import annotations

import numpy as np
import pytest

from facemetric.errors import ConfigError
from facemetric.gallery import index as index_module
from facemetric.gallery.index import (
    HALF_EXTRA,
    HALF_MAX_QUERIES,
    QUERY_BLOCK,
    ExactIndex,
    HalfIndex,
    available_indexes,
    create_index,
)


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(gallery: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims, rows = [], []
    for q in queries:
        scored = sorted(
            ((float(np.dot(q.astype(np.float64), g)), i) for i, g in enumerate(gallery)),
            key=lambda t: -t[0],
        )[:k]
        sims.append([s for s, _ in scored])
        rows.append([i for _, i in scored])
    return np.array(sims), np.array(rows)


@pytest.mark.parametrize("name", ["exact", "faiss", "half", "auto"])
@pytest.mark.parametrize(("n", "q", "k"), [(50, 1, 5), (200, 7, 10), (30, 3, 30), (300, 150, 4)])
def test_search_matches_brute_force(name: str, n: int, q: int, k: int) -> None:
    rng = np.random.default_rng(n + q + k)
    gallery, queries = unit(rng, n, 16), unit(rng, q, 16)
    index = create_index(name, gallery)
    assert len(index) == n
    sims, rows = index.search(queries, k)
    want_sims, _ = brute_force(gallery, queries, k)
    assert sims.shape == rows.shape == (q, k) and rows.dtype == np.int64
    # Rows may differ from brute force only where two entries tie to within float32 rounding
    # (BLAS kernels differ by CPU): each returned row must truly score its rank's similarity.
    np.testing.assert_allclose(
        np.einsum("qd,qkd->qk", queries.astype(np.float64), gallery[rows].astype(np.float64)),
        want_sims,
        atol=1e-5,
    )
    assert all(len(set(r)) == len(r) for r in rows.tolist())
    np.testing.assert_allclose(sims, want_sims, atol=1e-5)


def test_exact_and_faiss_agree_on_batches_over_a_block() -> None:
    rng = np.random.default_rng(1)
    gallery, queries = unit(rng, 1000, 32), unit(rng, QUERY_BLOCK * 2 + 5, 32)
    a = create_index("exact", gallery).search(queries, 8)
    b = create_index("faiss", gallery).search(queries, 8)
    np.testing.assert_allclose(
        np.einsum("qd,qkd->qk", queries.astype(np.float64), gallery[b[1]].astype(np.float64)),
        a[0],
        atol=1e-5,
    )  # ties may swap
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)


def test_k_larger_than_gallery_and_empty_gallery() -> None:
    rng = np.random.default_rng(2)
    gallery = unit(rng, 3, 8)
    for name in ("exact", "faiss", "half"):
        sims, rows = create_index(name, gallery).search(unit(rng, 2, 8), 10)
        assert rows.shape == (2, 3) and sorted(rows[0].tolist()) == [0, 1, 2]
        assert (np.diff(sims, axis=1) <= 1e-6).all()
        empty = create_index(name, np.zeros((0, 8), np.float32))
        sims, rows = empty.search(unit(rng, 2, 8), 3)
        assert len(empty) == 0 and rows.shape == (2, 0)


def test_single_vector_query_and_bad_shapes() -> None:
    rng = np.random.default_rng(3)
    index = ExactIndex(unit(rng, 10, 8))
    sims, rows = index.search(index.vectors[4], 1)  # a 1-D query is one query
    assert rows.tolist() == [[4]] and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ConfigError, match=r"queries.*\(N, 8\)"):
        index.search(unit(rng, 2, 9), 1)
    with pytest.raises(ConfigError, match="unknown back end 'annoy'"):
        create_index("annoy", index.vectors)
    assert {"exact", "faiss", "half", "auto"} <= set(available_indexes())
    assert type(create_index("auto", index.vectors)).__name__ == "ExactIndex"  # small: numpy


@pytest.mark.parametrize("queries", [1, HALF_MAX_QUERIES, HALF_MAX_QUERIES + 1])
def test_half_re_ranks_its_float16_candidates_to_the_exact_answer(queries: int) -> None:
    """A gallery much larger than k + HALF_EXTRA, with near-duplicates of each query (as a
    person's own reference faces are): the float32 re-ranking gives exact's rows and scores."""
    rng = np.random.default_rng(4)
    gallery = unit(rng, 20_000, 64)
    q = unit(rng, queries, 64)
    near = q[:, None, :] + 0.02 * rng.normal(size=(queries, 20, 64)).astype(np.float32)
    gallery[: queries * 20] = (near / np.linalg.norm(near, axis=2, keepdims=True)).reshape(-1, 64)
    half, exact = HalfIndex(gallery), ExactIndex(gallery)
    sims, rows = half.search(q, 10)
    want_sims, _ = exact.search(q, 10)
    np.testing.assert_allclose(
        np.einsum("qd,qkd->qk", q.astype(np.float64), gallery[rows].astype(np.float64)),
        want_sims,
        atol=1e-6,
    )  # ties may swap
    np.testing.assert_allclose(sims, want_sims, atol=1e-6)
    assert sims.dtype == np.float32 and rows.dtype == np.int64
    # The float16 scan alone is not exact: re-ranking is what makes the scores float32 ones.
    raw, _ = half.index.search(q, 10 + HALF_EXTRA)
    assert np.abs(raw[:, :10] - want_sims).max() > 1e-6


def test_auto_uses_half_for_large_galleries(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    gallery = unit(rng, 100, 8)
    assert type(create_index("auto", gallery)).__name__ == "ExactIndex"
    monkeypatch.setattr(index_module, "AUTO_HALF_ABOVE", 50)
    assert type(create_index("auto", gallery)).__name__ == "HalfIndex"
