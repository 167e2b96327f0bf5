"""What the recognizer answers for a face: the people it may be (``Candidate``, one per person,
scored by the mean of their best references) and the face with its decision (``FaceMatch``);
``per_person_top_k`` turns an index's face hits into those candidates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facemetric.gallery.live import LiveGallery
from facemetric.recognize.decision import Decision


@dataclass(frozen=True)
class EnrolResult:
    """What an enrolment did: faces added, photos already there, photos skipped and why."""

    name: str
    added: list[int]
    duplicates: int = 0
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """One person for a face: ``similarity`` is the person's score (the mean of their best
    references, what the decision compares), ``best`` their closest reference's similarity."""

    identity: str
    similarity: float
    face_id: int
    best: float | None = None
    negative: float | None = None  # similarity of the person's closest negative face

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "identity": self.identity,
            "similarity": round(float(self.similarity), 4),
            "face_id": int(self.face_id),
            "best": round(float(self.similarity if self.best is None else self.best), 4),
        }
        if self.negative is not None:
            out["negative"] = round(float(self.negative), 4)
        return out


@dataclass(frozen=True)
class FaceMatch:
    """One face of the image: where it is and who it is (``identity`` None = unknown)."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    identity: str | None
    similarity: float
    is_match: bool
    gallery_face_id: int | None
    top_k: list[Candidate] = field(default_factory=list)
    nearest: str | None = None  # the best candidate even when below the threshold
    decision: Decision | None = None  # why it is (or is not) a match

    @property
    def reason(self) -> str | None:
        return None if self.decision is None else self.decision.reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "score": round(float(self.score), 4),
            "identity": self.identity,
            "similarity": round(float(self.similarity), 4),
            "is_match": bool(self.is_match),
            "gallery_face_id": self.gallery_face_id,
            "top_k": [c.to_dict() for c in self.top_k],
            "nearest": self.nearest,
            "reason": self.reason,
            "decision": None if self.decision is None else self.decision.to_dict(),
        }


def per_person_top_k(
    sims: np.ndarray, face_ids: np.ndarray, gallery: LiveGallery, k: int, agree: int = 1
) -> list[Candidate]:
    """The best ``k`` people for one query from its face hits (best first), by person score
    (the mean of their best ``agree`` references; a reference beyond the hits counts as the
    lowest hit, an upper bound), each with their best face. Vectorised: a search of a person
    with 500 references hands over 1,500 hits."""
    sims = np.asarray(sims, np.float64)
    face_ids = np.asarray(face_ids, np.int64)
    valid = face_ids >= 0
    if not valid.any():
        return []
    lowest = float(sims[valid].min())
    lookup = gallery.person_lookup()
    persons = lookup.persons(face_ids)
    keep = np.flatnonzero(persons >= 0)
    if not len(keep):
        return []
    order = keep[np.argsort(persons[keep], kind="stable")]  # by person, best hit first
    p, s, f = persons[order], sims[order], face_ids[order]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    sizes = np.diff(np.r_[starts, len(p)])
    group = np.repeat(np.arange(len(starts)), sizes)
    rank = np.arange(len(p)) - starts[group]
    people = p[starts]
    want = np.minimum(agree, np.maximum(1, lookup.counts[people]))
    kept = rank < want[group]
    sums = np.bincount(group[kept], weights=s[kept], minlength=len(starts))
    counted = np.minimum(sizes, want)
    last = s[starts + counted - 1]
    score = (sums + np.minimum(lowest, last) * (want - counted)) / want
    first_seen = order[starts]  # ties keep the order of the hits
    top = np.lexsort((first_seen, -score))[:k]
    return [
        Candidate(
            lookup.names[int(people[i])], float(score[i]), int(f[starts[i]]), float(s[starts[i]])
        )
        for i in top
    ]


def candidates_from_hits(
    gallery: LiveGallery,
    embeddings: np.ndarray,
    k_hits: int,
    people: int,
    agree: int,
    probe_key: str,
    negatives: dict[str, np.ndarray],
) -> list[list[Candidate]]:
    """Each face's candidates from the index's hits (what an approximate index gives), with
    the similarity of each person's closest negative face (``negatives``: person -> rows)."""
    sims, ids = gallery.search(embeddings, k_hits, probe_key)
    every = []
    for q, s, r in zip(np.asarray(embeddings, np.float32), sims, ids, strict=True):
        cands = per_person_top_k(s, r, gallery, people, agree)
        neg = {
            c.identity: float(np.max(negatives[c.identity] @ q))
            for c in cands
            if c.identity in negatives
        }
        every.append(
            [
                Candidate(c.identity, c.similarity, c.face_id, c.best, neg.get(c.identity))
                for c in cands
            ]
        )
    return every
