"""The open-set decision's calibration (its rules: ``decision.py``'s docstring): the threshold a
gallery gets for a false positive identification rate per search, fitted on its own references,
and ``GalleryCalibration``, which keeps it for one gallery as it stands now.

Calibrating reads every reference face's embedding and scores each against the other people, so
``GalleryCalibration`` does it again only when the gallery's references change (people added or
removed, faces added), by one thread while the others wait and then reuse it; the people's
negative faces (corrections) are read again only when the gallery changes."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from statistics import NormalDist
from typing import Any

import numpy as np

from facemetric.gallery.live import LiveGallery
from facemetric.gallery.store import GalleryStore
from facemetric.recognize.decision import Calibration, DecisionSettings, adjust

MIN_SCORES = 50  # impostor scores below which the gallery cannot calibrate (the floor rules)
LOO_PROBES = 250  # probes from which the direct estimate is trusted alone (see docs/openset.md)
TAIL_QUANTILES = (0.90, 0.99)  # where the Gaussian is fitted to the impostor tail


def tail_threshold(scores: np.ndarray, p: float) -> float:
    """The score a Gaussian fitted to the upper tail of ``scores`` exceeds with chance ``p``."""
    lo, hi = np.quantile(scores, TAIL_QUANTILES)
    z_lo, z_hi = (NormalDist().inv_cdf(q) for q in TAIL_QUANTILES)
    sigma = max(float(hi - lo) / (z_hi - z_lo), 1e-6)
    mu = float(lo) - sigma * z_lo
    return mu + sigma * NormalDist().inv_cdf(1.0 - p)


def per_person_chance(fpir: float, people: int) -> float:
    """The chance of beating one person that makes ``fpir`` over ``people`` people."""
    return 1.0 - (1.0 - fpir) ** (1.0 / max(1, people))


def impostor_matrix(
    vectors: np.ndarray, labels: np.ndarray, agree: int, probes: np.ndarray, people: np.ndarray
) -> np.ndarray:
    """(len(probes), len(people)): each reference row of ``probes`` scored against each person
    of ``people`` (label values) as ``decide`` scores a face; NaN against their own person."""
    out = np.full((len(probes), len(people)), np.nan)
    q = vectors[probes]
    for j, person in enumerate(people):
        cols = vectors[labels == person]
        k = min(agree, cols.shape[0])
        best = -np.sort(-(q @ cols.T), axis=1)[:, :k].mean(axis=1)
        out[:, j] = np.where(labels[probes] == person, np.nan, best)
    return out


def search_figures(matrix: np.ndarray, cohort_size: int) -> tuple[np.ndarray, ...]:
    """Per probe row of ``matrix`` (NaN: not a candidate): the best score, the second, and
    the cohort's (the mean of the next ``cohort_size`` after the best; NaN when none)."""
    filled = np.where(np.isnan(matrix), -np.inf, matrix)
    ranked = -np.sort(-filled, axis=1)
    s1 = ranked[:, 0]
    s2 = ranked[:, 1] if ranked.shape[1] > 1 else np.full(len(s1), -np.inf)
    rest = ranked[:, 1 : 1 + cohort_size]
    valid = np.isfinite(rest)
    count = valid.sum(axis=1)
    total = np.where(valid, rest, 0.0).sum(axis=1)
    cohort = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return np.where(np.isfinite(s1), s1, -2.0), np.where(np.isfinite(s2), s2, -2.0), cohort


def leave_one_out_threshold(
    matrix: np.ndarray,
    fpir: float,
    margin: float,
    cohort: float = 0.0,
    cohort_size: int = 3,
    cohort_mean: float = 0.0,
) -> float:
    """The lowest threshold at which at most ``fpir`` of the probes (each a stranger to every
    other person) would be named under the margin rule (scores adjusted by the cohort)."""
    s1, s2, coh = search_figures(matrix, cohort_size)
    named_at = np.where(s1 - s2 >= margin, adjust(s1, coh, cohort, cohort_mean), -2.0)
    return float(np.quantile(named_at, 1.0 - fpir))


