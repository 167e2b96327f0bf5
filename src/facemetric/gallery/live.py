"""A running server's view of the gallery: one model's embeddings in memory, searchable, following
every change made anywhere (another server, the CLI) without reading the whole gallery again.

The store logs which faces each change touched; ``refresh`` reads only those faces (their
current state: present or gone, person, kind, this model's embedding, computed first when
missing) and updates the index in place. A follower thread (``follow``) refreshes when the
backend says something changed (PostgreSQL ``NOTIFY``) and polls as a safety net (SQLite, or a
notification lost while the database was away); while the database cannot be reached, searches
go on with the faces already loaded and ``status`` says why it is stale. Without a follower,
every search first checks the gallery's generation (a local read for SQLite), so a command that
writes and then searches sees its own change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.errors import GalleryError
from facemetric.gallery.index import SearchIndex, check_index_name, create_index
from facemetric.gallery.persons import PersonLayout, PersonScores, single_thread_blas, top_people
from facemetric.gallery.store import GalleryEmbeddings, GalleryStore, model_key

if TYPE_CHECKING:
    from facemetric.models.inference import Embedder

log = logging.getLogger(__name__)

POLL_SECONDS = {"sqlite": 0.25, "postgresql": 1.0}  # follower's safety-net poll


@dataclass
class GalleryStatus:
    """What a server holds of the gallery, for ``/api/health``."""

    generation: int  # the store generation the loaded faces are up to date with (-1: none yet)
    faces: int
    people: int
    negatives: int
    index: dict[str, Any] = field(default_factory=dict)
    following: bool = False
    error: str | None = None  # why the loaded faces may be stale (the database is away)
    updated: float | None = None  # when the last refresh finished (Unix seconds)


@dataclass(frozen=True)
class PersonLookup:
    """Reference face ids (sorted) with each one's person (an index into ``names``), and each
    person's number of reference faces."""

    face_ids: np.ndarray
    people: np.ndarray
    names: list[str]
    counts: np.ndarray

    def persons(self, face_ids: np.ndarray) -> np.ndarray:
        """The person index of each face id (-1: not a reference face held)."""
        if not len(self.face_ids):
            return np.full(face_ids.shape, -1, np.int64)
        pos = np.clip(np.searchsorted(self.face_ids, face_ids), 0, len(self.face_ids) - 1)
        return np.where(self.face_ids[pos] == face_ids, self.people[pos], -1)


def describe_model(embedder: Any) -> str:
    """A model as users name it (``dlib+faceres:flip``), else its checkpoint file."""
    meta = getattr(embedder, "meta", None) or {}
    return str(meta.get("pretrained") or getattr(embedder, "checkpoint_path", "?"))


def check_probes(
    key: str, dim: int, queries: np.ndarray, probe_key: str | None, model: str = ""
) -> None:
    """``GalleryError`` when probes were embedded otherwise than the gallery's faces."""
    q = np.asarray(queries)
    if probe_key is not None and probe_key != key:
        mode = " with mirror-image averaging (flip)" if probe_key.endswith(FLIP_PROBES) else ""
        raise GalleryError(
            f"probes embedded{mode} by model {probe_key[:12]}, but the gallery's faces by "
            f"{model or 'another model'} ({key[:12]}): embed references and probes alike "
            "(for flip, name the model NAME:flip, e.g. dlib:flip)"
        )
    if q.ndim == 2 and q.shape[1] != dim:
        raise GalleryError(
            f"probes are {q.shape[1]}-d but the gallery's faces are {dim}-d embeddings of "
            f"{model or 'another model'}: embed them with the gallery's model"
        )


FLIP_PROBES = "+flip-probes"


