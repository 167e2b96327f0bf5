"""The Recognizer: photo or frame -> every face -> who it is (or unknown).

One object serves the CLI and the web app: detect every face, align it, embed all faces of the
frame in one batch, search the gallery and report, per face, the best identities (one candidate per
person, scored by the mean of their best references). Whether a face is someone is the open-set
decision of ``recognize/decision.py`` (a threshold calibrated for the gallery's size, the margin to
the next person, the person's negative faces), recalibrated whenever the gallery's references
change; otherwise it is reported as unknown, never as the nearest person, with the reason.
Thread-safe: the web app calls it from several worker threads.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.errors import ConfigError, FacemetricError, FaceNotFoundError, GalleryError
from facemetric.gallery.index import check_index_name
from facemetric.gallery.live import FLIP_PROBES, LiveGallery
from facemetric.gallery.records import FaceRecord
from facemetric.gallery.store import GalleryStore, model_key
from facemetric.recognize.calibration import GalleryCalibration
from facemetric.recognize.decision import Calibration, Decider, Decision, DecisionSettings
from facemetric.recognize.matches import Candidate, EnrolResult, FaceMatch, candidates_from_hits

if TYPE_CHECKING:
    from facemetric.data.detection import FaceDetector
    from facemetric.models.inference import Embedder, Engine


class Recognizer:
    """Detect, align, embed and match faces against a ``GalleryStore``."""

    def __init__(
        self,
        embedder: Embedder,
        store: GalleryStore,
        detector: FaceDetector,
        threshold: float | None = None,
        top_k: int = 3,
        flip: bool = False,
        index: str = "auto",
        decision: DecisionSettings | None = None,
    ) -> None:
        if top_k < 1:
            raise ConfigError(f"top_k: must be at least 1, got {top_k}")
        self.embedder = embedder
        self.store = store
        self.detector = detector
        self._threshold = threshold
        self.top_k = top_k
        self.flip = flip
        self.index_name = check_index_name(index)
        self.model_key = model_key(embedder)
        # what embedded the probes: the model, and mirror-averaging when ``flip`` (the gallery's
        # faces are never embedded so: a ``NAME:flip`` model embeds both alike)
        self.probe_key = self.model_key + (FLIP_PROBES if flip else "")
        self._lock = threading.RLock()
        self._detect_lock = threading.Lock()
        self._gallery: LiveGallery | None = None
        # faces that match nobody go to it when set (facemetric.unknown.UnknownKeeper)
        self.unknown_keeper: Any = None
        self.decision_settings = decision or DecisionSettings()
        self._calibrated = GalleryCalibration(
            store, self.model_key, float(embedder.threshold), self.decision_settings
        )

    @classmethod
    def from_paths(
        cls,
        model: str | Path | None = None,
        db: str | Path | None = None,
        engine: Engine = "auto",
        detector: str = "retinaface",
        create: bool = True,
        **kwargs: Any,
    ) -> Recognizer:
        """The promoted model (or ``model``) with the default gallery (or ``db``); with
        ``create=False`` a missing gallery is an error rather than a new empty one."""
        from facemetric.data.detect import create_detector
        from facemetric.models import load_embedder
        from facemetric.paths import default_gallery_path

        store = GalleryStore(db if db is not None else default_gallery_path(), create=create)
        embedder = load_embedder(model, engine=engine)
        return cls(embedder, store, create_detector(detector), **kwargs)

    @property
    def threshold(self) -> float:
        """The match threshold: the override given, else the model's (``threshold_source``
        tells whether that one was calibrated)."""
        if self._threshold is not None:
            return float(self._threshold)
        return float(self.embedder.threshold)

    @property
    def threshold_source(self) -> str:
        """Where the match threshold comes from: ``given`` (an override), ``calibrated`` (the
        model's, calibrated at a false accept rate) or ``uncalibrated`` (the model's, never
        calibrated: it may call strangers someone, so say so wherever it decides)."""
        if self._threshold is not None:
            return "given"
        return "calibrated" if self._model_calibrated() else "uncalibrated"

    def _model_calibrated(self) -> bool:
        from facemetric.models.checkpoint import is_calibrated  # torch: only once a model runs

        return is_calibrated(getattr(self.embedder, "meta", None) or {}, self.embedder.threshold)

    @property
    def calibration(self) -> dict[str, Any] | None:
        """How the model's threshold was calibrated (``meta["calibration"]``), None if never."""
        if not self._model_calibrated():
            return None
        found = self.embedder.meta.get("calibration")
        return dict(found) if isinstance(found, dict) else None

    def threshold_warning(self, model: str | None = None) -> str | None:
        """One line saying that matches are decided by a threshold never calibrated for this
        model, naming ``model`` (default: its checkpoint file) and how to calibrate it; None
        when the threshold was calibrated or given explicitly."""
        if self.threshold_source != "uncalibrated":
            return None
        model = model or str(getattr(self.embedder, "checkpoint_path", "MODEL"))
        return (
            f"{model}: match threshold {self.threshold:.4f} was never calibrated for this model, "
            f"so strangers may be called someone; calibrate it with: facemetric evaluate "
            f"{model} --identify PEOPLE --calibrate (PEOPLE: a folder of person/photo.jpg)"
        )

    # ---- the open-set decision -------------------------------------------------------------------
    def calibration_now(self, gallery: LiveGallery | None = None) -> Calibration:
        """The decision's calibration for the gallery as it is now (computed again when its
        references changed: people added or removed, faces added); ``gallery``: the gallery
        just brought up to date (saves checking it again)."""
        return self._calibrated.now(gallery if gallery is not None else self._current())

    def decider(self, gallery: LiveGallery | None = None) -> Decider:
        """The decision as it stands for the current gallery (and a ``threshold`` given)."""
        return Decider(self.calibration_now(gallery), self.decision_settings, self._threshold)

    @property
    def decision_threshold(self) -> float:
        """The threshold person scores must reach in this gallery now (calibrated for its
        size, or the one given)."""
        return self.decider().active_threshold

    @property
    def last_threshold(self) -> float:
        """The decision threshold last calibrated (the given one, or the model's before any
        search): never reads the database, for answers built on the event loop."""
        if self._threshold is not None:
            return float(self._threshold)
        cal = self._calibrated.last
        return float(cal.threshold) if cal is not None else float(self.embedder.threshold)

    @property
    def input_size(self) -> int:
        return int(self.embedder.spec.input_size)

    @property
    def crop_for(self) -> tuple[str, int]:
        """The template and size of the crops this recognizer's model needs."""
        return self.embedder.spec.alignment, self.input_size

    # ---- gallery snapshot -----------------------------------------------------------------------
    @property
    def gallery(self) -> LiveGallery:
        """The gallery's faces for this model, in memory (loaded on first use)."""
        if self._gallery is None:
            with self._lock:
                if self._gallery is None:
                    self._gallery = LiveGallery(
                        self.store, self.embedder, self.index_name, embed_lock=self._lock
                    )
        return self._gallery

    @property
    def loaded_gallery(self) -> LiveGallery | None:
        """The gallery in memory if it was loaded (never loads it)."""
        return self._gallery

    def reload(self) -> None:
        """Bring the loaded gallery up to date with the store (only what changed is read;
        faces that lack this model's embedding are embedded)."""
        self.gallery.refresh()

    def _current(self) -> LiveGallery:
        return self.gallery.current()

    def close(self) -> None:
        """Stop following the gallery (``follow``)."""
        if self._gallery is not None:
            self._gallery.close()

    # ---- recognition ----------------------------------------------------------------------------
    def detect(self, image: np.ndarray, detect_size: int | None = None) -> list[Any]:
        """Every face of ``image`` aligned for this model (its template and size), largest
        first (``detect_size``: the detector's working size for this call, default its own)."""
        from facemetric.data.align import detect_and_align

        image = _check_image(image)
        template, size = self.crop_for
        with self._detect_lock:
            return detect_and_align(
                image, self.detector, size=size, max_side=detect_size, template=template
            )

    def embed(self, crops: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.embedder.embed(crops, flip=self.flip)

    def match(
        self, embeddings: np.ndarray, threshold: float | None = None, top_k: int | None = None
    ) -> list[tuple[list[Candidate], bool]]:
        """Per embedding: the best people (one per person) and whether the best one matches."""
        return [(c, d.is_match) for c, d in self.decide(embeddings, threshold, top_k)]

    def decide(
        self, embeddings: np.ndarray, threshold: float | None = None, top_k: int | None = None
    ) -> list[tuple[list[Candidate], Decision]]:
        """Per embedding: the best people (one per person, best first; the named one first
        when the decision named someone) and the decision."""
        k = self.top_k if top_k is None else int(top_k)
        if k < 1:
            raise ConfigError(f"top_k: must be at least 1, got {k}")
        gallery = self._current()
        decider = self.decider(gallery)
        if threshold is not None:
            decider.threshold = float(threshold)
        if len(gallery) == 0 or len(embeddings) == 0:
            return [([], decider.decide([])) for _ in range(len(embeddings))]
        # The decision looks at more people than it shows (vetoes, the margin, the cohort).
        people = max(k, self.decision_settings.candidates)
        k_hits = min(len(gallery), people * gallery.faces_per_person)
        agree = self.decision_settings.agree
        use_neg = self.decision_settings.use_negatives
        found = gallery.top_people(embeddings, k_hits, people, agree, use_neg, self.probe_key)
        if found is None:  # an approximate index: from its hits
            negatives = self._calibrated.negatives(gallery)
            every = candidates_from_hits(
                gallery, embeddings, k_hits, people, agree, self.probe_key, negatives
            )
        else:
            layout, top = found
            every = [
                [
                    Candidate(layout.names[p], s, f, b, None if n != n else n)
                    for p, s, f, b, n in zip(
                        top.people[i].tolist(),
                        top.scores[i].tolist(),
                        top.face_ids[i].tolist(),
                        top.best[i].tolist(),
                        top.negative[i].tolist(),
                        strict=True,
                    )
                    if p >= 0
                ]
                for i in range(len(embeddings))
            ]
        out = []
        for cands in every:
            decision = decider.decide(
                [(c.identity, c.similarity) for c in cands],
                {c.identity: c.negative for c in cands if c.negative is not None},
                {c.identity: float(c.best or c.similarity) for c in cands},
            )
            if decision.identity is not None and cands[0].identity != decision.identity:
                cands.sort(key=lambda c: c.identity != decision.identity)
            out.append((cands[:k], decision))
        return out

    def recognize(
        self,
        image: np.ndarray,
        threshold: float | None = None,
        top_k: int | None = None,
        detect_size: int | None = None,
        source: str | None = None,
    ) -> list[FaceMatch]:
        """Every face in ``image`` (HxWx3 uint8 RGB) with who it is; [] when there is none.
        Faces that match nobody are kept by ``unknown_keeper`` when one is set (``source``:
        where the image came from).

        ``detect_size`` scales the image down to that longest side for detection only (webcam
        frames: 320 is 2.6x faster than 640 for RetinaFace here); crops come from full size."""
        return self.recognize_embedded(image, threshold, top_k, detect_size, source)[0]

    def recognize_embedded(
        self,
        image: np.ndarray,
        threshold: float | None = None,
        top_k: int | None = None,
        detect_size: int | None = None,
        source: str | None = None,
    ) -> tuple[list[FaceMatch], np.ndarray]:
        """``recognize`` and the faces' embeddings (events keep an unknown face's)."""
        faces = self.detect(image, detect_size)
        if not faces:
            return [], np.zeros((0, int(self.embedder.spec.embedding_dim)), np.float32)
        emb = self.embed(np.stack([f.crop for f in faces]))
        results = []
        for face, (cands, decision) in zip(faces, self.decide(emb, threshold, top_k), strict=True):
            ok = decision.is_match
            best = cands[0] if cands else None
            det = face.detection
            results.append(
                FaceMatch(
                    box=tuple(float(v) for v in det.box),  # type: ignore[arg-type]
                    landmarks=np.asarray(det.landmarks, np.float32),
                    score=float(det.score),
                    identity=decision.identity,
                    similarity=best.similarity if best else -1.0,
                    is_match=ok,
                    gallery_face_id=best.face_id if ok and best else None,
                    top_k=cands,
                    nearest=decision.nearest,
                    decision=decision,
                )
            )
        if self.unknown_keeper is not None:
            matched = [r.is_match for r in results]
            self.unknown_keeper.keep_unmatched(image, faces, emb, matched, source)
        return results, emb

    def face_record(
        self, image: np.ndarray, source: str | None = None, content_sha256: str | None = None
    ) -> FaceRecord:
        """The largest face of ``image`` as a gallery record; ``FaceNotFoundError`` names
        ``source`` when there is none."""
        image = _check_image(image)
        faces = self.detect(image)
        if not faces:
            raise FaceNotFoundError(source or "photo")
        return FaceRecord.from_photo(image, faces[0], source, self.crop_for, content_sha256)

    def enroll(
        self, name: str, images: list[np.ndarray], sources: list[str] | None = None
    ) -> EnrolResult:
        """Add the largest face of each image as a reference face of ``name`` (created if new).

        One policy everywhere: an image without a usable face is skipped and reported, the
        person is saved with the rest; only when no image is usable is it an error (and nothing
        is added)."""
        if not images:
            raise GalleryError(f"no photos given for {name!r}: nothing to enrol")
        labels = sources or [f"photo {i + 1}" for i in range(len(images))]
        records: list[FaceRecord] = []
        skipped: dict[str, str] = {}
        for image, label in zip(images, labels, strict=True):
            try:
                records.append(self.face_record(image, label if sources else None))
            except FacemetricError as exc:
                skipped[label] = str(exc)
        return self.add_records(name, records, skipped)

    def add_records(
        self,
        name: str,
        records: list[FaceRecord],
        skipped: dict[str, str] | None = None,
        vectors: np.ndarray | None = None,
    ) -> EnrolResult:
        """Store ``records`` for ``name`` (see ``enroll``); ``skipped``: photos left out so
        far, by label, with why; ``vectors``: their embeddings when already computed (the
        quality checks embed them). ``GalleryError`` when nothing at all is usable."""
        skipped = dict(skipped or {})
        if not records:
            why = "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "no photos"
            raise GalleryError(f"no usable face for {name!r}, nothing saved ({why})")
        ids = self.add_faces(name, records, vectors)
        return EnrolResult(name, ids, len(records) - len(ids), skipped)

    def add_faces(
        self, name: str, records: list[FaceRecord], vectors: np.ndarray | None = None
    ) -> list[int]:
        """Store aligned faces of ``name`` with this model's embeddings (one transaction)."""
        with self._lock:  # the embedder is not re-entrant across threads
            return self.store.add_faces(name, records, self.embedder, vectors=vectors)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ConfigError(
            f"image: expected an HxWx3 uint8 RGB array, got {image.shape} {image.dtype}"
        )
    return np.ascontiguousarray(image)
