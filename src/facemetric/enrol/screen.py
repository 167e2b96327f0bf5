"""Enrolment that checks its photos: every new reference face is measured before it is saved.

``screen_records`` is the one policy the CLI (``gallery build``/``add``), the API
(``POST /api/people``, ``/api/enroll/preview``) and the page share. Each face gets its quality
figures (``facemetric.data.quality``) and a *consistency* figure: the median similarity of its
embedding to the person's other references (those already in the gallery and the other new
ones). A face below a floor is refused with the reason, or, with ``allow_low_quality``, saved
and flagged (the reasons are kept in its ``quality`` as ``flags``).

Consistency only refuses a face when at least two other references vote against it: with one
other photo, either of the two may be the odd one, so both are saved and flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.data.quality import QualityFloors, consistency_floor, face_quality, problems
from facemetric.errors import ConfigError, GalleryError
from facemetric.gallery.records import FaceRecord, record_crop

if TYPE_CHECKING:
    from facemetric.recognize.recognizer import EnrolResult, Recognizer

MIN_VOTERS = 2  # other references needed before consistency alone refuses a face
MODES = ("refuse", "flag", "off")


class LowQualityError(GalleryError):
    """Every new photo of a person was refused by the quality checks (``refused``: why)."""

    def __init__(self, message: str, refused: dict[str, str]) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class QualityPolicy:
    """How enrolment treats photos below the floors: ``refuse`` them (the default), ``flag``
    them (saved, with the reasons), or ``off`` (no checks, no figures beyond detection's)."""

    floors: QualityFloors = field(default_factory=QualityFloors)
    mode: str = "refuse"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"quality mode: {self.mode!r} is not one of {', '.join(MODES)}")


@dataclass(frozen=True)
class Screening:
    """What the checks said of each new record (same order as given)."""

    records: list[FaceRecord]  # with their quality figures (consistency, flags) filled in
    vectors: np.ndarray  # (N, D) embeddings of ``records``
    reasons: list[list[str]]  # per record: the floors it misses ([] = fine)
    accepted: list[bool]  # per record: to be saved
    floors: QualityFloors = field(default_factory=QualityFloors)
    labels: list[str] | None = None  # per record: how to name its photo (default: its source)

    def label(self, i: int) -> str:
        if self.labels is not None:
            return self.labels[i]
        return self.records[i].source or f"photo {i + 1}"

    def kept(self) -> tuple[list[FaceRecord], np.ndarray]:
        """The records to save and their embeddings."""
        keep = [i for i, ok in enumerate(self.accepted) if ok]
        return [self.records[i] for i in keep], self.vectors[keep]

    def refused(self) -> dict[str, str]:
        """Label (photo) -> why it was refused."""
        return {
            self.label(i): "low quality: " + "; ".join(why)
            for i, (r, why, ok) in enumerate(
                zip(self.records, self.reasons, self.accepted, strict=True)
            )
            if not ok
        }

    def flagged(self) -> dict[str, str]:
        """Label (photo) -> what is wrong with a face that was saved anyway."""
        return {
            self.label(i): "; ".join(why)
            for i, (r, why, ok) in enumerate(
                zip(self.records, self.reasons, self.accepted, strict=True)
            )
            if ok and why
        }


def _median_similarity(v: np.ndarray, others: np.ndarray) -> float | None:
    if len(others) == 0:
        return None
    return float(np.median(others @ v))


def screen_records(
    records: list[FaceRecord],
    vectors: np.ndarray,
    existing: np.ndarray | None = None,
    floors: QualityFloors | None = None,
    allow_low_quality: bool = False,
    threshold: float | None = None,
    labels: list[str] | None = None,
) -> Screening:
    """Check new reference ``records`` of one person (``vectors``: their embeddings;
    ``existing``: the embeddings of the person's references already saved; ``threshold``:
    the model's match threshold, the consistency floor when ``floors`` sets none)."""
    floors = floors or QualityFloors()
    if floors.min_consistency is None and threshold is not None:
        floors = replace(floors, min_consistency=float(threshold))
    vectors = np.asarray(vectors, np.float32).reshape(len(records), -1)
    before = (
        np.zeros((0, vectors.shape[1]), np.float32)
        if existing is None or len(existing) == 0
        else np.asarray(existing, np.float32)
    )
    out_records: list[FaceRecord] = []
    reasons: list[list[str]] = []
    accepted: list[bool] = []
    for i, record in enumerate(records):
        figures: dict[str, Any] = dict(record.quality or face_quality(record.chip))
        figures.pop("flags", None)
        others = np.concatenate([before, np.delete(vectors, i, axis=0)])
        consistency = _median_similarity(vectors[i], others)
        if consistency is not None:
            figures["consistency"] = round(consistency, 4)
        why = problems(figures, floors)
        refuse = bool(why) and not allow_low_quality
        if refuse and len(others) < MIN_VOTERS and all(w.startswith("unlike") for w in why):
            refuse = False  # one other photo cannot say which of the two is wrong
        if why:
            figures["flags"] = why
        out_records.append(replace(record, quality=figures))
        reasons.append(why)
        accepted.append(not refuse)
    return Screening(out_records, vectors, reasons, accepted, floors, labels)


