"""A photo library sorted by person, with no gallery: what ``facemetric cluster`` runs.

Every face of every photo under a folder tree is found and embedded with the same detector,
alignment and model as ``identify`` (embeddings kept in a cache inside the output folder, so a
second run embeds only new or changed photos), grouped by ``cluster_embeddings`` and written as one
folder per group holding links to (or copies of) the photos; faces that belong with nobody go to
``unsorted``. With a gallery, a group most of whose faces match one known person takes that name
(the same match decision as ``identify``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.cluster.cache import EmbeddingCache, PhotoFaces
from facemetric.cluster.core import DEFAULT_METHOD, DEFAULT_THRESHOLDS, cluster_embeddings
from facemetric.cluster.faces import ClusteredFace
from facemetric.cluster.folders import MANIFEST_NAME, UNSORTED_FOLDER, name_groups, write_folders
from facemetric.data.image import is_image_path, load_image
from facemetric.errors import ConfigError, DatasetError, ImageReadError

CACHE_NAME = ".facemetric-cluster.sqlite"
# Thresholds for embeddings of each face averaged with its mirror image (``flip``, the default
# here): chosen on the same CFP tuning set as ``core.DEFAULT_THRESHOLDS`` (the best BCubed F with
# pairwise precision >= 0.99 there; benchmarks/cluster_quality.py --flip).
FLIP_THRESHOLDS: dict[str, float] = {
    "average": 0.94,
    "complete": 0.91,
    "chinese_whispers": 0.945,
    "hdbscan": 0.88,
}
CSV_COLUMNS = ("image", "face", "x1", "y1", "x2", "y2", "group", "person", "similarity")


@dataclass(frozen=True)
class ClusterConfig:
    """One ``facemetric cluster`` run (the CLI fills it from its arguments)."""

    photos: Path
    out: Path
    model: str | None = None
    engine: str = "auto"
    detector: str = "retinaface"
    method: str = DEFAULT_METHOD
    threshold: float | None = None
    min_size: int = 2
    copy: bool = False
    db: str | None = None
    progress: bool = True
    flip: bool = True  # each face embedded with its mirror image too (higher F at equal precision)

    def resolved_threshold(self) -> float:
        """The threshold given, else the method's default for these embeddings."""
        if self.threshold is not None:
            return float(self.threshold)
        table = FLIP_THRESHOLDS if self.flip else DEFAULT_THRESHOLDS
        if self.method not in table:
            raise ConfigError(f"--method: unknown clustering method {self.method!r}")
        return table[self.method]


@dataclass
class EmbedReport:
    """What finding faces did: photos read, embedded anew, reused from the cache, skipped."""

    photos: int = 0
    embedded: int = 0  # photos whose faces were detected and embedded in this run
    reused: int = 0  # photos whose faces came from the cache
    no_face: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # photo -> why
    seconds: float = 0.0


@dataclass
class ClusterResult:
    faces: list[ClusteredFace]
    groups: dict[str, list[str]]  # folder -> photos in it
    report: EmbedReport
    out: Path
    seconds: float = 0.0

    @property
    def unsorted(self) -> int:
        return sum(1 for f in self.faces if f.label < 0)

    def summary(self) -> str:
        r = self.report
        people = sum(1 for g in self.groups if g != UNSORTED_FOLDER)
        return (
            f"{r.photos} photos, {len(self.faces)} faces: {people} groups, {self.unsorted} "
            f"unsorted -> {self.out} (embedded {r.embedded} photos, reused {r.reused}, "
            f"no face {r.no_face}, skipped {len(r.skipped)}; {self.seconds:.1f} s)"
        )


# ---- the face pipeline ---------------------------------------------------------------------------
class FacePipeline:
    """Detect, align and embed every face of a photo, as ``Recognizer`` does; the detector
    loads only when a photo has to be read (a fully cached run never loads it)."""

    def __init__(
        self, embedder: Any, detector: str | Any = "retinaface", flip: bool = False
    ) -> None:
        from facemetric.gallery.keys import model_key

        self.embedder = embedder
        self._detector = detector
        self.flip = flip  # each face also embedded mirrored, the two averaged
        self.model_key = model_key(embedder) + ("+flip" if flip else "")

    @property
    def detector(self) -> Any:
        if isinstance(self._detector, str):
            from facemetric.data.detect import create_detector

            self._detector = create_detector(self._detector)
        return self._detector

    def faces(self, image: np.ndarray) -> PhotoFaces:
        from facemetric.data.align import detect_and_align

        spec = self.embedder.spec
        found = detect_and_align(
            image, self.detector, size=int(spec.input_size), template=spec.alignment
        )
        if not found:
            return PhotoFaces([], [], np.zeros((0, 0), np.float32))
        emb = self.embedder.embed(np.stack([f.crop for f in found]), flip=self.flip)
        boxes = [tuple(float(v) for v in f.detection.box) for f in found]
        return PhotoFaces(
            boxes,  # type: ignore[arg-type]
            [float(f.detection.score) for f in found],
            np.asarray(emb, np.float32),
        )