def calibrate(
    vectors: np.ndarray,
    labels: Sequence[Any] | np.ndarray,
    floor: float,
    settings: DecisionSettings | None = None,
    generation: int = -1,
) -> Calibration:
    """The threshold for ``settings.fpir`` per search over the people of ``labels`` (one label
    per reference row of ``vectors``), never below ``floor``; see the module's docstring."""
    settings = settings or DecisionSettings()
    lab = np.asarray(labels)
    names, codes = np.unique(lab, return_inverse=True) if len(lab) else (np.zeros(0), lab)
    n_people = len(names)
    base = Calibration(float(floor), settings.fpir, n_people, "floor", float(floor))
    if n_people < 2:
        return _with(base, generation=generation)
    rng = np.random.default_rng(settings.seed)
    rows = np.arange(len(codes))
    if len(rows) > settings.max_probes:
        rows = rng.choice(rows, settings.max_probes, replace=False)
    people = np.arange(n_people)
    if n_people > settings.max_people:
        people = rng.choice(people, settings.max_people, replace=False)
    vecs = np.asarray(vectors, np.float32)
    matrix = impostor_matrix(vecs, np.asarray(codes), settings.agree, rows, people)
    scores = matrix[~np.isnan(matrix)]
    if scores.size < MIN_SCORES:
        return _with(base, scores=int(scores.size), generation=generation)
    tail = min(tail_threshold(scores, per_person_chance(settings.fpir, n_people)), 1.0)
    # The direct estimate needs every person (a max over a sample of people is too low) and
    # is trusted in proportion to its probes, fully from LOO_PROBES on.
    weight = 0.0 if len(people) < n_people else min(1.0, len(rows) / LOO_PROBES)
    # The cohort's share counts as much as the direct estimate (the tail knows no cohort);
    # its zero point is the gallery's own mean, so the tail's units still hold.
    share = settings.cohort * weight
    coh = search_figures(matrix, settings.cohort_size)[2]
    known = np.isfinite(coh)
    coh_mean = float(coh[known].mean()) if share and known.any() else 0.0
    share = share if known.any() else 0.0
    direct = (
        leave_one_out_threshold(
            matrix, settings.fpir, settings.margin, share, settings.cohort_size, coh_mean
        )
        if weight
        else tail
    )
    fitted = weight * direct + (1.0 - weight) * tail
    return Calibration(
        max(fitted, float(floor)),
        settings.fpir,
        n_people,
        "gallery",
        float(floor),
        int(scores.size),
        fitted,
        generation,
        tail=tail,
        direct=direct if weight else None,
        weight=weight,
        cohort=share,
        cohort_mean=coh_mean,
    )


def _with(cal: Calibration, **changes: Any) -> Calibration:
    return replace(cal, **changes)


class GalleryCalibration:
    """The calibration (and negatives) of the gallery of ``store`` for the model ``model_key``
    whose per-pair threshold is ``floor``, cached by the gallery's generation."""

    def __init__(
        self, store: GalleryStore, model_key: str, floor: float, settings: DecisionSettings
    ) -> None:
        self.store = store
        self.model_key = model_key
        self.floor = float(floor)
        self.settings = settings
        self._lock = threading.Lock()
        self._calibrate_lock = threading.Lock()
        self._calibration: Calibration | None = None
        self._calibrated_for: tuple[int, int] | None = None
        self._calibrated_at = -2
        self._negatives: tuple[int, dict[str, np.ndarray]] = (-2, {})

    @property
    def last(self) -> Calibration | None:
        """The calibration last computed (None before the first); never reads the database."""
        return self._calibration

    def now(self, gallery: LiveGallery) -> Calibration:
        """The calibration for ``gallery`` as it is now (the gallery just brought up to date)."""
        generation = gallery.generation
        with self._lock:
            if self._calibration is not None and self._calibrated_at == generation:
                return self._calibration
        with self._calibrate_lock:  # one thread calibrates, the others then reuse it
            refs = gallery.reference_faces()
            signature = (sum(len(v) for v in refs.values()), sum(sum(v) for v in refs.values()))
            with self._lock:
                if self._calibration is not None and self._calibrated_for == signature:
                    self._calibrated_at = generation  # only negatives or embeddings changed
                    return self._calibration
            cal = self._calibrate(gallery, refs)
            with self._lock:
                self._calibration, self._calibrated_for = cal, signature
                self._calibrated_at = generation
            return cal

    def _calibrate(self, gallery: LiveGallery, refs: dict[str, list[int]]) -> Calibration:
        settings = self.settings
        ids = [i for v in refs.values() for i in v]
        if len(refs) < 2:
            return calibrate(np.zeros((0, 1)), [], self.floor, settings, gallery.generation)
        rng = np.random.default_rng(settings.seed)
        names = sorted(refs)
        if len(names) > settings.max_people:  # bounded work for a large gallery
            names = sorted(rng.choice(names, settings.max_people, replace=False).tolist())
            ids = [i for n in names for i in refs[n]]
        rows = self.store.embeddings(self.model_key, compute_missing=False, face_ids=ids)
        return calibrate(rows.vectors, rows.names, self.floor, settings, gallery.generation)

    def negatives(self, gallery: LiveGallery) -> dict[str, np.ndarray]:
        """Each person's negative faces' embeddings (person -> rows); {} when the decision
        does not use negatives."""
        if not self.settings.use_negatives:
            return {}
        generation, cached = self._negatives
        if generation != gallery.generation:
            cached = gallery.negatives()
            self._negatives = (gallery.generation, cached)
        return cached
