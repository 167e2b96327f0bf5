"""Photos ``ROOT/person/*`` -> aligned crops ``OUT/person/<stem>.png`` plus ``OUT/manifest.jsonl``.

The manifest has one JSON line per input saying what happened (``aligned``, ``no_face``,
``multiple_faces`` when the policy skips them, ``unreadable``). It is appended and flushed line by
line, so an interrupted run keeps its work and the next run skips every input already listed
(``force`` starts over). Workers detect and align; the parent names and writes the crops, in input
order, so names never collide and do not depend on which worker finished first.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.data.detect import DEFAULT_DETECTOR
from facemetric.errors import ConfigError, DatasetError, ImageReadError

MANIFEST = "manifest.jsonl"
SETTINGS = "prepare.json"
STATUSES = ("aligned", "no_face", "multiple_faces", "unreadable")
MULTI_POLICIES = ("largest", "all", "skip")


@dataclass
class PrepareConfig:
    """How ``prepare_crops`` detects, aligns and writes.

    ``template`` names the face template the crops are cut with (``facemetric.data.align``):
    ``dlib`` for the default pretrained model, ``arcface`` for backbones trained here from
    scratch; a model's ``ModelSpec.alignment`` says which it needs. ``size`` defaults to the
    template's own size (dlib 150, arcface 112).
    """

    size: int | None = None
    template: str = "dlib"
    detector: str = DEFAULT_DETECTOR
    multi: str = "largest"  # largest | all | skip
    min_score: float = 0.8
    workers: int | None = None  # None: every core
    force: bool = False
    progress: bool = True

    def check(self) -> None:
        if self.multi not in MULTI_POLICIES:
            raise ConfigError(
                f"multi: choose one of {', '.join(MULTI_POLICIES)}, not {self.multi!r}"
            )
        from facemetric.data.align import face_template

        face_template(self.template)
        if self.size is not None and self.size < 16:
            raise ConfigError(f"size: at least 16 pixels, got {self.size}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"min_score: must be within [0, 1], got {self.min_score}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers: at least 1, got {self.workers}")


@dataclass
class PrepareSummary:
    """What a run did (``processed``) and what the whole manifest now holds (``totals``)."""

    root: str
    out: str
    inputs: int
    skipped: int
    processed: int
    crops_written: int
    seconds: float
    ms_per_image: float  # detection + alignment per processed image, in the workers
    statuses: dict[str, int] = field(default_factory=dict)  # this run
    totals: dict[str, int] = field(default_factory=dict)  # whole manifest

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        lines = [
            f"{self.inputs} images under {self.root}: {self.processed} processed, "
            f"{self.skipped} already in the manifest",
            f"this run: {_counts(self.statuses)}; {self.crops_written} crops written "
            f"in {self.seconds:.1f} s ({self.ms_per_image:.1f} ms per image per worker)",
            f"manifest: {_counts(self.totals)}",
            f"crops in {self.out}, details in {Path(self.out) / MANIFEST}",
        ]
        return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)


@dataclass
class _Result:
    source: str
    status: str
    faces: list[dict[str, Any]]
    crops: list[np.ndarray]
    detections: int
    ms: float
    error: str | None = None


# One detector per worker process, built by the pool's initializer.
_WORKER: dict[str, Any] = {}


def _init_worker(config: PrepareConfig, single_thread: bool) -> None:
    if single_thread:
        os.environ["OMP_NUM_THREADS"] = "1"
        import cv2

        cv2.setNumThreads(1)
    from facemetric.data.detect import create_detector

    _WORKER["detector"] = create_detector(
        config.detector, min_score=config.min_score, threads=1 if single_thread else None
    )
    _WORKER["config"] = config


def _process(job: tuple[str, str]) -> _Result:
    from facemetric.data.align import detect_and_align
    from facemetric.data.image import load_image

    root, source = job
    config: PrepareConfig = _WORKER["config"]
    start = time.perf_counter()
    try:
        image = load_image(Path(root) / source)
    except ImageReadError as exc:
        return _Result(source, "unreadable", [], [], 0, 0.0, exc.reason)
    faces = detect_and_align(
        image, _WORKER["detector"], crop_size(config), template=config.template
    )
    ms = (time.perf_counter() - start) * 1000
    if not faces:
        return _Result(source, "no_face", [], [], 0, ms)
    if len(faces) > 1 and config.multi == "skip":
        described = [f.detection.to_dict() for f in faces]
        return _Result(source, "multiple_faces", described, [], len(faces), ms)
    kept = faces if config.multi == "all" else faces[:1]
    described = [f.detection.to_dict() for f in kept]
    return _Result(source, "aligned", described, [f.crop for f in kept], len(faces), ms)


def crop_size(config: PrepareConfig) -> int:
    """The crop side: the configured size, else the template's own."""
    from facemetric.data.align import face_template

    return config.size if config.size is not None else face_template(config.template).size


