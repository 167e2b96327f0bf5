"""Incremental grouping of unknown faces: average linkage, one face at a time.

A group keeps the sum of its members' (L2-normalised) embeddings, so the average similarity of
a face to every member of a group is one dot product (``x . S_g / n_g``), and the average
similarity between two groups (average linkage) is ``S_a . S_b / (n_a n_b)``. A new face joins
the group it is most like on average when that reaches the threshold, else it starts a group of
its own; then the group it joined is merged with any other group whose average linkage to it
now reaches the threshold (repeated until none does). After every face no two groups have an
average linkage at or above the threshold: the stopping rule of batch average-linkage
clustering cut at the same threshold (``facemetric.cluster``), reached without ever looking at
all faces again. Each face costs one product with the group sums, O(groups x dim).

Greedy arrival order alone merges a little more than batch clustering's best-first order (it
cost 1-1.5 points of pairwise precision here), so each new face also *repairs* locally: the
faces of the few open groups nearest it (``neighbours``, within ``margin`` below the threshold)
and the new face are clustered again by exact average linkage, and each resulting cluster keeps
the id of the old group it shares most faces with. That costs O(faces of those groups squared),
bounded by group sizes (at most ``repair_limit`` faces; a face near larger groups joins them
greedily), not by the pool, and matched batch precision and recall to 0.001.

Groups the user has touched (merged, split off, dismissed) are *frozen*: new faces may still join
them, but they are never merged automatically, so a split is never undone by the next face.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from facemetric.errors import ConfigError

# Average-linkage cut (cosine similarity) for the pretrained dlib model: the lowest (in steps of
# 0.01) that kept pairwise precision >= 0.98 on 2,000 unseen faces (benchmarks/unknown_stream.py).
DEFAULT_THRESHOLD = 0.94
NEIGHBOURS = 4  # groups re-clustered with a new face (local repair)
MARGIN = 0.03  # ... those within this much below the threshold of it
REPAIR_LIMIT = 300  # most faces re-clustered at once; beyond, a face joins greedily


@dataclass
class Placement:
    """Where ``Grouper.add`` put a face: its group, whether that group is new, and the
    automatic merges it caused as (absorbed group, kept group) pairs, in order."""

    group: int
    created: bool
    similarity: float  # average similarity to the group it joined (1.0 for a new group)
    merges: list[tuple[int, int]] = field(default_factory=list)
    moved: dict[int, int] = field(default_factory=dict)  # face -> new group (local repair)
    closed: list[int] = field(default_factory=list)  # groups emptied by the local repair


class Grouper:
    """Faces grouped incrementally by average linkage at ``threshold`` (see the module doc).

    Group ids come from ``new_group`` (the store's new row id) or a counter from 1."""

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        dim: int | None = None,
        neighbours: int = NEIGHBOURS,
        margin: float = MARGIN,
        repair_limit: int = REPAIR_LIMIT,
    ) -> None:
        if not -1.0 <= float(threshold) <= 1.0:
            raise ConfigError(f"unknown threshold: a cosine similarity in [-1, 1], got {threshold}")
        self.threshold = float(threshold)
        self.neighbours = int(neighbours)
        self.margin = float(margin)
        self.repair_limit = int(repair_limit)
        self._dim = dim
        self._sums = np.zeros((0, dim or 0), np.float64)
        self._counts = np.zeros(0, np.int64)
        self._frozen = np.zeros(0, bool)
        self._slot_group = np.zeros(0, np.int64)
        self._used = 0  # rows of the arrays in use (some may be free)
        self._slots: dict[int, int] = {}  # group id -> row of the arrays
        self._free: list[int] = []
        self._members: dict[int, set[int]] = {}  # group id -> face ids
        self._faces: dict[int, tuple[int, np.ndarray]] = {}  # face id -> (group, vector)
        self._next = 1

    # ---- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._faces)

    @property
    def groups(self) -> dict[int, set[int]]:
        """Group id -> its face ids (do not change)."""
        return self._members

    def group_of(self, face_id: int) -> int | None:
        found = self._faces.get(int(face_id))
        return None if found is None else found[0]

    def labels(self, face_ids: Iterable[int]) -> list[int]:
        """The group of each face (-1 for a face not held)."""
        return [self._faces.get(int(i), (-1, None))[0] for i in face_ids]

    def propose(self, vector: np.ndarray) -> tuple[int | None, float]:
        """The group a face would join and its average similarity to it (None: a new group)."""
        x = self._check(vector)
        if not self._slots:
            return None, 1.0
        used = self._used
        sims = (self._sums[:used] @ x) / np.maximum(self._counts[:used], 1)
        sims[self._counts[:used] == 0] = -np.inf
        best = int(np.argmax(sims))
        if sims[best] >= self.threshold:
            return int(self._slot_group[best]), float(sims[best])
        return None, float(sims[best])

    # ---- changing ------------------------------------------------------------------------------
    def add(
        self,
        face_id: int,
        vector: np.ndarray,
        group: int | None = None,
        new_group: Callable[[], int] | None = None,
        merge: bool = True,
    ) -> Placement:
        """Place a face: in ``group`` when given (loading what the store holds), else where it
        fits (see the module doc), merging the groups that then reach the threshold."""
        x = self._check(vector)
        face_id = int(face_id)
        if face_id in self._faces:
            raise ConfigError(f"unknown face {face_id} is already grouped")
        similarity = 1.0
        if group is None and self.neighbours > 0:
            repaired = self._repair(face_id, x, new_group)
            if repaired is not None:
                if merge:
                    self._merge_around(repaired)
                return repaired
        if group is None:
            group, similarity = self.propose(x)
        created = group is None or group not in self._slots
        if group is None:
            group = new_group() if new_group is not None else self._next
        self._next = max(self._next, group + 1)
        if created:
            self._open(group)
        slot = self._slots[group]
        self._sums[slot] += x
        self._counts[slot] += 1
        self._members[group].add(face_id)
        self._faces[face_id] = (group, x)
        placement = Placement(group, created, similarity)
        if merge:
            self._merge_around(placement)
        return placement

    def remove(self, face_ids: Iterable[int]) -> None:
        """Forget faces (pruned or named); a group left empty goes."""
        for face_id in face_ids:
            found = self._faces.pop(int(face_id), None)
            if found is None:
                continue
            group, x = found
            slot = self._slots[group]
            self._sums[slot] -= x
            self._counts[slot] -= 1
            self._members[group].discard(int(face_id))
            if not self._members[group]:
                self._close(group)

    def freeze(self, group: int, frozen: bool = True) -> None:
        """Never merge ``group`` automatically (the user decided about it)."""
        if group in self._slots:
            self._frozen[self._slots[group]] = frozen

    def is_frozen(self, group: int) -> bool:
        return group in self._slots and bool(self._frozen[self._slots[group]])

    def merge(self, into: int, other: int) -> None:
        """Move every face of ``other`` into ``into`` (the sums add up)."""
        if into == other:
            return
        a, b = self._slots[into], self._slots[other]
        self._sums[a] += self._sums[b]
        self._counts[a] += self._counts[b]
        self._frozen[a] |= self._frozen[b]
        for face_id in self._members[other]:
            self._faces[face_id] = (into, self._faces[face_id][1])
        self._members[into] |= self._members[other]
        self._members[other] = set()
        self._close(other)

    # ---- inside --------------------------------------------------------------------------------
    def _repair(
        self, face_id: int, x: np.ndarray, new_group: Callable[[], int] | None
    ) -> Placement | None:
        """Average linkage run again over the new face and the few open groups nearest it
        (within ``margin`` below the threshold): the greedy order of arrival must not decide
        what batch clustering's best-first order would not. None: nothing near to repair."""
        used = self._used
        if used == 0:
            return None
        counts = self._counts[:used]
        sims = (self._sums[:used] @ x) / np.maximum(counts, 1)
        sims[counts == 0] = -np.inf
        best = int(np.argmax(sims))
        if self._frozen[best] and sims[best] >= self.threshold:
            return None  # joins a group the user decided about, as it is
        sims[self._frozen[:used]] = -np.inf
        near = [
            int(i)
            for i in np.argsort(-sims)[: self.neighbours]
            if sims[i] >= self.threshold - self.margin
        ]
        while near and int(counts[near].sum()) + 1 > self.repair_limit:
            near.pop()  # the farthest first: the cost stays bounded however large groups grow
        if not near:
            return None
        old = [int(self._slot_group[i]) for i in near]
        faces = [f for g in old for f in sorted(self._members[g])]
        X = np.stack([self._faces[f][1] for f in faces] + [x])
        labels = _average_linkage(X, self.threshold)
        before = [self._faces[f][0] for f in faces] + [-1]
        # each new cluster keeps the old group it shares most faces with (greedy, largest first)
        overlap: dict[tuple[int, int], int] = {}
        for lab, g in zip(labels.tolist(), before, strict=True):
            if g >= 0:
                overlap[(lab, g)] = overlap.get((lab, g), 0) + 1
        name: dict[int, int] = {}
        taken: set[int] = set()
        for (lab, g), _ in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0][1])):
            if lab not in name and g not in taken:
                name[lab] = g
                taken.add(g)
        placement = Placement(group=-1, created=False, similarity=float(sims[best]))
        for lab in sorted(set(labels.tolist())):
            if lab not in name:
                gid = new_group() if new_group is not None else self._next
                self._next = max(self._next, gid + 1)
                self._open(gid)
                name[lab] = gid
        for f, lab in zip([*faces, face_id], labels.tolist(), strict=True):
            target = name[lab]
            if f == face_id:
                slot = self._slots[target]
                self._sums[slot] += x
                self._counts[slot] += 1
                self._members[target].add(face_id)
                self._faces[face_id] = (target, x)
                placement.group = target
                placement.created = target not in old
                placement.moved[face_id] = target
            elif self._faces[f][0] != target:
                self._move(f, target)
                placement.moved[f] = target
        for g in old:
            if g in self._members and not self._members[g]:
                self._close(g)
                placement.closed.append(g)
        return placement

    def _move(self, face_id: int, target: int) -> None:
        group, x = self._faces[face_id]
        a, b = self._slots[group], self._slots[target]
        self._sums[a] -= x
        self._counts[a] -= 1
        self._sums[b] += x
        self._counts[b] += 1
        self._members[group].discard(face_id)
        self._members[target].add(face_id)
        self._faces[face_id] = (target, x)

    def _merge_around(self, placement: Placement) -> None:
        group = placement.group
        while True:
            c = self._slots[group]
            if self._frozen[c]:
                return
            used = self._used
            counts = self._counts[:used]
            link = (self._sums[:used] @ self._sums[c]) / np.maximum(counts * counts[c], 1)
            link[(counts == 0) | self._frozen[:used]] = -np.inf
            link[c] = -np.inf
            best = int(np.argmax(link))
            if link[best] < self.threshold:
                return
            other = int(self._slot_group[best])
            # the larger group keeps its id (ties: the older one)
            keep, gone = (
                (other, group) if (counts[best], -other) > (counts[c], -group) else (group, other)
            )
            self.merge(keep, gone)
            placement.merges.append((gone, keep))
            placement.group = group = keep

    def _check(self, vector: np.ndarray) -> np.ndarray:
        x = np.asarray(vector, np.float64).reshape(-1)
        if self._dim is None:
            self._dim = len(x)
            self._sums = np.zeros((0, self._dim), np.float64)
            self._counts = np.zeros(0, np.int64)
        if len(x) != self._dim:
            raise ConfigError(f"unknown face: embedding of size {len(x)}, expected {self._dim}")
        return x

    def _open(self, group: int) -> None:
        if self._free:
            slot = self._free.pop()
        else:
            slot = self._used
            self._used += 1
            if slot == len(self._counts):  # grow the arrays by doubling: amortised O(1)
                cap = max(16, 2 * slot)
                sums = np.zeros((cap, self._sums.shape[1]), np.float64)
                sums[:slot] = self._sums[:slot]
                self._sums = sums
                self._counts = np.concatenate([self._counts, np.zeros(cap - slot, np.int64)])
                self._frozen = np.concatenate([self._frozen, np.zeros(cap - slot, bool)])
                grow = np.full(cap - slot, -1, np.int64)
                self._slot_group = np.concatenate([self._slot_group, grow])
        self._slot_group[slot] = group
        self._sums[slot] = 0.0
        self._counts[slot] = 0
        self._frozen[slot] = False
        self._slots[group] = slot
        self._members[group] = set()

    def _close(self, group: int) -> None:
        slot = self._slots.pop(group)
        self._sums[slot] = 0.0
        self._counts[slot] = 0
        self._frozen[slot] = False
        self._slot_group[slot] = -1
        self._free.append(slot)
        del self._members[group]


def _average_linkage(X: np.ndarray, threshold: float) -> np.ndarray:
    """Batch average linkage of a few faces cut at ``threshold`` (cosine similarity)."""
    if len(X) == 1:
        return np.zeros(1, np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage

    d = np.clip(1.0 - X @ X.T, 0.0, 2.0)
    iu = np.triu_indices(len(X), 1)
    tree = linkage(d[iu], method="average")
    return fcluster(tree, t=1.0 - threshold, criterion="distance").astype(np.int64)
