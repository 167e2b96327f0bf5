"""Keeping faces nobody matched, grouped as they arrive (``identify --keep-unknown``,
``serve --keep-unknown``).

The ``Recognizer`` hands every face it could not name to ``UnknownKeeper.keep_unmatched`` (with
the frame and the embedding it already computed). The keeper holds the pool's groups in memory
(``Grouper``: one product with the group sums per face, flat as the pool grows) and writes each
kept face, its group and any automatic merge in one transaction. Before writing it checks the
pool's counter: when another process (the CLI naming a group, another server) changed the pool,
it reads the groups again first, inside that transaction.

A stream sees the same stranger in every frame: a face that joins a group which got a face from
the same source less than ``interval`` seconds ago is not kept (no chip is even encoded), so a
webcam keeps about one face per stranger per interval. Retention (``max_days``, ``max_faces``)
runs as faces are added: past either limit the oldest faces go, rows and chips, with the groups
they leave empty.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from facemetric.errors import FacemetricError
from facemetric.gallery.backend import Connection
from facemetric.gallery.records import CHIP_TEMPLATE, FaceRecord, encode_chip
from facemetric.gallery.store import GalleryStore
from facemetric.unknown import writes as pool
from facemetric.unknown.grouping import DEFAULT_THRESHOLD, Grouper
from facemetric.unknown.store import UnknownStore

log = logging.getLogger(__name__)

AGE_CHECK_SECONDS = 60.0  # how often the age limit is applied while faces arrive
MATCH_MARGIN = 0.01  # default grouping threshold: this much above the match threshold


def grouping_threshold(match_threshold: float | None) -> float:
    """The default grouping threshold for a model: a little above its match threshold (a group
    is as sure as a match, for every pair on average); dlib's 0.930 gives 0.94, the lowest cut
    that kept pairwise precision >= 0.98 in benchmarks/unknown_stream.py."""
    if match_threshold is None:
        return DEFAULT_THRESHOLD
    return min(1.0, round(float(match_threshold) + MATCH_MARGIN, 4))


def attach_keeper(recognizer: Any, threshold: float | None = None, **options: Any) -> UnknownKeeper:
    """Have ``recognizer`` keep the faces it matches to nobody (``recognizer.unknown_keeper``)
    in its own gallery; ``options``: ``UnknownKeeper``'s retention, interval and source."""
    if threshold is None:
        threshold = grouping_threshold(recognizer.threshold)
    keeper = UnknownKeeper(recognizer.store, recognizer.model_key, threshold=threshold, **options)
    recognizer.unknown_keeper = keeper
    return keeper