def read_crop_settings(folder: str | Path) -> dict[str, Any] | None:
    """How the crops in ``folder`` were made (``template``, ``size``, ``detector``...), from the
    ``prepare.json`` that ``facemetric data align`` writes; None when there is none (then the
    folder was not made by it and may hold anything). Crops made before templates existed were
    cut with the ArcFace template."""
    path = Path(folder) / SETTINGS
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable crop settings ({exc})") from exc
    if not isinstance(settings, dict):
        raise DatasetError(f"{path}: unreadable crop settings (not a JSON object)")
    settings.setdefault("template", "arcface")
    return settings


def read_manifest(out: str | Path) -> list[dict[str, Any]]:
    """The manifest's records; a torn last line (interrupted write) is ignored."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        return []
    records = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


class _Namer:
    """Crop names unique within each identity folder, chosen in input order.

    A source's own stem is reserved for it up front; a second source with the same stem gets
    ``<stem>_<ext>``; extra faces (``multi=all``) get ``<stem>_<k>``, skipping taken names.
    """

    def __init__(self, sources: list[str], taken: list[str]) -> None:
        self.used: set[str] = {name.lower() for name in taken}
        self.base: dict[str, str] = {}
        for source in sources:
            if source in self.base:
                continue
            folder, filename = source.rsplit("/", 1)
            stem, ext = os.path.splitext(filename)
            candidates = [stem, f"{stem}_{ext.lstrip('.').lower()}"]
            name = next((c for c in candidates if f"{folder}/{c}".lower() not in self.used), None)
            k = 2
            while name is None:
                candidate = f"{stem}_{ext.lstrip('.').lower()}{k}"
                name = candidate if f"{folder}/{candidate}".lower() not in self.used else None
                k += 1
            self.base[source] = f"{folder}/{name}"
            self.used.add(f"{folder}/{name}".lower())

    def names(self, source: str, count: int) -> list[str]:
        base = self.base[source]
        out = [base]
        k = 1
        while len(out) < count:
            candidate = f"{base}_{k}"
            if candidate.lower() not in self.used:
                self.used.add(candidate.lower())
                out.append(candidate)
            k += 1
        return [f"{name}.png" for name in out]


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line an interrupted run left without its newline, so appends start clean."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return
        fh.truncate(data.rfind(b"\n") + 1)


def _write_png(path: Path, crop: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(crop[..., ::-1])):
        raise DatasetError(f"{path}: could not write the crop")
    os.replace(tmp, path)


def _check_settings(out: Path, config: PrepareConfig) -> None:
    """Refuse to resume into crops made with other settings (mixed sizes would poison training)."""
    wanted: dict[str, Any] = {"template": config.template, "size": crop_size(config)}
    wanted.update(detector=config.detector, multi=config.multi, min_score=config.min_score)
    path = out / SETTINGS
    if path.is_file() and not config.force and (out / MANIFEST).is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = {}
        previous.setdefault("template", "arcface")  # written before templates existed
        changed = {k: (previous.get(k), v) for k, v in wanted.items() if previous.get(k) != v}
        if changed:
            detail = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ConfigError(
                f"{out}: crops there were made with other settings ({detail}); "
                "use --force to redo them all or choose another output folder"
            )
    path.write_text(json.dumps(wanted, indent=1) + "\n", encoding="utf-8")


def _results(jobs: list[tuple[str, str]], config: PrepareConfig, workers: int) -> Iterator[_Result]:
    if workers == 1:
        _init_worker(config, single_thread=False)
        yield from map(_process, jobs)
        return
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked ORT/torch state
    with context.Pool(workers, initializer=_init_worker, initargs=(config, True)) as pool:
        yield from pool.imap(_process, jobs, chunksize=4)


def prepare_crops(
    root: str | Path, out: str | Path, config: PrepareConfig | None = None
) -> PrepareSummary:
    """Detect, align and write every face crop of ``root`` into ``out``; return the summary."""
    from tqdm import tqdm

    from facemetric.data.detect import available_detectors
    from facemetric.data.split import list_identity_images

    config = config or PrepareConfig()
    config.check()
    if config.detector not in available_detectors():
        raise ConfigError(
            f"detector: unknown name {config.detector!r}; "
            f"choose one of {', '.join(available_detectors())}"
        )
    root, out = Path(root), Path(out)
    identity_images = list_identity_images(root)
    sources = [s for images in identity_images.values() for s in images]
    if not sources:
        raise DatasetError(f"{root}: no images in person sub-folders (expected ROOT/person/*.jpg)")
    if out.resolve() == root.resolve():
        raise ConfigError(f"out: {out} is the photo folder itself; choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, config)
    if config.force:
        (out / MANIFEST).unlink(missing_ok=True)
    _drop_torn_tail(out / MANIFEST)
    previous = read_manifest(out)
    done = {r["source"] for r in previous}
    taken = [o.removesuffix(".png") for r in previous for o in r.get("outputs", [])]
    todo = [s for s in sources if s not in done]
    namer = _Namer(todo, taken)

    workers = config.workers or os.cpu_count() or 1
    workers = max(1, min(workers, len(todo)))
    statuses: Counter[str] = Counter()
    crops_written, busy_ms = 0, 0.0
    start = time.perf_counter()
    jobs = [(str(root), s) for s in todo]
    with (out / MANIFEST).open("a", encoding="utf-8") as manifest:
        bar = tqdm(total=len(todo), unit="img", disable=not config.progress, desc="align")
        for result in _results(jobs, config, workers) if todo else []:
            outputs = namer.names(result.source, len(result.crops)) if result.crops else []
            for name, crop in zip(outputs, result.crops, strict=True):
                _write_png(out / name, crop)
            crops_written += len(outputs)
            for face, name in zip(result.faces, outputs, strict=False):
                face["output"] = name
            first = result.faces[0] if result.faces else {}
            record = {
                "source": result.source,
                "identity": result.source.split("/", 1)[0],
                "status": result.status,
                "box": first.get("box"),
                "landmarks": first.get("landmarks"),
                "score": first.get("score"),
                "detections": result.detections,
                "outputs": outputs,
                "faces": result.faces,
                "ms": round(result.ms, 2),
                "error": result.error,
            }
            manifest.write(json.dumps(record, ensure_ascii=False) + "\n")
            manifest.flush()
            statuses[result.status] += 1
            busy_ms += result.ms
            bar.update(1)
        bar.close()
    processed = sum(statuses.values())
    totals = Counter(r["status"] for r in read_manifest(out))
    return PrepareSummary(
        root=str(root),
        out=str(out),
        inputs=len(sources),
        skipped=len(sources) - len(todo),
        processed=processed,
        crops_written=crops_written,
        seconds=round(time.perf_counter() - start, 2),
        ms_per_image=round(busy_ms / processed, 2) if processed else 0.0,
        statuses=dict(statuses),
        totals=dict(totals),
    )
