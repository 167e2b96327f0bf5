"""``facemetric evaluate``: run the verification and identification protocols on one model.

``evaluate(config)`` embeds what each protocol needs (once per image), computes the metrics,
optionally stores the calibrated threshold in the checkpoint, and returns an ``Evaluation``
that ``report.write_report`` turns into JSON, markdown and plots.

Each input folder (the pairs root, the identification folder, a split's root) is taken as
aligned crops when ``facemetric data align`` made it (``embed.holds_crops``) and as photos
otherwise, so photos are never embedded as if they were crops. The numbers from the embeddings
are computed in ``verification`` (pairs) and ``identification`` (a folder of people).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.errors import ConfigError
from facemetric.evaluate.embed import EmbeddingSet, crop_settings, embed_folder, holds_crops
from facemetric.evaluate.identification import Probes, folder_calibration, identification_metrics
from facemetric.evaluate.people import overlap
from facemetric.evaluate.protocols import (
    PairsProtocol,
    check_pairs_images,
    describe_missing,
    identity_of,
    missing_images,
    read_pairs,
    split_probe_gallery,
    subset_pairs,
)
from facemetric.evaluate.verification import verification_metrics

SCHEMA = 1


@dataclass(frozen=True)
class EvaluateConfig:
    """What to evaluate and how; every field maps to a ``facemetric evaluate`` flag."""

    model: str | None = "best"
    pairs: Path | None = None
    root: Path | None = None
    identify: Path | None = None
    split: Path | None = None
    aligned: bool = False
    flip: bool = False
    detector: str = "retinaface"
    max_pairs: int | None = None
    skip_missing: bool = False
    enrol: int = 1
    seed: int = 0
    calibrate: bool = False
    target_far: float = 1e-3
    eer: bool = False
    batch_size: int = 64
    workers: int | None = None
    engine: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.pairs is None and self.identify is None and self.split is None:
            raise ConfigError(
                "nothing to evaluate: give --pairs FILE --root DIR and/or --identify DIR "
                "(or --split DIR)"
            )
        if self.identify is not None and self.split is not None:
            raise ConfigError(
                "--identify and --split both name the people to identify: give one of them"
            )
        if self.pairs is not None and self.root is None:
            raise ConfigError(
                "--pairs needs --root DIR (the folder the pair paths are relative to)"
            )
        if not 0.0 < self.target_far < 1.0:
            raise ConfigError(f"--target-far {self.target_far}: must be in (0, 1)")


@dataclass
class Evaluation:
    """Metrics (the JSON document) plus the arrays the plots are drawn from."""

    metrics: dict[str, Any]
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    threshold: float | None = None
    map_embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    map_labels: list[str] = field(default_factory=list)


def weights_digest(checkpoint: Path) -> str:
    """sha256 of a checkpoint's weights: unchanged by calibration or other meta edits."""
    from facemetric.models.checkpoint import load_checkpoint

    h = hashlib.sha256()
    state = load_checkpoint(checkpoint).state_dict
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def fingerprint(
    checkpoint: Path, protocol: PairsProtocol | None, config: EvaluateConfig
) -> dict[str, Any]:
    """What an evaluation depends on; ``compare`` re-evaluates when any of it changes."""
    folders = [config.root if protocol is not None else None, config.identify]
    if config.split is not None:
        folders.append(config.root or _split_root(config.split))
    crops = [crop_settings(f) is not None for f in folders if f is not None]
    fp: dict[str, Any] = {
        "checkpoint": str(checkpoint.resolve()),
        "weights_sha256": weights_digest(checkpoint),
        "aligned": config.aligned,
        "inputs": ["crops" if c else "photos" for c in crops],
        "flip": config.flip,
        "detector": None if all(crops) else config.detector,
        "max_pairs": config.max_pairs,
        "seed": config.seed,
    }
    if protocol is not None and config.root is not None:
        fp["pairs_sha256"] = protocol.fingerprint()
        fp["root"] = str(Path(config.root).resolve())
        fp["skip_missing"] = config.skip_missing
    if config.identify is not None:
        fp["identify"] = str(Path(config.identify).resolve())
        fp["enrol"] = config.enrol
    if config.split is not None:
        test = Path(config.split) / "test.txt"
        fp["split"] = str(Path(config.split).resolve())
        fp["split_test_sha256"] = hashlib.sha256(test.read_bytes()).hexdigest()
        fp["enrol"] = config.enrol
    return fp


def _split_root(split: Path) -> Path:
    """The data root a split's ``split.json`` records, else the split folder (as
    ``people.split_test_people`` takes it)."""
    from facemetric.data.split import read_split

    recorded = read_split(split).meta.get("root")
    return Path(recorded) if recorded else Path(split)