class UnknownKeeper:
    """Keeps unmatched faces of ``model_key``'s embeddings in ``store``'s unknown pool."""

    def __init__(
        self,
        store: GalleryStore,
        model_key: str,
        threshold: float | None = None,
        max_days: float | None = 30.0,
        max_faces: int | None = 10_000,
        interval: float = 10.0,
        source: str | None = None,
        camera: str | None = None,
        trusted_sources: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.trusted_sources = tuple(trusted_sources)  # kept faces pruned last
        self.pool = UnknownStore(store)
        self.model_key = model_key
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self.max_days = max_days
        self.max_faces = max_faces
        self.interval = float(interval)
        self.source = source
        self.camera = camera
        self._lock = threading.Lock()
        self._grouper = Grouper(self.threshold)
        self._generation = -1  # the pool's counter our groups match; -1: not loaded
        self._total = 0  # faces in the pool (every model)
        self._last_kept: dict[tuple[int, str | None], float] = {}  # (group, source) -> time
        self._age_checked = 0.0

    # ---- the recognizer's hook -----------------------------------------------------------------
    def keep_unmatched(
        self,
        image: np.ndarray,
        faces: Sequence[Any],
        embeddings: np.ndarray,
        matched: Sequence[bool],
        source: str | None = None,
    ) -> list[int]:
        """Keep the faces of ``image`` that matched nobody; their new ids (faces skipped as
        repeats are left out). Never raises: a failure to keep is logged, recognition goes on."""
        kept = []
        for face, vector, ok in zip(faces, embeddings, matched, strict=True):
            if ok:
                continue
            try:
                face_id = self.keep(image, face, vector, source)
            except FacemetricError as exc:  # the database away, ...: said, not a traceback
                log.warning("could not keep an unknown face: %s", exc)
                continue
            except Exception:  # keeping is a side job: it must not break recognition
                log.exception("could not keep an unknown face")
                continue
            if face_id is not None:
                kept.append(face_id)
        return kept

    def keep(
        self, image: np.ndarray, face: Any, vector: np.ndarray, source: str | None = None
    ) -> int | None:
        """Keep one detected face (``AlignedFace``) of ``image``: its gallery chip is cut from
        the frame only once it is known to be kept."""
        return self._keep(vector, source, lambda: FaceRecord.from_photo(image, face))

    def keep_chip(
        self,
        chip: np.ndarray,
        vector: np.ndarray,
        source: str | None = None,
        chip_template: str | None = CHIP_TEMPLATE,
    ) -> int | None:
        """Keep a face from its chip (already cut, ``chip_template``'s landmarks)."""
        return self._keep(
            vector, source, lambda: FaceRecord(chip=chip, chip_template=chip_template)
        )

    # ---- reading the groups --------------------------------------------------------------------
    def face_groups(self) -> dict[int, int]:
        """Face id -> group id of every face held (after reading the pool if it changed)."""
        with self._lock:
            self._sync()
            return {f: g for g, members in self._grouper.groups.items() for f in members}

    # ---- inside --------------------------------------------------------------------------------
    def _keep(self, vector: np.ndarray, source: str | None, make: Any) -> int | None:
        x = np.asarray(vector, np.float32).reshape(-1)
        source = source if source is not None else self.source
        now = time.time()
        with self._lock:
            if self._generation < 0:
                self._sync()
            # the write below reads the groups again if another process changed them; this
            # early look (is it a repeat?) may be a moment behind
            group, _ = self._grouper.propose(x)
            if group is not None and self._repeat(group, source, now):
                return None
            record: FaceRecord = make()
            png = encode_chip(record.chip)  # the default chip format (JPEG), as the gallery's
            try:
                with self.store.backend.write() as con:
                    generation = pool.bump(con)
                    if generation != self._generation + 1:  # someone else changed the pool
                        self._load(con)
                    face_id = self._write(con, x, record, png, source, now)
                    self._generation = generation
            except BaseException:
                self._generation = -1  # memory may be ahead of the database: read it again
                raise
            return face_id

    def _repeat(self, group: int, source: str | None, now: float) -> bool:
        last = self._last_kept.get((group, source))
        return self.interval > 0 and last is not None and now - last < self.interval

    def _write(
        self,
        con: Connection,
        x: np.ndarray,
        record: FaceRecord,
        png: bytes,
        source: str | None,
        now: float,
    ) -> int:
        grouper = self._grouper
        face_id = pool.insert_face(
            con, None, now, png, x, self.model_key, source=source, camera=self.camera,
            chip_template=record.chip_template,
            chip_landmarks=_json(record.chip_landmarks), box=_json(record.box),
            quality=None if record.quality is None else json.dumps(record.quality),
        )  # fmt: skip
        placement = grouper.add(face_id, x, new_group=lambda: pool.new_group(con, now))
        pool.apply_placement(con, face_id, placement, now)
        for gone, kept in placement.merges:
            for key in [k for k in self._last_kept if k[0] == gone]:
                self._last_kept[(kept, key[1])] = self._last_kept.pop(key)
        self._last_kept[(placement.group, source)] = now
        self._total += 1
        self._retain(con, now)
        return face_id

    def _retain(self, con: Connection, now: float) -> None:
        over = self.max_faces is not None and self._total > self.max_faces
        aged = self.max_days is not None and now - self._age_checked >= AGE_CHECK_SECONDS
        if not (over or aged):
            return
        if aged:
            self._age_checked = now
        gone = pool.prune(
            con, self.max_days if aged else None, self.max_faces, now, self.trusted_sources
        )
        if gone:
            self._grouper.remove(gone)
            self._total -= len(gone)

    def _sync(self) -> None:
        """Read the pool again when someone else changed it since we last did."""
        if self._generation >= 0 and self.pool.generation() == self._generation:
            return
        with self.store.backend.read() as con:
            self._load(con)
            row = con.execute(
                "SELECT value FROM meta WHERE key = ?", (pool.GENERATION_KEY,)
            ).fetchone()
            self._generation = 0 if row is None else int(row[0])

    def _load(self, con: Connection) -> None:
        grouper = Grouper(self.threshold)
        frozen: set[int] = set()
        for face_id, group, vector, pinned, status in pool.load_vectors(con, self.model_key):
            grouper.add(face_id, vector, group=group, merge=False)
            if pinned or status != "open":
                frozen.add(group)
        for group in frozen:
            grouper.freeze(group)
        self._grouper = grouper
        self._total = int(con.execute("SELECT COUNT(*) FROM unknown_faces").fetchone()[0])
        live = grouper.groups
        self._last_kept = {k: t for k, t in self._last_kept.items() if k[0] in live}


def _json(values: Any) -> str | None:
    if values is None:
        return None
    return json.dumps(np.asarray(values, dtype=float).round(3).tolist())