def embed_records(recognizer: Recognizer, records: list[FaceRecord]) -> np.ndarray:
    """Embeddings of new records by the recognizer's model (the crops enrolment would embed)."""
    spec = recognizer.embedder.spec
    if not records:
        return np.zeros((0, 0), np.float32)
    crops = np.stack([record_crop(r, spec) for r in records])
    return np.asarray(recognizer.embed(crops), np.float32)


def existing_vectors(recognizer: Recognizer, name: str) -> np.ndarray | None:
    """The embeddings of ``name``'s saved references (None for a new person)."""
    if not name:
        return None
    try:
        ids = [f.id for f in recognizer.store.faces_of(name)]
    except GalleryError:
        return None
    if not ids:
        return None
    # By model key: what is stored, never an embedding computed here outside the recognizer's
    # lock (a face not yet embedded by this model just does not vote).
    found = recognizer.store.embeddings(recognizer.model_key, face_ids=ids)
    return found.vectors if len(found.vectors) else None


def screen_for(
    recognizer: Recognizer,
    name: str,
    records: list[FaceRecord],
    policy: QualityPolicy,
    labels: list[str] | None = None,
) -> Screening:
    """``screen_records`` for new references of ``name`` in the recognizer's gallery."""
    vectors = embed_records(recognizer, records)
    existing = existing_vectors(recognizer, name)
    # A threshold never calibrated says nothing about what "unlike" is: no consistency floor
    # then, unless one is given (the figure is still stored).
    calibrated = recognizer.threshold_source != "uncalibrated"
    return screen_records(
        records,
        vectors,
        existing,
        policy.floors,
        policy.mode == "flag",
        consistency_floor(recognizer.threshold) if calibrated else None,
        labels,
    )


def enrol_checked(
    recognizer: Recognizer,
    name: str,
    records: list[FaceRecord],
    skipped: dict[str, str] | None = None,
    policy: QualityPolicy | None = None,
    labels: list[str] | None = None,
) -> tuple[EnrolResult, dict[str, str]]:
    """Screen ``records`` of ``name`` under ``policy`` (default: refuse at the default floors)
    and save those kept: the enrolment result (refused photos among its ``skipped``) and the
    photos saved with flags, by label (``labels``, default each record's source), with what
    is wrong."""
    policy = policy or QualityPolicy()
    skipped = dict(skipped or {})
    if policy.mode == "off" or not records:
        return recognizer.add_records(name, records, skipped), {}
    screening = screen_for(recognizer, name, records, policy, labels)
    refused = screening.refused()
    skipped.update(refused)
    kept, vectors = screening.kept()
    if not kept:
        why = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise LowQualityError(
            f"no usable face for {name!r}, nothing saved ({why}); to enrol such photos anyway "
            f"allow low quality",
            refused,
        )
    result = recognizer.add_records(name, kept, skipped, vectors)
    return result, screening.flagged()


def parse_floors(items: list[str] | None, base: QualityFloors | None = None) -> QualityFloors:
    """Floors from ``NAME=VALUE`` items (``--quality-floor min_eye_px=24``) over ``base``;
    ``ConfigError`` names an unknown floor or a bad value."""
    floors = base or QualityFloors()
    known = floors.to_dict()
    changes: dict[str, float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise ConfigError(
                f"--quality-floor {item!r}: expected NAME=VALUE with NAME one of {', '.join(known)}"
            )
        try:
            changes[key] = float(value)
        except ValueError:
            raise ConfigError(f"--quality-floor {item!r}: {value!r} is not a number") from None
    return replace(floors, **changes)