def _embed(emb: Any, root: Path, paths: list[str], config: EvaluateConfig) -> EmbeddingSet:
    """The embeddings of ``paths`` under ``root``, as crops or as photos (``holds_crops``)."""
    return embed_folder(
        emb,
        root,
        aligned=holds_crops(root, emb.spec, config.model, asserted=config.aligned),
        detector=config.detector,
        flip=config.flip,
        batch_size=config.batch_size,
        workers=config.workers,
        paths=paths,
        progress=config.progress,
    )


def _verification(
    emb: Any, config: EvaluateConfig
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, EmbeddingSet, PairsProtocol]:
    assert config.pairs is not None and config.root is not None  # checked by EvaluateConfig
    protocol = read_pairs(config.pairs)
    if config.max_pairs:
        protocol = subset_pairs(protocol, config.max_pairs, seed=config.seed)
    dropped_missing = 0
    if config.skip_missing:
        missing = set(missing_images(protocol.images, config.root))
        kept = [p for p in protocol.pairs if p.image1 not in missing and p.image2 not in missing]
        dropped_missing = len(protocol.pairs) - len(kept)
        protocol = PairsProtocol(kept, protocol.path, protocol.format)
    else:
        check_pairs_images(protocol, config.root)
    es = _embed(emb, config.root, protocol.images, config)
    pairs = [p for p in protocol.pairs if p.image1 in es and p.image2 in es]
    if not pairs:
        raise ConfigError(
            describe_missing(sorted(es.errors), config.root, "the pairs (unreadable)")
        )
    a = es.take([p.image1 for p in pairs])
    b = es.take([p.image2 for p in pairs])
    scores = np.sum(a.astype(np.float64) * b, axis=1)
    labels = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    out: dict[str, Any] = {
        "protocol": str(protocol.path),
        "format": protocol.format,
        "root": str(config.root),
        "pairs": len(pairs),
        "pairs_missing_images": dropped_missing,
        "pairs_unreadable_images": len(protocol.pairs) - len(pairs),
        "unreadable_images": sorted(es.errors),
        "faces_found": float(es.found.mean()),
    }
    method = "eer" if config.eer else "far"
    out.update(verification_metrics(scores, labels, folds, config.target_far, method))
    return out, scores, labels, es, protocol


def _identification_input(config: EvaluateConfig) -> tuple[Path, dict[str, list[str]] | None]:
    """The folder to identify people in, and the people (None: every person folder of it)."""
    if config.split is not None:
        from facemetric.evaluate.people import split_test_people

        test = split_test_people(config.split, config.root)
        return test.root, test.people
    assert config.identify is not None  # checked by EvaluateConfig
    return Path(config.identify), None


def _identification(
    emb: Any, config: EvaluateConfig, threshold: float
) -> tuple[dict, EmbeddingSet]:
    root, people = _identification_input(config)
    split = split_probe_gallery(root, enrol=config.enrol, seed=config.seed, people=people)
    es = _embed(emb, root, split.images, config)
    probes = Probes.embedded(split, es)
    out: dict[str, Any] = {
        "root": str(root),
        "split": None if config.split is None else str(config.split),
        "enrol": config.enrol,
        "seed": config.seed,
        **identification_metrics(es, split, probes, threshold),
    }
    # The open-set decision as the gallery would make it (calibrated on these references).
    from facemetric.evaluate.decision_rates import open_set_rates

    out["decision"] = open_set_rates(
        es.take(probes.mated),
        probes.mated_labels,
        es.take(probes.strangers),
        es.take(probes.gallery),
        probes.gallery_labels,
        threshold,
    )
    out["calibration"] = folder_calibration(es, config.seed, config.target_far, config.eer)
    return out, es


