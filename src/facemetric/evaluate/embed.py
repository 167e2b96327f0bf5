"""Embed every image of a folder: decode + detect + align in worker processes, embed in batches.

``embed_folder`` is what ``facemetric embed`` and ``facemetric evaluate`` use. A folder made by
``facemetric data align`` (it has a ``prepare.json``, or its person folders link into one that
has) holds aligned crops, used as they are once their template is checked against the model's;
any other folder holds photos. Photos are detected and aligned with the same code the gallery
uses (``detect_and_align``, largest face); when no face is found the whole image, padded to a
square and resized, is embedded so that a pair can still be scored (``found`` is False for it,
as for a "crop" that is not square). Decoding and detection run in a pool of worker processes
while the main process runs the model on the previous batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.errors import ConfigError, DatasetError, ImageReadError

if TYPE_CHECKING:
    from facemetric.data.detection import FaceDetector
    from facemetric.models.embedder import ModelSpec
    from facemetric.models.inference import Embedder

DEFAULT_BATCH = 64
POOL_MIN_IMAGES = 32  # below this a worker pool costs more to start than it saves


@dataclass
class EmbeddingSet:
    """Embeddings of images under one root: ``paths`` relative with forward slashes."""

    paths: list[str]
    embeddings: np.ndarray  # (N, D) float32, L2-normalised
    found: np.ndarray  # (N,) bool: a face was detected (always True for aligned crops)
    meta: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # unreadable images: path -> reason

    def __post_init__(self) -> None:
        self._index = {p: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.paths)

    def __contains__(self, path: object) -> bool:
        return path in self._index

    def rows(self, paths: Sequence[str]) -> np.ndarray:
        """Row numbers of ``paths``; ``DatasetError`` names those not embedded."""
        missing = [p for p in paths if p not in self._index]
        if missing:
            raise DatasetError(f"{len(missing)} image(s) were not embedded: {missing[:10]}")
        return np.fromiter((self._index[p] for p in paths), dtype=np.int64, count=len(paths))

    def take(self, paths: Sequence[str]) -> np.ndarray:
        """Embeddings of ``paths`` in that order."""
        return self.embeddings[self.rows(paths)]

    def subset(self, paths: Sequence[str]) -> EmbeddingSet:
        rows = self.rows(paths)
        return EmbeddingSet(list(paths), self.embeddings[rows], self.found[rows], dict(self.meta))

    def save(self, path: str | Path) -> Path:
        """Write ``paths``, ``embeddings``, ``found`` (and ``meta`` as JSON) to an ``.npz``."""
        import json

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(
            tmp,
            paths=np.asarray(self.paths, dtype=str),
            embeddings=self.embeddings.astype(np.float32),
            found=self.found.astype(bool),
            meta=np.asarray(json.dumps(self.meta)),
        )
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingSet:
        import json

        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"{path}: embeddings file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
                return cls(
                    [str(p) for p in z["paths"]],
                    z["embeddings"].astype(np.float32),
                    z["found"].astype(bool),
                    meta,
                )
        except (KeyError, ValueError, OSError) as exc:
            raise DatasetError(f"{path}: not a facemetric embeddings file ({exc})") from exc


def list_images(root: str | Path) -> list[str]:
    """Every image under ``root/person/`` as a relative path with forward slashes, sorted."""
    from facemetric.data.split import list_identity_images

    people = list_identity_images(root)
    return [p for imgs in people.values() for p in imgs]


def crop_settings(root: str | Path) -> tuple[dict[str, Any], Path] | None:
    """How the crops under ``root`` were made (``prepare.json``) and the folder that says so:
    ``root`` itself, or the one folder its person folders (or their images) link into, as in a
    folder of links to some people of a crops folder. None when nothing says: photos.
    ``ConfigError`` when the links lead to crops of different templates."""
    from facemetric.data.image import is_image_path
    from facemetric.data.prepare import read_crop_settings

    root = Path(root)
    own = read_crop_settings(root)
    if own is not None:
        return own, root
    sources: set[Path] = set()
    for person in sorted(root.iterdir()) if root.is_dir() else []:
        if person.name.startswith(".") or not person.is_dir():
            continue
        images = (f for f in sorted(person.iterdir()) if is_image_path(f.name) and f.is_file())
        first = next((f for f in images if not f.name.startswith(".")), None)
        if first is not None:
            sources.add(first.resolve().parent.parent)
    found = {src: read_crop_settings(src) for src in sorted(sources)}
    crops = {src: v for src, v in found.items() if v is not None}
    if not crops:
        return None
    if len({str(v["template"]) for v in crops.values()}) > 1 or len(crops) < len(found):
        detail = ", ".join(
            f"{src} ({'crops of ' + str(v['template']) if v else 'no prepare.json'})"
            for src, v in found.items()
        )
        raise ConfigError(f"{root}: its images come from folders of different kinds: {detail}")
    src, settings = next(iter(crops.items()))
    return settings, src


def holds_crops(
    root: str | Path,
    spec: ModelSpec | None = None,
    model: str | None = None,
    asserted: bool = False,
) -> bool:
    """True when ``root`` holds aligned crops (made by ``facemetric data align``), False when it
    holds photos to detect and align.

    ``ConfigError``, naming the folder and the command that makes the right crops, when the crops
    were cut with another template than ``spec.alignment`` (such crops give wrong numbers), or
    when the caller ``asserted`` crops (``--aligned``) and the folder does not say it holds any.
    """
    settings = crop_settings(root)
    name = model or "MODEL"
    if settings is None:
        if asserted:
            raise ConfigError(
                f"--aligned: {root} has no prepare.json, so it was not made by facemetric data "
                f"align and may hold photos; cut its faces with: facemetric data align {root} "
                f"OUT --model {name} (then use OUT), or leave out --aligned to detect and align "
                "them on the way"
            )
        return False
    template = str(settings[0].get("template", "arcface"))
    if spec is not None and template != spec.alignment:
        where = "" if settings[1] == Path(root) else f" (per {settings[1] / 'prepare.json'})"
        raise ConfigError(
            f"{root}: crops cut for the {template} template{where}, but {name} needs "
            f"{spec.alignment} crops; cut them for it: facemetric data align PHOTOS OUT "
            f"--model {name}"
        )
    return True


def letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """The whole image padded (black) to a centred square and resized to ``size``."""
    import cv2

    h, w = image.shape[:2]
    side = max(h, w)
    canvas = np.zeros((side, side, 3), np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = image
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interp)


_WORKER_DETECTOR: dict[str, FaceDetector] = {}


def _detector(name: str) -> FaceDetector:
    """One detector per process, built on first use (workers cannot share the parent's)."""
    if name not in _WORKER_DETECTOR:
        from facemetric.data.detect import create_detector

        _WORKER_DETECTOR[name] = create_detector(name)
    return _WORKER_DETECTOR[name]


Prepared = tuple[str, "np.ndarray | None", bool, str]  # path, crop, found, error


def prepare_image(
    root: str, rel: str, aligned: bool, size: int, template: str, detector: str
) -> Prepared:
    """Decode one image and turn it into a crop: as is when aligned, else detect + align to
    ``template`` at ``size`` px."""
    from facemetric.data.image import load_image

    try:
        image = load_image(Path(root) / rel)
    except ImageReadError as exc:
        return rel, None, False, exc.reason
    if aligned:  # a crop that is not square is no aligned crop: counted as no face found
        return rel, image, image.shape[0] == image.shape[1], ""
    from facemetric.data.align import detect_and_align

    faces = detect_and_align(image, _detector(detector), size=size, template=template)
    if faces:
        return rel, faces[0].crop, True, ""
    return rel, letterbox(image, size), False, ""


def _prepare_chunk(
    root: str, rels: list[str], aligned: bool, size: int, template: str, detector: str
) -> list[Prepared]:
    return [prepare_image(root, r, aligned, size, template, detector) for r in rels]


def _limit_worker_threads() -> None:
    # Workers share the cores with the model: one thread each for OpenCV and ONNX Runtime.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


def _prepared_batches(
    root: str,
    rels: list[str],
    aligned: bool,
    cut: tuple[int, str],
    detector: str,
    batch: int,
    workers: int,
) -> Iterator[list[Prepared]]:
    """Batches of prepared crops in order; up to ``2 * workers`` batches are in flight."""
    chunks = [rels[i : i + batch] for i in range(0, len(rels), batch)]
    if workers <= 0 or len(rels) < POOL_MIN_IMAGES:
        for chunk in chunks:
            yield _prepare_chunk(root, chunk, aligned, *cut, detector)
        return
    ctx = get_context("spawn")  # the parent holds torch threads; fork would copy their locks
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_limit_worker_threads) as pool:
        pending: list[Future[list[Prepared]]] = []
        it = iter(chunks)
        for chunk in it:
            pending.append(pool.submit(_prepare_chunk, root, chunk, aligned, *cut, detector))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done = pending.pop(0).result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(_prepare_chunk, root, nxt, aligned, *cut, detector))
            yield done


