"""Temporal stabilisation of live results: faces are tracked across frames by box overlap.

Each track keeps an exponential moving average (EMA) of the similarity to every gallery identity it
has seen, and changes its label only with hysteresis: it becomes a match once the average clears
``threshold + margin``, drops to unknown once it falls below ``threshold - margin``, and switches
identity only when another identity leads by ``margin``. A face therefore keeps its label unless
the evidence changes, instead of flickering with per-frame noise. Pure Python, no frames kept.

Cosine similarity lies in [-1, 1], so a fixed margin cannot always be cleared: with a calibrated
threshold of 0.97, ``threshold + 0.05`` is out of reach. Each margin is therefore at most half
the room left on its side (``(1 - threshold) / 2`` above, ``(threshold + 1) / 2`` below,
``(1 - kept) / 2`` for a switch), so every label can be reached at any threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One face followed across frames."""

    id: int
    box: tuple[float, float, float, float]
    averages: dict[str, float] = field(default_factory=dict)  # identity -> EMA similarity
    face_ids: dict[str, int | None] = field(default_factory=dict)  # identity -> best gallery face
    label: str | None = None
    missed: int = 0
    frames: int = 0

    def nearest(self) -> tuple[str | None, float]:
        if not self.averages:
            return None, -1.0
        name = max(self.averages, key=self.averages.__getitem__)
        return name, self.averages[name]


@dataclass
class Tracker:
    """Steadies a stream of per-frame results (dicts shaped like ``FaceMatch.to_dict()``)."""

    iou_threshold: float = 0.3
    alpha: float = 0.4
    margin: float = 0.05
    max_missed: int = 5
    tracks: list[Track] = field(default_factory=list)
    _next_id: int = 1

    def update(self, faces: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
        """Match this frame's faces to tracks and return them with steadied labels.

        Each returned dict keeps the raw frame values under ``raw`` and gains ``track_id`` and
        ``nearest``; ``identity``, ``similarity``, ``is_match`` and ``gallery_face_id`` become the
        track's steadied values.
        """
        pairs = sorted(
            (
                (iou(t.box, f["box"]), ti, fi)
                for ti, t in enumerate(self.tracks)
                for fi, f in enumerate(faces)
            ),
            reverse=True,
        )
        assigned: dict[int, Track] = {}
        used: set[int] = set()
        for overlap, ti, fi in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used or fi in assigned:
                continue
            used.add(ti)
            assigned[fi] = self.tracks[ti]
        out = []
        touched: set[int] = set()
        for fi, face in enumerate(faces):
            track = assigned.get(fi)
            if track is None:
                track = Track(id=self._next_id, box=tuple(face["box"]))
                self._next_id += 1
                self.tracks.append(track)
            touched.add(track.id)
            out.append(self._step(track, face, threshold))
        for track in self.tracks:
            if track.id not in touched:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out

    def _step(self, track: Track, face: dict[str, Any], threshold: float) -> dict[str, Any]:
        track.box = tuple(face["box"])
        track.missed = 0
        track.frames += 1
        current = {c["identity"]: float(c["similarity"]) for c in face.get("top_k", [])}
        ids = {c["identity"]: c.get("face_id") for c in face.get("top_k", [])}
        # An identity outside this frame's top-k scores at most the lowest listed similarity.
        floor = min(current.values()) if current else -1.0
        if track.frames == 1:
            track.averages = dict(current)
        else:
            a = self.alpha
            for name in set(track.averages) | set(current):
                old = track.averages.get(name, floor)
                track.averages[name] = (1 - a) * old + a * current.get(name, floor)
        track.face_ids.update(ids)
        for name in [n for n, v in track.averages.items() if v < floor - 0.5]:
            del track.averages[name]  # far behind: forget it, keeps the dict small
        track.label = self._decide(track, threshold)
        name, similarity = track.nearest()
        if track.label is not None:
            name, similarity = track.label, track.averages[track.label]
        steady = dict(face)
        steady.update(
            raw={k: face.get(k) for k in ("identity", "similarity", "is_match")},
            track_id=track.id,
            nearest=name,
            identity=track.label,
            similarity=round(similarity, 4) if name is not None else None,
            is_match=track.label is not None,
            gallery_face_id=track.face_ids.get(name) if name is not None else None,
        )
        return steady

    def margins(self, threshold: float) -> tuple[float, float]:
        """(up, down): how far the average must clear ``threshold`` to become a match, and fall
        below it to become unknown; each at most half the room to the end of [-1, 1]."""
        up = max(0.0, min(self.margin, (1.0 - threshold) / 2))
        down = max(0.0, min(self.margin, (threshold + 1.0) / 2))
        return up, down

    def _decide(self, track: Track, threshold: float) -> str | None:
        best, best_sim = track.nearest()
        if track.frames == 1:  # no history: decide on the evidence as it is
            return best if best is not None and best_sim >= threshold else None
        up, down = self.margins(threshold)
        label = track.label
        if label is not None and label in track.averages:
            kept = track.averages[label]
            switch = max(0.0, min(self.margin, (1.0 - kept) / 2))
            if kept < threshold - down:
                label = None
            elif best != label and best_sim > kept + switch:
                return best
            else:
                return label
        if best is not None and best_sim >= threshold + up:
            return best
        return None