def evaluate(config: EvaluateConfig) -> Evaluation:
    """Run the configured protocols on ``config.model``; store the threshold when calibrating
    (on the verification pairs, else on every pair of the identification folder). ``warnings``
    in the document say what makes the numbers doubtful (people seen in training)."""
    from facemetric.models.loading import load_embedder

    emb = load_embedder(config.model, engine=config.engine)  # type: ignore[arg-type]
    ckpt = Path(emb.checkpoint_path)
    spec = emb.spec
    if config.calibrate:
        from facemetric.models.pretrained import is_cached_pretrained

        if is_cached_pretrained(ckpt):
            raise ConfigError(
                f"--calibrate: {config.model} is a pretrained model and keeps the threshold it "
                f"ships with ({emb.threshold:.4f}); to match with another one, promote it "
                "(facemetric compare ... --promote) and calibrate 'best', or pass --threshold"
            )
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": {
            "path": str(ckpt),
            "name": model_name(ckpt, emb.meta),
            "backbone": spec.backbone,
            "embedding_dim": spec.embedding_dim,
            "input_size": spec.input_size,
            "checkpoint_threshold": emb.threshold,
        },
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
    }
    result = Evaluation(metrics=doc)
    protocol = None
    map_set: EmbeddingSet | None = None
    threshold = emb.threshold
    calibration: dict[str, Any] | None = None
    faces_found = 1.0
    evaluated: set[str] = set()
    if config.pairs is not None:
        ver, scores, labels, es, protocol = _verification(emb, config)
        doc["verification"] = ver
        result.scores, result.labels = scores, labels
        threshold = ver["threshold"]
        result.threshold = threshold
        map_set = es
        evaluated |= {identity_of(p) for p in es.paths}
        faces_found = min(faces_found, float(ver["faces_found"]))
        if ver["impostor_pairs"] * config.target_far >= 1 or config.eer:
            calibration = {**ver["calibration"], "protocol": str(config.pairs)}
            calibration["root"] = str(config.root)
    if config.identify is not None or config.split is not None:
        ident, es = _identification(emb, config, threshold)
        doc["identification"] = ident
        map_set = es
        evaluated |= {identity_of(p) for p in es.paths}
        faces_found = min(faces_found, float(ident["faces_found"]))
        if calibration is None and ident["calibration"] is not None:
            calibration = {**ident["calibration"], "folder": ident["root"]}
            if config.split is not None:
                calibration["split"] = str(config.split)
            if config.pairs is None:
                result.threshold = threshold = calibration["threshold"]
    doc["warnings"] = []
    seen = overlap(evaluated, emb.meta)
    if seen is not None:
        doc["overlap"] = seen
        if seen["warning"]:
            doc["warnings"].append(seen["warning"])
    if config.calibrate:
        stored = _store_calibration(ckpt, calibration, faces_found, config, doc["created"])
        doc["model"]["calibrated_threshold_stored"] = stored
    doc["fingerprint"] = fingerprint(ckpt, protocol, config)  # after any checkpoint update
    if map_set is not None:
        result.map_embeddings, result.map_labels = map_sample(map_set, config.seed)
    return result


# An evaluation where fewer faces were found than this is broken (photos fed as crops, crops of
# another template...): its threshold is never stored.
MIN_FACES_FOUND = 0.8


def _store_calibration(
    ckpt: Path,
    calibration: dict[str, Any] | None,
    faces_found: float,
    config: EvaluateConfig,
    date: str,
) -> float:
    """Write the calibrated threshold into the checkpoint; ``ConfigError`` (nothing written)
    when the evaluation cannot be trusted or has too few impostor pairs."""
    from facemetric.models.checkpoint import update_checkpoint

    where = config.pairs or config.identify or f"the test people of {config.split}"
    if faces_found < MIN_FACES_FOUND:
        raise ConfigError(
            f"--calibrate: a face was found in only {faces_found:.0%} of the images of {where}; "
            "a threshold from that would be wrong, so none was stored (pictures without a "
            "clear face, or crops that are not square?)"
        )
    if calibration is None:
        raise ConfigError(
            f"--calibrate: {where} gives too few impostor pairs to tell a FAR of "
            f"{config.target_far:g} (at least {1 / config.target_far:.0f} are needed): add "
            "people, raise --target-far, or use --eer"
        )
    calibration = {**calibration, "date": date}
    onnx = ckpt.with_suffix(".onnx")
    fresh = onnx.is_file() and onnx.stat().st_mtime >= ckpt.stat().st_mtime
    update_checkpoint(ckpt, threshold=calibration["threshold"], calibration=calibration)
    if fresh:  # same weights: keep the export beside it counted as up to date
        os.utime(onnx)
    return float(calibration["threshold"])


def map_sample(
    es: EmbeddingSet, seed: int = 0, max_identities: int = 12, per_identity: int = 20
) -> tuple[np.ndarray, list[str]]:
    """A few identities with the most images, for the 2-D embedding map."""
    by_id: dict[str, list[str]] = {}
    for p in es.paths:
        by_id.setdefault(identity_of(p), []).append(p)
    ranked = sorted(by_id, key=lambda k: (-len(by_id[k]), _stable(k, seed)))
    chosen = [p for k in ranked[:max_identities] for p in by_id[k][:per_identity]]
    return es.take(chosen), [identity_of(p) for p in chosen]


def _stable(name: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def model_name(checkpoint: Path, meta: dict[str, Any]) -> str:
    """How reports name a model: the pretrained model's name, the promoted run's, else the run
    folder's (``run_name``)."""
    return str(meta.get("pretrained") or meta.get("promoted_run") or run_name(checkpoint))


def run_name(checkpoint: Path) -> str:
    """``runs/NAME/best.pt`` -> ``NAME``; any other file -> its stem."""
    if checkpoint.name in ("best.pt", "last.pt") and checkpoint.parent.name:
        return checkpoint.parent.name
    return checkpoint.stem