def find_photos(root: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Image files under ``root`` (recursive, sorted; hidden entries and ``exclude`` folders
    left out); a single image file is a library of one."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DatasetError(f"{root}: no such file or folder")
    skip = [p.resolve() for p in exclude]
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in skip
        )
        out.extend(
            here / f for f in sorted(filenames) if not f.startswith(".") and is_image_path(f)
        )
    return out


def embed_photos(
    pipeline: FacePipeline,
    photos: list[Path],
    cache: EmbeddingCache | None,
    progress: bool = True,
    on_skip: Callable[[Path, str], None] | None = None,
) -> tuple[list[tuple[Path, PhotoFaces]], EmbedReport]:
    """Every face of ``photos`` (from ``cache`` when the photo is unchanged); unreadable photos
    are skipped and reported (``on_skip``), never fatal."""
    from tqdm import tqdm

    report = EmbedReport()
    out: list[tuple[Path, PhotoFaces]] = []
    t0 = time.perf_counter()
    bar = tqdm(photos, desc="faces", unit="photo", disable=not progress, file=sys.stderr)
    for photo in bar:
        try:
            found = cache.get(photo) if cache is not None else None
            if found is not None:
                report.reused += 1
            else:
                found = pipeline.faces(load_image(photo))
                report.embedded += 1
                if cache is not None:
                    cache.put(photo, found)
        except ImageReadError as exc:
            why = exc.reason
        except OSError as exc:
            why = f"cannot read ({exc.strerror or exc})"
        else:
            report.photos += 1
            report.no_face += not found.boxes
            out.append((photo, found))
            continue
        report.skipped[str(photo)] = why
        if on_skip is not None:
            on_skip(photo, why)
    if cache is not None:
        cache.commit()
    report.seconds = time.perf_counter() - t0
    return out, report


# ---- the whole job ----------------------------------------------------------------------------
def _relative(photo: Path, root: Path) -> str:
    try:
        return str(photo.relative_to(root)) if root.is_dir() else photo.name
    except ValueError:
        return str(photo)


def cluster_library(
    config: ClusterConfig,
    pipeline: FacePipeline | None = None,
    recognizer: Any = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> ClusterResult:
    """Run ``facemetric cluster``: find, embed, group, name and write; see the module doc.

    ``pipeline`` / ``recognizer``: already loaded parts (tests, the benchmark); by default the
    model is loaded from ``config`` and, with ``config.db``, a ``Recognizer`` over that gallery."""
    t0 = time.perf_counter()
    if config.min_size < 1:
        raise ConfigError(f"--min-size: must be at least 1, got {config.min_size}")
    root, out = config.photos, config.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    photos = find_photos(root, exclude=[out])
    if not photos:
        raise DatasetError(f"{root}: no photos found")
    if recognizer is None and config.db is not None:
        from facemetric.recognize.recognizer import Recognizer

        recognizer = Recognizer.from_paths(
            config.model,
            config.db,
            engine=config.engine,  # type: ignore[arg-type]
            detector=config.detector,
            create=False,
        )
    if pipeline is None:
        if recognizer is not None:
            pipeline = FacePipeline(recognizer.embedder, recognizer.detector, config.flip)
        else:
            from facemetric.models import load_embedder

            embedder = load_embedder(config.model, engine=config.engine)  # type: ignore[arg-type]
            pipeline = FacePipeline(embedder, config.detector, config.flip)
    out.mkdir(parents=True, exist_ok=True)
    with EmbeddingCache(out / CACHE_NAME, pipeline.model_key) as cache:
        found, report = embed_photos(pipeline, photos, cache, config.progress, on_skip)
    index = [(photo, i, f) for photo, f in found for i in range(len(f.boxes))]
    dims = {f.embeddings.shape[1] for _, f in found if f.boxes}
    dim = dims.pop() if dims else 0
    emb = (
        np.concatenate([f.embeddings for _, f in found if f.boxes])
        if index
        else np.zeros((0, dim), np.float32)
    )
    threshold = config.resolved_threshold()
    labels = cluster_embeddings(emb, threshold, config.method, config.min_size)
    persons: list[str | None] = [None] * len(index)
    sims: list[float | None] = [None] * len(index)
    if recognizer is not None and len(index):
        for k, (cands, ok) in enumerate(recognizer.match(emb)):
            if cands:
                sims[k] = cands[0].similarity
                persons[k] = cands[0].identity if ok else None
    names = name_groups(labels, persons, recognizer is not None)
    faces = [
        ClusteredFace(
            image=_relative(photo, root),
            face=i,
            box=f.boxes[i],
            score=f.scores[i],
            group=names[int(labels[k])],
            label=int(labels[k]),
            person=persons[k],
            similarity=sims[k],
        )
        for k, (photo, i, f) in enumerate(index)
    ]
    groups = write_folders(out, root, faces, config.copy)
    result = ClusterResult(faces, groups, report, out, time.perf_counter() - t0)
    manifest = {
        "photos": str(root.resolve()),
        "method": config.method,
        "threshold": threshold,
        "flip": pipeline.flip,
        "min_size": config.min_size,
        "model_key": pipeline.model_key,
        "folders": sorted(groups),
        "faces": [f.to_dict() for f in faces],
        "skipped": report.skipped,
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
    return result
