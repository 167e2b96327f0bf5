"""Audit a gallery: what in it will make recognition go wrong (``facemetric gallery check``).

Four kinds of finding, from the reference faces' embeddings by one model and what the store
keeps of each face (content hash, quality figures):

- ``outlier``: a reference unlike the rest of its person (median similarity to the person's
  other references below the consistency floor): another person's photo, or a bad one;
- ``duplicate``: the same face under two names (the same photo, by content hash, or embeddings
  closer than any two photos of one person are: ``duplicate_similarity``);
- ``confusable``: two people so close that one will be taken for the other: references of one
  that are nearer (and above the match threshold) to the other person than to their own;
- ``few_references``: people with fewer than ``min_references`` good references (not outliers,
  not duplicates, not flagged below a quality floor at enrolment).

Similarities are computed a block of rows at a time, so memory stays bounded; time grows with
the square of the number of faces (the similarities of every pair are computed once).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.data.quality import consistency_floor

if TYPE_CHECKING:
    from facemetric.gallery.store import GalleryStore
    from facemetric.models.inference import Embedder

KINDS = ("outlier", "duplicate", "confusable", "few_references")
BLOCK_CELLS = 1 << 24  # similarities held at once (64 MiB of float32)


@dataclass(frozen=True)
class CheckOptions:
    """The floors of the audit; ``min_consistency`` None: the enrolment default, a little
    below the match threshold (``facemetric.data.quality.consistency_floor``)."""

    threshold: float
    min_consistency: float | None = None
    duplicate_similarity: float = 0.99
    min_references: int = 2

    @property
    def consistency_floor(self) -> float:
        if self.min_consistency is None:
            return consistency_floor(self.threshold)
        return float(self.min_consistency)


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    people: list[str]
    face_ids: list[int]
    message: str
    similarity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.similarity is not None:
            d["similarity"] = round(float(self.similarity), 4)
        return d


@dataclass
class CheckReport:
    people: int
    faces: int
    options: CheckOptions
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        return {k: sum(1 for f in self.findings if f.kind == k) for k in KINDS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "people": self.people,
            "faces": self.faces,
            "clean": self.clean,
            "counts": self.counts(),
            "options": asdict(self.options) | {"consistency_floor": self.options.consistency_floor},
            "findings": [f.to_dict() for f in self.findings],
        }


def _cross_person(
    vectors: np.ndarray, person: np.ndarray, floor: float
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, float]]]:
    """One pass over every pair of faces of different people: per face the most similar face of
    another person (similarity, row; -inf, -1 if none), and the pairs of rows (i < j) at least
    ``floor`` alike."""
    n = len(vectors)
    best_sim = np.full(n, -np.inf, np.float32)
    best_row = np.full(n, -1, np.int64)
    near: list[tuple[int, int, float]] = []
    rows = max(1, BLOCK_CELLS // max(1, n))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        sims = vectors[start:stop] @ vectors.T
        sims[person[start:stop, None] == person[None, :]] = -np.inf
        j = sims.argmax(axis=1)
        got = sims[np.arange(stop - start), j]
        best_row[start:stop] = np.where(np.isfinite(got), j, -1)
        best_sim[start:stop] = got
        for a, b in zip(*np.nonzero(sims >= floor), strict=True):
            if start + int(a) < int(b):
                near.append((start + int(a), int(b), float(sims[a, b])))
    return best_sim, best_row, near


def check_gallery(
    store: GalleryStore,
    embedder: Embedder | str,
    options: CheckOptions,
) -> CheckReport:
    """Audit ``store``'s reference faces by ``embedder``'s embeddings (faces it has not embedded
    yet are embedded first; a model key uses what is stored)."""
    found = store.embeddings(embedder)
    vectors = np.asarray(found.vectors, np.float32)
    names = list(found.names)
    face_ids = [int(i) for i in found.face_ids]
    people = sorted(set(names))
    person = np.array([people.index(n) for n in names], np.int64) if names else np.zeros(0, int)
    report = CheckReport(len(store.list_people()), len(face_ids), options)
    meta = {f.id: f for p in people for f in store.faces_of(p)}
    if not face_ids:
        return report
    floor = options.consistency_floor
    bad: set[int] = set()  # rows that do not count as good references

    def label(row: int) -> str:
        face = meta.get(face_ids[row])
        src = face.source if face is not None and face.source else None
        return f"face {face_ids[row]}" + (f" ({src})" if src else "")

    best_sim, best_row, near = _cross_person(vectors, person, options.duplicate_similarity)

    # duplicates: one photo under two names, or embeddings closer than one person's photos are
    by_digest: dict[str, list[int]] = defaultdict(list)
    for row, fid in enumerate(face_ids):
        face = meta.get(fid)
        if face is not None and face.digest:
            by_digest[face.digest].append(row)
    seen_pairs: set[tuple[int, int]] = set()
    for same in by_digest.values():
        owners = sorted({names[r] for r in same})
        if len(owners) > 1:
            for i in same:
                for j in same:
                    if i < j and names[i] != names[j]:
                        seen_pairs.add((i, j))
            bad.update(same)
            report.findings.append(
                Finding(
                    "duplicate",
                    owners,
                    [face_ids[r] for r in same],
                    f"the same photo is a reference of {' and '.join(owners)}: "
                    + ", ".join(label(r) for r in same),
                    1.0,
                )
            )
    for i, j, sim in near:
        if (i, j) in seen_pairs:
            continue
        bad.update((i, j))
        report.findings.append(
            Finding(
                "duplicate",
                sorted({names[i], names[j]}),
                [face_ids[i], face_ids[j]],
                f"the same face under two names: {label(i)} of {names[i]} and {label(j)} of "
                f"{names[j]} (similarity {sim:.4f} >= {options.duplicate_similarity:g})",
                sim,
            )
        )

    # outliers, and per face its nearest own reference (for confusable people below)
    own_best = np.full(len(face_ids), -np.inf, np.float32)
    for p_index, name in enumerate(people):
        rows = [int(r) for r in np.nonzero(person == p_index)[0]]
        if len(rows) < 2:
            continue
        sims = vectors[rows] @ vectors[rows].T
        np.fill_diagonal(sims, np.nan)
        own_best[rows] = np.nanmax(sims, axis=1)
        if len(rows) == 2:
            sim = float(sims[0, 1])
            if sim < floor:
                report.findings.append(
                    Finding(
                        "outlier",
                        [name],
                        [face_ids[r] for r in rows],
                        f"{name}'s two references disagree (similarity {sim:.4f} < {floor:.4f}): "
                        f"one of {label(rows[0])}, {label(rows[1])} may be someone else",
                        sim,
                    )
                )
            continue
        medians = np.nanmedian(sims, axis=1)
        for k, row in enumerate(rows):
            if medians[k] >= floor:
                continue
            bad.add(int(row))
            nearer = (
                f"; nearer to {names[best_row[row]]} ({best_sim[row]:.4f})"
                if best_row[row] >= 0 and best_sim[row] > medians[k]
                else ""
            )
            report.findings.append(
                Finding(
                    "outlier",
                    [name],
                    [face_ids[row]],
                    f"{label(int(row))} is unlike {name}'s other references (median similarity "
                    f"{medians[k]:.4f} < {floor:.4f}){nearer}",
                    float(medians[k]),
                )
            )

    # confusable people: references nearer to another person (above the threshold) than to
    # their own person's other references
    pairs: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for row in range(len(face_ids)):
        if row in bad or best_row[row] < 0:
            continue
        sim = float(best_sim[row])
        if sim >= options.threshold and sim >= own_best[row]:
            a, b = names[row], names[best_row[row]]
            pairs[(min(a, b), max(a, b))].append((row, sim))
    for (a, b), hits in sorted(pairs.items()):
        top = max(s for _, s in hits)
        report.findings.append(
            Finding(
                "confusable",
                [a, b],
                [face_ids[r] for r, _ in hits],
                f"{a} and {b} may be taken for each other: {len(hits)} reference(s) nearer to "
                f"the other person than to their own (up to {top:.4f}, threshold "
                f"{options.threshold:.4f})",
                top,
            )
        )

    # people with too few good references
    for p_index, name in enumerate(people):
        rows = [int(r) for r in np.nonzero(person == p_index)[0]]
        good = [r for r in rows if r not in bad and not _flagged(meta.get(face_ids[r]))]
        if len(good) < options.min_references:
            report.findings.append(
                Finding(
                    "few_references",
                    [name],
                    [face_ids[r] for r in rows],
                    f"{name} has {len(good)} good reference(s) of {len(rows)} "
                    f"(at least {options.min_references} wanted)",
                )
            )
    order = {k: i for i, k in enumerate(KINDS)}
    report.findings.sort(key=lambda f: (order[f.kind], f.people, f.face_ids))
    return report


def _flagged(face: Any) -> bool:
    """Whether enrolment saved ``face`` below a quality floor (``--allow-low-quality``)."""
    quality = getattr(face, "quality", None) or {}
    return bool(quality.get("flags"))
