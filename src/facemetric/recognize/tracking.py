"""Tracks that follow a face, named only by the open-set decision over their own evidence.

A track continues only while the face stays the same face: a detection joins a track when its
embedding is close to the track's (cosine >= ``same_face``, by default the model's per-pair
threshold, FAR 1e-3 per pair), preferring the track whose box it overlaps; a face far from every
track starts a new one, also at the same place (a cut, a new person in the doorway). A track
lost for a few frames is found again by its face within ``lost_s`` seconds, anywhere in the
frame; motion or missed frames never change who a track is.

A track's identity is ``Recognizer.decide`` (``decision.py``) over its evidence: the
quality-weighted mean of the normalised embeddings of its best ``evidence`` frames, normalised
again (``track_evidence``). Nothing is carried over against the decision: a track is named only
while the decision names it; steadying only delays a name (``min_frames`` embedded frames).
Each face's output says why (the decision's ``reason``, or ``steadying``).

Recognise a track, not every frame: once a track is decided with margin (``settle``), a face
that overlaps it and whose aligned crop still looks the same (``crop_same``: correlation of
small grey thumbnails, cheap) skips the embedding; it is embedded again every ``reembed_s``
seconds, after a missed frame, and whenever the decision is uncertain or the crop changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.recognize.decision import Decision

if TYPE_CHECKING:
    from facemetric.recognize.recognizer import Candidate, Recognizer

STEADYING = "steadying"  # the decision names the track; not enough frames yet to show it


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def signature(crop: np.ndarray, side: int = 24) -> np.ndarray:
    """A small grey thumbnail of an aligned crop, mean removed and unit length: the dot
    product of two is their correlation (1: the same picture), a cheap "did the face change"."""
    import cv2

    grey = crop.astype(np.float32).mean(axis=2) if crop.ndim == 3 else crop.astype(np.float32)
    small = cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA).ravel()
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm > 1e-6 else small


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def track_evidence(
    embeddings: np.ndarray, weights: np.ndarray, keep: int, renormalise: bool = False
) -> np.ndarray:
    """A track's evidence: the weighted mean of its ``keep`` best-weighted normalised
    embeddings (what the decision is asked about).

    Not normalised again by default: its similarity to a reference is then the weighted mean
    of the frames' similarities, in the units the per-photo threshold was calibrated in.
    Normalised again, the mean of ``k`` different photos scores higher than its frames (its
    norm is below 1) and the per-photo threshold names 2-5% of stranger tracks instead of
    <= 0.5% (``benchmarks/track_openset.py``, docs/tracks.md)."""
    e = np.asarray(embeddings, np.float64)
    w = np.asarray(weights, np.float64)
    order = np.argsort(-w, kind="stable")[:keep]
    rows = e[order] / np.maximum(np.linalg.norm(e[order], axis=1, keepdims=True), 1e-12)
    mean = (rows * w[order, None]).sum(axis=0) / max(float(w[order].sum()), 1e-12)
    return unit(mean) if renormalise else mean


def quality(score: float, box: Sequence[float]) -> float:
    """A frame's weight in its track's evidence: detector confidence times size (to 100 px)."""
    side = min(box[2] - box[0], box[3] - box[1])
    return max(1e-3, float(score)) * min(1.0, max(side, 1.0) / 100.0)


def associate(weights: np.ndarray) -> list[tuple[int, int]]:
    """The (track, face) pairs of the matching with the largest total weight (0: the pair is
    not allowed), each track and face used at most once."""
    if weights.size == 0 or not (weights > 0).any():
        return []
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(weights, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if weights[r, c] > 0]


@dataclass
class TrackSettings:
    """How faces are followed and when a track is embedded again (defaults: the live page's)."""

    iou_threshold: float = 0.3  # overlap for a face to skip its embedding (same place)
    same_face: float | None = None  # cosine to the track's embedding; None: the model's
    crop_same: float = 0.9  # thumbnail correlation under which the face "changed"
    min_frames: int = 2  # embedded frames before the decision's name is shown
    evidence: int = 8  # best frames the decision is asked about
    max_missed: int = 5  # frames a track keeps its box for the cheap path
    lost_s: float = 2.0  # seconds a lost track can be found again by its face
    reembed_s: float = 1.0  # a settled track is embedded again at least this often (0: always)
    settle: float = 0.01  # decided with this much room to the threshold: settled


@dataclass
class Track:
    """One face followed across frames, and the decision over its evidence."""

    id: int
    box: tuple[float, ...]
    first_seen: float
    last_seen: float
    signature: np.ndarray | None = None
    embeddings: list[np.ndarray] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    mean: np.ndarray | None = None  # the evidence (``track_evidence``)
    decision: Decision | None = None
    candidates: list[Candidate] = field(default_factory=list)
    missed: int = 0
    frames: int = 0
    last_embedded: float = float("-inf")

    @property
    def embedded(self) -> int:
        return len(self.weights)

    def add(self, emb: np.ndarray, weight: float, keep: int) -> None:
        self.embeddings.append(unit(emb))
        self.weights.append(weight)
        if len(self.weights) > 4 * keep:  # bounded memory: drop the weakest
            drop = int(np.argmin(self.weights))
            del self.embeddings[drop], self.weights[drop]
        self.mean = track_evidence(np.stack(self.embeddings), np.array(self.weights), keep)

    def label(self, min_frames: int) -> tuple[str | None, str | None]:
        """(name, reason): the decision's, with the name held back while steadying."""
        d = self.decision
        if d is None:
            return None, None
        if d.is_match and self.embedded < min_frames:
            return None, STEADYING
        return d.identity, d.reason

    def settled(self, settings: TrackSettings) -> bool:
        """Decided with room to the threshold either way (the cheap path may follow it)."""
        d = self.decision
        if d is None or self.embedded < settings.min_frames:
            return False
        value = d.adjusted if d.adjusted is not None else d.score
        if d.is_match:
            return value - d.threshold >= settings.settle
        return d.reason == "below_threshold" and d.threshold - value >= settings.settle


class Tracker:
    """Follows faces over one stream's frames and decides each track (one per stream)."""

    def __init__(self, settings: TrackSettings | None = None) -> None:
        self.settings = settings or TrackSettings()
        self.tracks: list[Track] = []
        self._next_id = 1
        self.frames = 0
        self.faces = 0
        self.embedded = 0  # faces embedded (the expensive step) over all frames

    def step(
        self,
        recognizer: Recognizer,
        image: np.ndarray,
        t: float,
        threshold: float | None = None,
        detect_size: int | None = None,
        source: str | None = None,
    ) -> tuple[list[dict[str, Any]], list[np.ndarray | None]]:
        """Detect the faces of ``image`` (time ``t``, seconds), follow them, embed those that
        need it and decide their tracks. Returns each face as a dict (``FaceMatch.to_dict()``
        keys with the track's decided values, plus ``track_id``, ``embedded``, ``evidence``
        and ``raw``: this frame's own decision when it was embedded) and its embedding (None
        when the cheap path skipped it)."""
        s = self.settings
        same_face = float(recognizer.embedder.threshold if s.same_face is None else s.same_face)
        faces = recognizer.detect(image, detect_size)
        boxes = [tuple(float(v) for v in f.detection.box) for f in faces]
        sigs = [signature(f.crop) for f in faces]
        cheap = self._cheap(boxes, sigs, t)
        todo = [i for i in range(len(faces)) if i not in cheap]
        embs: list[np.ndarray | None] = [None] * len(faces)
        raw: list[tuple[list[Candidate], Decision] | None] = [None] * len(faces)
        if todo:
            vectors = recognizer.embed(np.stack([faces[i].crop for i in todo]))
            for i, v, r in zip(todo, vectors, recognizer.decide(vectors, threshold), strict=True):
                embs[i], raw[i] = np.asarray(v, np.float32), r
        pairs = dict(cheap)
        pairs.update(self._match(todo, embs, boxes, pairs, same_face, t))
        touched = []
        for i in range(len(faces)):
            track = pairs.get(i)
            if track is None:
                track = Track(self._next_id, boxes[i], t, t)
                self._next_id += 1
                self.tracks.append(track)
            track.box, track.signature, track.last_seen = boxes[i], sigs[i], t
            track.missed, track.frames = 0, track.frames + 1
            emb = embs[i]
            if emb is not None:
                track.add(emb, quality(faces[i].detection.score, boxes[i]), s.evidence)
                track.last_embedded = t
            touched.append(track)
        fresh = {id(tr) for tr, e in zip(touched, embs, strict=True) if e is not None}
        updated = [tr for tr in touched if id(tr) in fresh]
        if updated:  # one decision per track that got new evidence
            means = np.stack([tr.mean for tr in updated if tr.mean is not None])
            answers = recognizer.decide(means, threshold)
            for tr, (cands, decision) in zip(updated, answers, strict=True):
                tr.candidates, tr.decision = cands, decision
        for tr in self.tracks:
            if all(tr is not x for x in touched):
                tr.missed += 1
        self.tracks = [tr for tr in self.tracks if t - tr.last_seen <= s.lost_s]
        self.frames += 1
        self.faces += len(faces)
        self.embedded += len(todo)
        out = [
            self._output(faces[i], touched[i], raw[i], embs[i] is not None)
            for i in range(len(faces))
        ]
        keeper = recognizer.unknown_keeper
        if keeper is not None and todo:
            keeper.keep_unmatched(
                image,
                [faces[i] for i in todo],
                np.stack([embs[i] for i in todo]),  # type: ignore[misc]
                [touched[i].label(s.min_frames)[0] is not None for i in todo],
                source,
            )
        return out, embs

    def _cheap(
        self, boxes: list[tuple[float, ...]], sigs: list[np.ndarray], t: float
    ) -> dict[int, Track]:
        """Faces that may skip the embedding: each overlaps exactly one settled track seen in
        the previous frame, whose crop it still looks like, embedded recently enough."""
        s = self.settings
        if s.reembed_s <= 0:
            return {}
        claims: dict[int, list[Track]] = {}
        for i, (box, sig) in enumerate(zip(boxes, sigs, strict=True)):
            claims[i] = [
                tr
                for tr in self.tracks
                if tr.missed == 0
                and iou(tr.box, box) >= s.iou_threshold
                and tr.signature is not None
                and float(tr.signature @ sig) >= s.crop_same
            ]
        out: dict[int, Track] = {}
        for i, found in claims.items():
            if len(found) != 1:
                continue
            tr = found[0]
            if sum(any(x is tr for x in c) for c in claims.values()) != 1:
                continue
            if tr.settled(s) and t - tr.last_embedded < s.reembed_s:
                out[i] = tr
        return out

    def _match(
        self,
        todo: list[int],
        embs: list[np.ndarray | None],
        boxes: list[tuple[float, ...]],
        taken: dict[int, Track],
        same_face: float,
        t: float,
    ) -> dict[int, Track]:
        """The embedded faces' tracks: cosine to the track's evidence >= ``same_face`` (the
        gate), weighted by cosine plus box overlap; the best total matching."""
        busy = {id(tr) for tr in taken.values()}
        free = [tr for tr in self.tracks if tr.mean is not None and id(tr) not in busy]
        if not todo or not free:
            return {}
        weights = pair_weights(
            np.stack([tr.mean for tr in free]),  # type: ignore[misc]
            [tr.box for tr in free],
            np.stack([embs[i] for i in todo]),  # type: ignore[misc]
            [boxes[i] for i in todo],
            same_face,
        )
        return {todo[f]: free[k] for k, f in associate(weights)}

    def _output(
        self,
        face: Any,
        track: Track,
        raw: tuple[list[Candidate], Decision] | None,
        embedded: bool,
    ) -> dict[str, Any]:
        det = face.detection
        name, reason = track.label(self.settings.min_frames)
        cands = track.candidates
        shown = next((c for c in cands if c.identity == name), cands[0] if cands else None)
        d = track.decision
        out: dict[str, Any] = {
            "box": [round(float(v), 2) for v in det.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in det.landmarks],
            "score": round(float(det.score), 4),
            "identity": name,
            "similarity": None if shown is None else round(float(shown.similarity), 4),
            "is_match": name is not None,
            "gallery_face_id": shown.face_id if name is not None and shown else None,
            "top_k": [c.to_dict() for c in cands],
            "nearest": None if d is None else d.nearest,
            "reason": reason,
            "decision": None if d is None else shown_decision(d, name, reason),
            "track_id": track.id,
            "embedded": embedded,
            "evidence": track.embedded,
            "raw": None,
        }
        if raw is not None:
            rc, rd = raw
            out["raw"] = {
                "identity": rd.identity,
                "similarity": round(float(rc[0].similarity), 4) if rc else None,
                "is_match": rd.is_match,
                "reason": rd.reason,
                "top_k": [c.to_dict() for c in rc],
            }
        return out


def pair_weights(
    track_means: np.ndarray,
    track_boxes: Sequence[Sequence[float]],
    face_embs: np.ndarray,
    face_boxes: Sequence[Sequence[float]],
    same_face: float,
) -> np.ndarray:
    """(tracks, faces) association weights: cosine + IoU where the cosine reaches
    ``same_face`` (the same face), else 0 (never the same track, wherever the box is)."""
    cos = unit_rows(track_means) @ unit_rows(face_embs).T
    overlap = np.array([[iou(a, b) for b in face_boxes] for a in track_boxes]).reshape(cos.shape)
    return np.where(cos >= same_face, 1.0 + cos + overlap, 0.0)


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def shown_decision(decision: Decision, name: str | None, reason: str | None) -> dict[str, Any]:
    """The track's decision as shown: while steadying it names nobody yet, and says so."""
    out = decision.to_dict()
    if reason == STEADYING:
        out.update(is_match=False, identity=None, reason=STEADYING, decided=decision.reason)
    return out
