"""The open-set decision's calibration for one gallery as it stands now.

Calibrating reads every reference face's embedding and scores each against the other people
(``decision.calibrate``), so it is done again only when the gallery's references change (people
added or removed, faces added), by one thread while the others wait and then reuse it; the
people's negative faces (corrections) are read again only when the gallery changes."""

from __future__ import annotations

import threading

import numpy as np

from facemetric.gallery.live import LiveGallery
from facemetric.gallery.store import GalleryStore
from facemetric.recognize.decision import Calibration, DecisionSettings, calibrate


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
