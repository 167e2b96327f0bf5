"""The one-scan person scores (``facemetric.gallery.persons``) give the decision exactly what the
search hits gave it (``per_person_top_k`` over the index's hits): same people, scores, best
faces, negatives and decisions, on random galleries with uneven people, strangers and
negative faces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facemetric.gallery.persons import PersonLayout, best_per_person, top_people
from facemetric.gallery.store import GalleryStore
from facemetric.recognize.decision import DecisionSettings
from facemetric.recognize.recognizer import Recognizer
from test_recognize import LookupEmbedder


def decisions(rec: Recognizer, queries: np.ndarray, hits: bool, **kw: Any) -> list[Any]:
    gallery = rec.gallery.current()
    if hits:  # the hits path, as an approximate index takes it
        original = gallery.top_people
        gallery.top_people = lambda *a, **k: None  # type: ignore[method-assign]
        try:
            return rec.decide(queries, **kw)
        finally:
            gallery.top_people = original  # type: ignore[method-assign]
    return rec.decide(queries, **kw)


@pytest.mark.parametrize(
    ("seed", "agree", "n_people"), [(0, 1, 25), (1, 2, 25), (2, 3, 120), (3, 2, 120)]
)
def test_one_scan_decides_as_the_hits_did(
    tmp_path: Path, seed: int, agree: int, n_people: int
) -> None:
    # 120 people of ~2.5 faces: a stranger's hits hold many people by one face only, whose
    # score the hits bound from above (their next face counts as the lowest hit)
    rng = np.random.default_rng(seed)
    n_ref, n_neg, n_q = 300, 12, 60
    centres = rng.normal(size=(n_people, 16))
    people = rng.integers(0, n_people, n_ref + n_neg)
    table = centres[people] + rng.normal(scale=0.9, size=(n_ref + n_neg, 16))
    probes = centres[rng.integers(0, n_people, n_q // 2)] + rng.normal(
        scale=0.9, size=(n_q // 2, 16)
    )
    strangers = rng.normal(size=(n_q - n_q // 2, 16))
    lookup = LookupEmbedder(np.vstack([table, probes, strangers]))
    store = GalleryStore(tmp_path / "g.db")
    for row in range(n_ref):
        store.add_faces(f"p{people[row]:02d}", [lookup.crop(row)], lookup)
    for row in range(n_ref, n_ref + n_neg):
        store.add_faces(f"p{people[row]:02d}", [lookup.crop(row)], lookup, kind="negative")
    settings = DecisionSettings(agree=agree, margin=0.005)
    rec = Recognizer(lookup, store, detector=None, top_k=3, decision=settings)  # type: ignore[arg-type]
    queries = lookup.table[n_ref + n_neg :].astype(np.float32)
    for kw in ({}, {"threshold": 0.4}, {"top_k": 6}):
        new = decisions(rec, queries, hits=False, **kw)
        old = decisions(rec, queries, hits=True, **kw)
        for (c_new, d_new), (c_old, d_old) in zip(new, old, strict=True):
            assert [c.identity for c in c_new] == [c.identity for c in c_old]
            assert [c.face_id for c in c_new] == [c.face_id for c in c_old]
            for a, b in zip(c_new, c_old, strict=True):
                assert a.similarity == pytest.approx(b.similarity, abs=1e-5)
                assert a.best == pytest.approx(b.best, abs=1e-5)
                assert (a.negative is None) == (b.negative is None)
                if a.negative is not None:
                    assert a.negative == pytest.approx(b.negative, abs=1e-5)
            assert d_new.reason == d_old.reason and d_new.identity == d_old.identity
            assert d_new.score == pytest.approx(d_old.score, abs=1e-5)
    reasons = {d.reason for _, d in new}
    assert "match" in reasons and len(reasons) >= 2  # the galleries exercise more than one rule


def test_best_per_person_counts_repeated_values() -> None:
    sims = np.array([[0.5, 0.9, 0.9, 0.1, 0.3, 0.3, 0.3, 0.7]])
    starts, counts = np.array([0, 3, 4]), np.array([3, 1, 4])
    got = best_per_person(sims, starts, counts, 3)
    want = [[0.9, 0.9, 0.5], [0.1, -np.inf, -np.inf], [0.7, 0.3, 0.3]]
    np.testing.assert_allclose(got[0], want)


def test_top_people_against_brute_force_when_every_hit_is_held() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(200, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    people = rng.integers(0, 9, 200)
    names = [f"n{i}" for i in range(9)]
    negatives = {"n3": vectors[:2] * -1, "n5": vectors[5:9]}
    layout = PersonLayout.build(names, np.arange(200) + 100, people, vectors, negatives)
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    got = top_people(layout, queries, k_hits=200, k_people=4, agree=2)
    for i, q in enumerate(queries):
        s = vectors @ q
        score = {p: np.sort(s[people == p])[::-1][:2].mean() for p in range(9)}
        ranked = sorted(score, key=lambda p: -score[p])[:4]
        assert got.people[i].tolist() == ranked
        np.testing.assert_allclose(got.scores[i], [score[p] for p in ranked], atol=1e-5)
        best_rows = [int(np.flatnonzero(people == p)[np.argmax(s[people == p])]) for p in ranked]
        assert got.face_ids[i].tolist() == [r + 100 for r in best_rows]
        for j, p in enumerate(ranked):
            neg = negatives.get(names[p])
            if neg is None:
                assert np.isnan(got.negative[i, j])
            else:
                assert got.negative[i, j] == pytest.approx(float(np.max(neg @ q)), abs=1e-5)
