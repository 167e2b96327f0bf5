"""Per-person scores straight from one exact scan, for the open-set decision.

The decision scores a face against each person by the mean of their best ``agree`` references.
Done from search hits (``recognize.matches.per_person_top_k``) that takes the top
``people x faces_per_person`` hits (2,000 of 10,000 faces for 20 people of 500 faces), sorts
them, looks each hit's person up and sorts them again by person: ~1.5 ms a face. Here the
gallery's reference vectors are kept grouped by person (``PersonLayout``, made once per gallery
generation), so one matrix product gives every face's similarities already grouped, and each
person's best ``agree`` come from ``np.maximum.reduceat`` over the groups, for every face of the
frame at once; the negatives (corrections) are scored the same way.

The result is the same as from the hits: a person counts when their best reference is among
the ``k_hits`` most similar faces (at or above the k-th similarity, ``lowest``), and a best
reference below ``lowest`` counts as ``lowest`` (the hits' upper bound). Only exact float ties
at the k-th similarity may be counted differently.

BLAS: a (faces x 10,000) product takes 0.1 ms on one thread but 2-15 ms when OpenBLAS fans it
out over two busy cores, so ``single_thread_blas`` sets numpy's BLAS to one thread once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

BLAS_THREADS_ENV = "FACEMETRIC_BLAS_THREADS"
_blas_set = False


def single_thread_blas() -> None:
    """Run numpy's BLAS on ``FACEMETRIC_BLAS_THREADS`` threads (default 1), once per process.

    Process-wide: a server's products are small (a frame's faces against the gallery) and run
    beside ONNX Runtime's threads; setting it per call costs more (~0.4 ms) than the product."""
    global _blas_set
    if _blas_set:
        return
    _blas_set = True
    raw = os.environ.get(BLAS_THREADS_ENV, "1").strip()
    if raw in ("", "0", "auto"):
        return
    if not raw.isdigit():
        from facemetric.errors import ConfigError

        raise ConfigError(f"{BLAS_THREADS_ENV}: expected a number of threads, got {raw!r}")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=max(1, int(raw)), user_api="blas")


@dataclass(frozen=True)
class PersonLayout:
    """One gallery generation's reference vectors grouped by person (people in ``names``
    order, each person's faces by face id) and its negative faces grouped the same way."""

    names: list[str]
    columns: np.ndarray  # (D, N) float32: the vectors as columns (a frame's faces x them is
    # one plain GEMM: 0.6 ms for 4 faces x 10,000 where the (N, D) rows' transpose took 2-3 ms)
    face_ids: np.ndarray  # (N,) int64, the face id of each row
    starts: np.ndarray  # (P,) the first row of each person
    counts: np.ndarray  # (P,) each person's reference faces
    neg_vectors: np.ndarray  # (M, D) float32: negatives grouped by person
    neg_starts: np.ndarray  # (G,) the first row of each group
    neg_column: np.ndarray  # (P,) each person's group (-1: no negative faces)

    @classmethod
    def build(
        cls,
        names: list[str],
        face_ids: np.ndarray,
        people: np.ndarray,
        vectors: np.ndarray,
        negatives: dict[str, np.ndarray] | None = None,
    ) -> PersonLayout:
        """From each reference face's id, person (an index into ``names``) and vector, and
        each person's negative faces (name -> (n, D))."""
        order = np.lexsort((face_ids, people))
        grouped = np.asarray(people)[order]
        counts = np.bincount(grouped, minlength=len(names)).astype(np.int64)
        if len(names) and counts.min() < 1:
            raise ValueError("every person of a layout needs a reference face")
        starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
        dim = vectors.shape[1]
        index = {name: i for i, name in enumerate(names)}
        held = sorted((index[n], v) for n, v in (negatives or {}).items() if n in index and len(v))
        column = np.full(len(names), -1, np.int64)
        for g, (p, _) in enumerate(held):
            column[p] = g
        sizes = [len(v) for _, v in held]
        return cls(
            names,
            np.ascontiguousarray(np.asarray(vectors, np.float32)[order].T),
            np.asarray(face_ids, np.int64)[order],
            starts,
            counts,
            (
                np.concatenate([v for _, v in held]).astype(np.float32)
                if held
                else np.zeros((0, dim), np.float32)
            ),
            np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64) if held else np.zeros(0, np.int64),
            column,
        )

    def __len__(self) -> int:
        return len(self.face_ids)