def _as_embedder(model: str | Path | Embedder | None, engine: str) -> Embedder:
    if model is None or isinstance(model, str | Path):
        from facemetric.models.loading import load_embedder

        return load_embedder(model, engine=engine)  # type: ignore[arg-type]
    return model


def _cache_key(emb: Embedder, root: Path, aligned: bool, flip: bool, detector: str) -> tuple:
    ck = Path(emb.checkpoint_path)
    stamp = ck.stat().st_mtime_ns if ck.is_file() else id(emb)
    return (str(ck.resolve()), stamp, str(root.resolve()), aligned, flip, detector)


_CACHE: dict[tuple, EmbeddingSet] = {}


def embed_folder(
    model: str | Path | Embedder | None,
    root: str | Path,
    aligned: bool | None = None,
    detector: str = "retinaface",
    flip: bool = False,
    batch_size: int = DEFAULT_BATCH,
    workers: int | None = None,
    paths: Sequence[str] | None = None,
    engine: str = "auto",
    progress: bool = True,
    cache: bool = True,
) -> EmbeddingSet:
    """Embed the images under ``root`` (all of ``root/person/*``, or only ``paths``).

    MODEL is a checkpoint, a run folder, ``best``/None or a loaded ``Embedder``. ``aligned``:
    None decides from the folder (``holds_crops``), True takes the images as crops (their
    template still checked when the folder says it), False detects and aligns. Unreadable
    images are left out and listed in ``errors``. Results are kept per (model, root, options) for
    the life of the process, so evaluating several protocols embeds each image once.
    """
    from tqdm import tqdm

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    emb = _as_embedder(model, engine)
    if aligned is not False:
        ref = str(model) if isinstance(model, str | Path) else str(emb.checkpoint_path)
        aligned = holds_crops(root, emb.spec, ref) or bool(aligned)
    rels = sorted(set(paths)) if paths is not None else list_images(root)
    if not rels:
        raise DatasetError(f"{root}: no images found (expected ROOT/person/image files)")
    key = _cache_key(emb, root, aligned, flip, detector)
    known = _CACHE.get(key) if cache else None
    todo = [r for r in rels if known is None or r not in known]
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    size = emb.spec.input_size
    out_paths: list[str] = []
    out_emb: list[np.ndarray] = []
    out_found: list[bool] = []
    errors: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc="embed", unit="img", disable=not progress or not todo)
    for prepared in _prepared_batches(
        str(root), todo, aligned, (size, emb.spec.alignment), detector, batch_size, workers
    ):
        crops, found = [], []
        for rel, crop, ok, err in prepared:
            if crop is None:
                errors[rel] = err
                continue
            if crop.shape[:2] != (size, size):
                crop = letterbox(crop, size)
            out_paths.append(rel)
            crops.append(crop)
            found.append(ok)
        if crops:
            out_emb.append(emb.embed(np.stack(crops), flip=flip))
            out_found += found
        bar.update(len(prepared))
    bar.close()
    dim = emb.spec.embedding_dim
    new = EmbeddingSet(
        out_paths,
        np.concatenate(out_emb) if out_emb else np.zeros((0, dim), np.float32),
        np.asarray(out_found, dtype=bool),
    )
    if known is not None and len(new):
        new = _merge(known, new)
    elif known is not None:
        new = known
    new.meta = {
        "model": str(emb.checkpoint_path),
        "root": str(root),
        "aligned": str(aligned),
        "flip": str(flip),
        "detector": "" if aligned else detector,
    }
    if cache:
        _CACHE[key] = new
    wanted = [r for r in rels if r in new]
    result = new.subset(wanted)
    result.errors = {
        **errors,
        **{r: "unreadable" for r in rels if r not in new and r not in errors},
    }
    return result


def _merge(a: EmbeddingSet, b: EmbeddingSet) -> EmbeddingSet:
    return EmbeddingSet(
        a.paths + b.paths,
        np.concatenate([a.embeddings, b.embeddings]),
        np.concatenate([a.found, b.found]),
        dict(a.meta),
    )