class LiveGallery:
    """The faces of ``store`` embedded by ``embedder``, searchable by similarity."""

    def __init__(
        self,
        store: GalleryStore,
        embedder: Embedder,
        index: str = "auto",
        compute_missing: bool = True,
        embed_lock: threading.RLock | threading.Lock | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.key = model_key(embedder)
        self.index_name = check_index_name(index)
        self.compute_missing = compute_missing
        self._lock = threading.RLock()  # held while the index changes or is searched
        self._refresh_lock = threading.Lock()
        self._embed_lock = embed_lock if embed_lock is not None else threading.Lock()
        self._generation = -1
        self._index: SearchIndex | None = None
        self._person_of: dict[int, str] = {}  # reference face id -> person
        self._lookup: PersonLookup | None = None  # the same as arrays, made when first asked
        self._layout: tuple[int, PersonLayout] | None = None  # (generation, grouped vectors)
        self._faces_of: dict[str, set[int]] = {}
        self._negatives: dict[int, tuple[str, np.ndarray]] = {}  # negative face id -> (person, v)
        self._dim = int(embedder.spec.embedding_dim)
        self._error: str | None = None
        self._updated: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unwatch: Callable[[], None] | None = None
        self._listeners: list[Callable[[], None]] = []
        single_thread_blas()

    # ---- loading and following -------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._generation

    def refresh(self) -> bool:
        """Bring the loaded faces up to the store's generation; True when anything changed.

        The database is read (and missing embeddings computed) outside the search lock, so
        searches never wait on the database; refreshes run one at a time."""
        with self._refresh_lock:
            current = self.store.change_counter()
            if current == self._generation:
                return False
            changes = None if self._generation < 0 else self.store.changes_since(self._generation)
            if changes is None:  # first load, or the log was pruned past us: read everything
                rows = self._read(None)
                with self._lock:
                    self._person_of, self._faces_of, self._negatives = {}, {}, {}
                    refs = self._split(rows)
                    self._index = create_index(self.index_name, refs.vectors, refs.face_ids)
                    self._generation = current
            else:
                touched = sorted(changes.face_ids)
                rows = self._read(touched)
                with self._lock:
                    self._apply(touched, rows)
                    self._generation = changes.generation
            self._updated = time.time()
            self._lookup = None
            self._layout = None
        self._changed()
        return True

    def _read(self, face_ids: list[int] | None) -> GalleryEmbeddings:
        """These faces (None: all) as they are now, embedded by this model (missing embeddings
        are computed first, holding the embedder's lock: it is not re-entrant)."""
        if self.compute_missing:
            missing = self.store.missing_embeddings(self.key, face_ids)
            if missing:
                with self._embed_lock:
                    self.store.reembed(self.embedder, missing_only=True, face_ids=missing)
        return self.store.embeddings(
            self.key, compute_missing=False, face_ids=face_ids, kinds=("reference", "negative")
        )

    def _split(self, rows: GalleryEmbeddings) -> GalleryEmbeddings:
        """Record rows' people and negatives; returns the reference rows to index."""
        if rows.vectors.shape[0] and rows.vectors.shape[1] != self._dim:
            raise GalleryError(
                f"{self.store.location}: embeddings of {rows.vectors.shape[1]} values stored "
                f"for a model of {self._dim}"
            )
        kinds = rows.kinds or ["reference"] * len(rows.names)
        keep = []
        for i, (face_id, name, kind) in enumerate(
            zip(rows.face_ids.tolist(), rows.names, kinds, strict=True)
        ):
            if kind == "negative":
                self._negatives[int(face_id)] = (name, rows.vectors[i].copy())
            else:
                self._person_of[int(face_id)] = name
                self._faces_of.setdefault(name, set()).add(int(face_id))
                keep.append(i)
        take = np.asarray(keep, np.int64)
        return GalleryEmbeddings(
            rows.model_key,
            rows.vectors[take].reshape(len(keep), self._dim),
            rows.face_ids[take],
            rows.person_ids[take],
            [rows.names[i] for i in keep],
        )

    def _apply(self, touched: list[int], rows: GalleryEmbeddings) -> None:
        assert self._index is not None  # loaded before any change is applied
        gone = [i for i in touched if i in self._person_of]
        for face_id in gone:
            name = self._person_of.pop(face_id)
            faces = self._faces_of.get(name)
            if faces is not None:
                faces.discard(face_id)
                if not faces:
                    del self._faces_of[name]
        for face_id in touched:
            self._negatives.pop(face_id, None)
        if gone:
            self._index.remove(np.asarray(gone, np.int64))
        refs = self._split(rows)
        if len(refs.face_ids):
            self._index.add(refs.face_ids, refs.vectors)

    def follow(self) -> None:
        """Keep up with the store from a thread of its own until ``close``."""
        if self._thread is not None:
            return
        self._unwatch = self.store.backend.watch(self._on_notice)
        self._thread = threading.Thread(target=self._run, name="facemetric-follow", daemon=True)
        self._thread.start()

    def _on_notice(self, generation: int | None) -> None:
        if generation is None or generation != self._generation:
            self._wake.set()

    def _run(self) -> None:
        poll = POLL_SECONDS.get(self.store.kind, 1.0)
        while not self._stop.is_set():
            self._wake.wait(poll)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.refresh()
            except GalleryError as exc:  # the database is away: keep what is loaded
                if self._error is None:
                    log.warning("gallery: %s; recognising with the faces loaded", exc)
                self._error = str(exc)
                continue
            if self._error is not None:
                log.warning("gallery: %s answers again", self.store.location)
                self._error = None

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each refresh that changed the loaded faces."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a listener's failure must not stop following
                log.exception("gallery change listener failed")

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._unwatch is not None:
            self._unwatch()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    # ---- reading ---------------------------------------------------------------------------------
    def current(self) -> LiveGallery:
        """Up to date (checked now unless a follower keeps it so) and ready to search."""
        if self._thread is None or self._generation < 0:
            self.refresh()
        return self

    def search(
        self, queries: np.ndarray, k: int, probe_key: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar reference faces of each query: (sims, face ids), -1 padded.

        ``probe_key``: the model (and embedding mode) that embedded ``queries``; probes of
        another model than the gallery's embeddings, or of another size, are refused: their
        scores would mean nothing."""
        check_probes(self.key, self._dim, queries, probe_key, describe_model(self.embedder))
        with self._lock:
            assert self._index is not None  # current() loads it
            return self._index.search(queries, k)

    def person_layout(self) -> PersonLayout | None:
        """The reference vectors grouped by person for this generation (made once per
        generation); None while the index answers approximately (hits are searched then)."""
        with self._lock:
            index = self._index
            slots = getattr(index, "slots", None)
            if index is None or slots is None or index.kind not in ("exact", "faiss"):
                return None
            cached = self._layout
            if cached is not None and cached[0] == self._generation:
                return cached[1]
            names = sorted(self._faces_of)
            number = {name: i for i, name in enumerate(names)}
            ids = slots.ids.copy()
            people = np.fromiter((number[self._person_of[int(i)]] for i in ids), np.int64, len(ids))
            layout = PersonLayout.build(names, ids, people, slots.vectors, self.negatives())
            self._layout = (self._generation, layout)
            return layout

    def top_people(
        self,
        queries: np.ndarray,
        k_hits: int,
        k_people: int,
        agree: int,
        negatives: bool = True,
        probe_key: str | None = None,
    ) -> tuple[PersonLayout, PersonScores] | None:
        """Each query's best people as ``per_person_top_k`` finds them in the ``k_hits``
        best faces, from one scan (``facemetric.gallery.persons``); None when the index is
        approximate now. ``probe_key``: as for ``search`` (probes of another model refused)."""
        check_probes(self.key, self._dim, queries, probe_key, describe_model(self.embedder))
        layout = self.person_layout()
        if layout is None:
            return None
        return layout, top_people(layout, queries, k_hits, k_people, agree, negatives)

    def person_of(self, face_id: int) -> str | None:
        return self._person_of.get(int(face_id))

    def person_lookup(self) -> PersonLookup:
        """Reference faces' people as arrays, for looking up many search hits at once."""
        lookup = self._lookup
        if lookup is None:
            with self._lock:
                names = sorted(self._faces_of)
                index = {name: i for i, name in enumerate(names)}
                ids = np.fromiter(self._person_of.keys(), np.int64, len(self._person_of))
                people = np.fromiter(
                    (index[n] for n in self._person_of.values()), np.int64, len(ids)
                )
                order = np.argsort(ids)
                counts = np.array([len(self._faces_of[n]) for n in names], np.int64)
                lookup = PersonLookup(ids[order], people[order], names, counts)
                self._lookup = lookup
        return lookup

    @property
    def faces_per_person(self) -> int:
        """The most reference faces one person has (1 for an empty gallery)."""
        counts = self.person_lookup().counts
        return int(counts.max()) if len(counts) else 1

    def __len__(self) -> int:
        return len(self._person_of)

    def reference_faces(self) -> dict[str, list[int]]:
        """Each person's reference face ids (a copy: the decision's calibration samples it)."""
        with self._lock:
            return {name: sorted(ids) for name, ids in self._faces_of.items()}

    def face_count(self, name: str) -> int:
        """How many reference faces ``name`` has (0: not in the gallery)."""
        return len(self._faces_of.get(name, ()))

    @property
    def people(self) -> list[str]:
        return sorted(self._faces_of)

    def negatives(self) -> dict[str, np.ndarray]:
        """Each person's negative faces' embeddings, (n, D) float32."""
        with self._lock:
            out: dict[str, list[np.ndarray]] = {}
            for name, vec in self._negatives.values():
                out.setdefault(name, []).append(vec)
        return {name: np.stack(vs) for name, vs in out.items()}

    def status(self) -> GalleryStatus:
        with self._lock:
            info = self._index.describe() if self._index is not None else {}
            return GalleryStatus(
                generation=self._generation,
                faces=len(self._person_of),
                people=len(self._faces_of),
                negatives=len(self._negatives),
                index=info,
                following=self._thread is not None,
                error=self._error,
                updated=self._updated,
            )