@dataclass(frozen=True)
class PersonScores:
    """Per query, the best people (best first, -1 padded): person index into the layout's
    ``names``, score, their best face's id and similarity, their closest negative (NaN: none)."""

    people: np.ndarray  # (Q, K) int64
    scores: np.ndarray  # (Q, K) float64
    face_ids: np.ndarray  # (Q, K) int64
    best: np.ndarray  # (Q, K) float64
    negative: np.ndarray  # (Q, K) float64


def best_per_person(
    sims: np.ndarray, starts: np.ndarray, counts: np.ndarray, agree: int
) -> np.ndarray:
    """(Q, P, agree): each person's best ``agree`` similarities in ``sims`` (Q, N, grouped by
    person), best first, -inf past a person's faces; repeated values count as often as
    they occur."""
    q, p = sims.shape[0], len(starts)
    out = np.full((q, p, agree), -np.inf)
    filled = np.zeros((q, p), np.int64)
    rest = sims
    for step in range(agree):
        top = np.maximum.reduceat(rest, starts, axis=1)
        if step == agree - 1:  # the last one needs no tie count
            np.copyto(out[:, :, step], top, where=filled <= step)
            break
        equal = rest == np.repeat(top, counts, axis=1)
        ties = np.add.reduceat(equal, starts, axis=1)
        for j in range(step, agree):
            np.copyto(out[:, :, j], top, where=(filled <= j) & (j < filled + ties))
        filled = filled + ties
        if (filled >= agree).all():
            break
        rest = np.where(equal, -np.inf, rest)
    return out


def top_people(
    layout: PersonLayout,
    queries: np.ndarray,
    k_hits: int,
    k_people: int,
    agree: int,
    with_negatives: bool = True,
) -> PersonScores:
    """The ``k_people`` best people for each query (see the module's docstring)."""
    q = np.ascontiguousarray(queries, np.float32).reshape(len(queries), -1)
    n_q, n = len(q), len(layout)
    shape = (n_q, k_people)
    out = PersonScores(
        np.full(shape, -1, np.int64),
        np.full(shape, -np.inf),
        np.full(shape, -1, np.int64),
        np.full(shape, -np.inf),
        np.full(shape, np.nan),
    )
    if n == 0 or n_q == 0:
        return out
    k_hits = max(1, min(int(k_hits), n))
    sims = q @ layout.columns  # (Q, N) float32, grouped by person
    lowest = np.partition(sims, n - k_hits, axis=1)[:, n - k_hits].astype(np.float64)
    vals = best_per_person(sims, layout.starts, layout.counts, agree)
    want = np.minimum(agree, np.maximum(1, layout.counts))  # (P,)
    low = lowest[:, None, None]
    counted = (vals >= low) & (np.arange(agree)[None, None, :] < want[None, :, None])
    sums = np.where(counted, vals, 0.0).sum(axis=2)
    score = (sums + lowest[:, None] * (want[None, :] - counted.sum(axis=2))) / want[None, :]
    first = vals[:, :, 0]
    present = first >= lowest[:, None]
    neg = None
    if with_negatives and len(layout.neg_vectors):
        neg = np.maximum.reduceat(q @ layout.neg_vectors.T, layout.neg_starts, axis=1)
    for i in range(n_q):
        cand = np.flatnonzero(present[i])
        if len(cand) > 4 * k_people:  # only the likely best need the full order
            keep = np.argpartition(-score[i, cand], k_people - 1)[:k_people]
            cut = score[i, cand[keep]].min()
            cand = cand[score[i, cand] >= cut]
        order = cand[np.lexsort((cand, -first[i, cand], -score[i, cand]))][:k_people]
        m = len(order)
        out.people[i, :m] = order
        out.scores[i, :m] = score[i, order]
        out.best[i, :m] = first[i, order]
        for j, p in enumerate(order.tolist()):
            s = layout.starts[p]
            out.face_ids[i, j] = layout.face_ids[
                s + int(np.argmax(sims[i, s : s + layout.counts[p]]))
            ]
        if neg is not None:
            col = layout.neg_column[order]
            has = col >= 0
            out.negative[i, :m][has] = neg[i, col[has]]
    return out
