"""The tracker's maths against brute-force versions on tiny inputs: the association (the best
total matching, never across different faces), a track's evidence (the weighted mean of its
frames) and its decision (the one ``Decider``, no label kept against it).

These replace the tests of the old EMA + hysteresis tracker (``steadying`` after a match,
a vetoed label let go): a track's label is now the decision over its evidence, so a name is
never carried by hysteresis, and ``steadying`` only holds a name back for ``min_frames``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facemetric.recognize.decision import Calibration, Decider, DecisionSettings
from facemetric.recognize.tracking import (
    STEADYING,
    Track,
    TrackSettings,
    associate,
    iou,
    pair_weights,
    signature,
    track_evidence,
)


def brute_matching(weights: np.ndarray) -> float:
    """The largest total weight of any matching of allowed (weight > 0) pairs, by trying all."""
    rows, cols = weights.shape
    best = 0.0
    pairs = [(r, c) for r in range(rows) for c in range(cols) if weights[r, c] > 0]
    for size in range(min(rows, cols) + 1):
        for chosen in itertools.combinations(pairs, size):
            if len({r for r, _ in chosen}) < size or len({c for _, c in chosen}) < size:
                continue
            best = max(best, sum(weights[r, c] for r, c in chosen))
    return best


def random_faces(rng: np.random.Generator, n: int, dim: int = 6) -> tuple[np.ndarray, list]:
    emb = rng.normal(size=(n, dim))
    boxes = []
    for _ in range(n):
        x, y = rng.uniform(0, 60, 2)
        s = rng.uniform(20, 40)
        boxes.append((x, y, x + s, y + s))
    return emb, boxes


@pytest.mark.parametrize("seed", range(40))
def test_association_is_the_best_matching_and_never_joins_different_faces(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tracks, faces = int(rng.integers(0, 5)), int(rng.integers(0, 5))
    t_emb, t_box = random_faces(rng, tracks)
    f_emb, f_box = random_faces(rng, faces)
    if tracks and faces:  # some faces are a track's face again, a little moved
        for f in range(min(tracks, faces) // 2 + 1):
            f_emb[f] = t_emb[f] + rng.normal(scale=0.05, size=t_emb.shape[1])
    same_face = 0.8
    weights = pair_weights(t_emb, t_box, f_emb, f_box, same_face)
    assert weights.shape == (tracks, faces)
    pairs = associate(weights)
    assert len({t for t, _ in pairs}) == len(pairs) == len({f for _, f in pairs})
    total = sum(weights[t, f] for t, f in pairs)
    assert total == pytest.approx(brute_matching(weights))
    for t, f in pairs:  # the gate: only the same face (cosine), wherever the box is
        cos = t_emb[t] @ f_emb[f] / np.linalg.norm(t_emb[t]) / np.linalg.norm(f_emb[f])
        assert cos >= same_face
        want = 1.0 + cos + iou(t_box[t], f_box[f])
        assert weights[t, f] == pytest.approx(want)


def test_a_different_face_at_the_same_place_is_never_the_same_track() -> None:
    box = (10.0, 10.0, 60.0, 60.0)
    ann, stranger = np.eye(4)[0], np.eye(4)[1]
    weights = pair_weights(ann[None], [box], stranger[None], [box], 0.9)
    assert associate(weights) == []  # IoU 1.0 and still a new track
    weights = pair_weights(ann[None], [box], ann[None] * 2, [(300, 300, 350, 350)], 0.9)
    assert associate(weights) == [(0, 0)]  # the same face, found again elsewhere


@pytest.mark.parametrize("seed", range(10))
def test_evidence_is_the_weighted_mean_of_the_best_frames(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, keep = int(rng.integers(1, 9)), int(rng.integers(1, 5))
    emb = rng.normal(size=(n, 5))
    weights = rng.uniform(0.1, 1.0, n)
    got = track_evidence(emb, weights, keep)
    best = sorted(range(n), key=lambda i: -weights[i])[:keep]
    total = sum(weights[i] for i in best)
    want = sum(weights[i] * emb[i] / np.linalg.norm(emb[i]) for i in best) / total
    assert got == pytest.approx(want)
    ref = rng.normal(size=5)
    ref /= np.linalg.norm(ref)
    # its similarity to a reference is the weighted mean of the frames' similarities
    frames = [float(emb[i] @ ref / np.linalg.norm(emb[i])) for i in best]
    assert float(got @ ref) == pytest.approx(
        sum(weights[i] * s for i, s in zip(best, frames, strict=True)) / total
    )
    again = track_evidence(emb, weights, keep, renormalise=True)
    assert np.linalg.norm(again) == pytest.approx(1.0)


def decider(threshold: float) -> Decider:
    cal = Calibration(threshold, 0.01, 3, "given", threshold)
    return Decider(cal, DecisionSettings(cohort=0.0, margin=0.01))


def brute_decision(evidence: np.ndarray, refs: dict[str, np.ndarray], t: float, agree: int):
    """Who the track is, by hand: each person's score is the mean of their best ``agree``
    references' similarity to the evidence; named when the best reaches ``t`` and leads the
    next by the margin (0.01)."""
    scores = {}
    for name, rows in refs.items():
        sims = sorted((float(evidence @ r) for r in rows), reverse=True)[:agree]
        scores[name] = sum(sims) / len(sims)
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    (best, s1), (_, s2) = ranked[0], ranked[1]
    return best if s1 >= t and s1 - s2 >= 0.01 else None


@pytest.mark.parametrize("seed", range(20))
def test_a_tracks_name_is_the_decision_over_its_evidence(seed: int) -> None:
    rng = np.random.default_rng(seed)
    refs = {p: rng.normal(size=(3, 8)) for p in ("ada", "bob", "cy")}
    refs = {p: r / np.linalg.norm(r, axis=1, keepdims=True) for p, r in refs.items()}
    who = ["ada", "bob", "cy"][seed % 3]
    frames = refs[who][rng.integers(0, 3, 4)] + rng.normal(scale=0.3, size=(4, 8))
    weights = rng.uniform(0.2, 1.0, 4)
    t = float(rng.uniform(0.3, 0.8))
    dec = decider(t)
    track = Track(1, (0, 0, 10, 10), 0.0, 0.0)
    for f, w in zip(frames, weights, strict=True):
        track.add(f, float(w), keep=8)
    scores = []
    for name, rows in refs.items():
        sims = sorted((float(track.mean @ r) for r in rows), reverse=True)[:2]
        scores.append((name, sum(sims) / 2))
    track.decision = dec.decide(sorted(scores, key=lambda s: -s[1]))
    assert track.decision.identity == brute_decision(track.mean, refs, t, 2)
    name, reason = track.label(min_frames=2)
    assert name == track.decision.identity and reason == track.decision.reason


def test_no_label_is_kept_against_the_decision_and_steadying_only_delays() -> None:
    dec = decider(0.9)
    track = Track(1, (0, 0, 10, 10), 0.0, 0.0)
    track.add(np.ones(4), 1.0, keep=8)
    track.decision = dec.decide([("ada", 0.95), ("bob", 0.5)])
    assert track.label(min_frames=2) == (None, STEADYING)  # one frame: the name waits
    track.add(np.ones(4), 1.0, keep=8)
    assert track.label(min_frames=2) == ("ada", "match")
    # the next decision (a stranger's frames pulled the mean down) names nobody: at once
    track.decision = dec.decide([("ada", 0.899), ("bob", 0.5)])
    assert track.label(min_frames=2) == (None, "below_threshold")
    settings = TrackSettings(settle=0.01)
    assert not track.settled(settings)  # 0.001 under the threshold: embed every frame
    track.decision = dec.decide([("ada", 0.95), ("bob", 0.5)])
    assert track.settled(settings)


def test_the_crop_signature_tells_a_cut_from_the_same_face() -> None:
    rng = np.random.default_rng(0)
    face = rng.integers(0, 255, (150, 150, 3)).astype(np.uint8)
    other = rng.integers(0, 255, (150, 150, 3)).astype(np.uint8)
    noisy = np.clip(face.astype(int) + rng.integers(-8, 8, face.shape), 0, 255).astype(np.uint8)
    assert float(signature(face) @ signature(noisy)) > 0.95
    assert float(signature(face) @ signature(other)) < 0.5
