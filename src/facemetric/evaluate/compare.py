"""``facemetric compare``: several runs on one protocol, one table, and promotion of the best.

A run is a run folder, a checkpoint or an ``evaluation.json`` written elsewhere (the dlib
baseline, for one: shown in the table, never promoted). Each model's evaluation is stored beside
its checkpoint (``RUN/eval/<checkpoint>-<pairs file>/``) and reused while its fingerprint
(weights hash, pairs file hash, root and options) still matches.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from facemetric.errors import ConfigError, ModelError
from facemetric.evaluate.protocols import read_pairs
from facemetric.evaluate.report import JSON_NAME, fmt, read_report, write_report, write_text_atomic
from facemetric.evaluate.run import EvaluateConfig, evaluate, fingerprint, run_name


@dataclass(frozen=True)
class MetricInfo:
    section: str  # "verification" or "identification"
    higher_is_better: bool
    label: str


# Metrics a comparison can sort by, with the direction that is better.
METRICS: dict[str, MetricInfo] = {
    "accuracy": MetricInfo("verification", True, "accuracy"),
    "auc": MetricInfo("verification", True, "AUC"),
    "eer": MetricInfo("verification", False, "EER"),
    "tar_at_far_1e-2": MetricInfo("verification", True, "TAR@1e-2"),
    "tar_at_far_1e-3": MetricInfo("verification", True, "TAR@1e-3"),
    "rank1": MetricInfo("identification", True, "rank-1"),
    "rank5": MetricInfo("identification", True, "rank-5"),
    "tpir_at_fpir_1e-2": MetricInfo("identification", True, "TPIR@1e-2"),
    "strangers_matched": MetricInfo("identification", False, "strangers matched"),
}


@dataclass(frozen=True)
class CompareConfig:
    """Runs to compare and the protocol (an ``EvaluateConfig`` without a model)."""

    runs: list[str]
    protocol: EvaluateConfig
    metric: str = "accuracy"
    promote: bool = False
    out: Path | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if not self.runs:
            raise ConfigError("compare: give at least one RUN")
        if self.metric not in METRICS:
            raise ConfigError(f"--metric {self.metric!r}: choose one of {', '.join(METRICS)}")


@dataclass
class Row:
    name: str
    source: str  # checkpoint or evaluation file
    backbone: str
    metrics: dict[str, Any]
    evaluation: Path
    checkpoint: Path | None  # None for external evaluations (not promotable)
    reused: bool = False


@dataclass
class Comparison:
    rows: list[Row]
    metric: str
    promoted: Path | None = None
    promoted_run: str | None = None
    notes: list[str] = field(default_factory=list)


def evaluation_dir(checkpoint: Path, pairs: Path | None, identify: Path | None) -> Path:
    """Where ``compare`` keeps a model's evaluation on a protocol (beside the checkpoint)."""
    tag = "-".join(p.stem if p.is_file() else p.name for p in (pairs, identify) if p is not None)
    return checkpoint.parent / "eval" / f"{checkpoint.stem}-{tag}"


def flat_metrics(doc: dict[str, Any]) -> dict[str, Any]:
    """The comparable numbers of an evaluation document, one level deep."""
    out: dict[str, Any] = {}
    for name, info in METRICS.items():
        out[name] = doc.get(info.section, {}).get(name)
    ver = doc.get("verification", {})
    out["accuracy_std"] = ver.get("accuracy_std")
    out["threshold"] = ver.get("threshold")
    out["pairs"] = ver.get("pairs")
    return out


def _external(run: Path, config: CompareConfig, pairs_sha: str | None) -> Row:
    doc = read_report(run)
    stored = doc.get("fingerprint", {}).get("pairs_sha256")
    if pairs_sha and stored and stored != pairs_sha:
        raise ConfigError(
            f"{run}: evaluated on a different pairs file than {config.protocol.pairs}"
        )
    model = doc.get("model", {})
    path = run / JSON_NAME if run.is_dir() else run
    return Row(
        name=str(model.get("name", run.stem)),
        source=str(path),
        backbone=str(model.get("backbone", "?")),
        metrics=flat_metrics(doc),
        evaluation=path,
        checkpoint=None,
        reused=True,
    )


def _is_evaluation(run: Path) -> bool:
    return run.suffix == ".json" or (
        run.is_dir() and (run / JSON_NAME).is_file() and not any(run.glob("*.pt"))
    )


def _model_row(run: str, config: CompareConfig, protocol: Any) -> Row:
    from facemetric.models.checkpoint import resolve_model_path

    ckpt = resolve_model_path(run)
    cfg = replace(config.protocol, model=str(ckpt), calibrate=False)
    out = evaluation_dir(ckpt, cfg.pairs, cfg.identify)
    want = fingerprint(ckpt, protocol, cfg)
    reused = False
    doc: dict[str, Any] | None = None
    if not config.force and (out / JSON_NAME).is_file():
        try:
            old = read_report(out)
        except ConfigError:
            old = None
        if old is not None and old.get("fingerprint") == want:
            doc, reused = old, True
    if doc is None:
        write_report(evaluate(cfg), out)
        doc = read_report(out)
    return Row(
        name=run_name(ckpt) if str(run) != "best" else "best",
        source=str(ckpt),
        backbone=str(doc["model"].get("backbone", "?")),
        metrics=flat_metrics(doc),
        evaluation=out / JSON_NAME,
        checkpoint=ckpt,
        reused=reused,
    )


def sort_rows(rows: list[Row], metric: str) -> list[Row]:
    """Best first by ``metric``; rows without it last, in their given order."""
    info = METRICS[metric]

    def key(row: Row) -> tuple[int, float]:
        v = row.metrics.get(metric)
        if v is None:
            return (1, 0.0)
        return (0, -float(v) if info.higher_is_better else float(v))

    return sorted(rows, key=key)


def compare(config: CompareConfig) -> Comparison:
    """Evaluate (or reuse evaluations of) every run, sort, optionally promote the best model."""
    protocol = read_pairs(config.protocol.pairs) if config.protocol.pairs is not None else None
    sha = protocol.fingerprint() if protocol is not None else None
    rows: list[Row] = []
    seen: set[str] = set()
    for run in config.runs:
        path = Path(run)
        row = (
            _external(path, config, sha)
            if _is_evaluation(path)
            else _model_row(run, config, protocol)
        )
        if row.source in seen:
            continue
        seen.add(row.source)
        rows.append(row)
    result = Comparison(rows=sort_rows(rows, config.metric), metric=config.metric)
    if config.promote:
        best = next((r for r in result.rows if r.checkpoint is not None), None)
        if best is None:
            raise ConfigError("--promote: no facemetric model among the runs (only evaluations)")
        if result.rows[0] is not best:
            result.notes.append(
                f"{result.rows[0].name} ranks first but is an external baseline; "
                f"promoted the best facemetric model, {best.name}"
            )
        value = best.metrics.get(config.metric)
        result.promoted = promote(best.checkpoint, metric=config.metric, value=value)  # type: ignore[arg-type]
        result.promoted_run = best.name
    if config.out is not None:
        write_comparison(result, config.out)
    return result


def promote(run: str | Path, metric: str | None = None, value: float | None = None) -> Path:
    """Copy a run's checkpoint to ``best_model_path()`` atomically, recording where it came from.

    A fresh ONNX export beside the checkpoint is copied too; a stale ``best.onnx`` is removed so
    ``load_embedder("best")`` can never pair the new weights with an old export.
    """
    import torch

    from facemetric.models.checkpoint import atomic_torch_save, resolve_model_path
    from facemetric.paths import best_model_path

    if str(run) == "best":
        raise ConfigError("promote: 'best' is already the promoted model; name a run")
    src = resolve_model_path(run).resolve()
    dst = best_model_path()
    try:
        payload = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{src}: not a readable facemetric checkpoint ({exc})") from exc
    meta = payload.setdefault("meta", {})
    meta["promoted_from"] = str(src)
    meta["promoted_run"] = run_name(src)
    meta["promoted_at"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    if metric is not None:
        meta["promoted_by"] = {"metric": metric, "value": value}
    atomic_torch_save(payload, dst)
    src_onnx, dst_onnx = src.with_suffix(".onnx"), dst.with_suffix(".onnx")
    dst_onnx.unlink(missing_ok=True)
    if src_onnx.is_file() and src_onnx.stat().st_mtime >= src.stat().st_mtime:
        fd, tmp = tempfile.mkstemp(prefix=".best.onnx.", dir=dst.parent)
        os.close(fd)
        shutil.copyfile(src_onnx, tmp)
        os.replace(tmp, dst_onnx)  # written after best.pt, so it counts as fresh
    return dst


COLUMNS = [
    ("run", None),
    ("backbone", None),
    ("accuracy", "accuracy"),
    ("AUC", "auc"),
    ("EER", "eer"),
    ("TAR@1e-2", "tar_at_far_1e-2"),
    ("TAR@1e-3", "tar_at_far_1e-3"),
    ("threshold", "threshold"),
    ("rank-1", "rank1"),
    ("rank-5", "rank5"),
    ("TPIR@1e-2", "tpir_at_fpir_1e-2"),
    ("strangers matched", "strangers_matched"),
]


def table_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and cells; columns no row has a value for are left out."""
    cols = [
        c
        for c in COLUMNS
        if c[1] is None or any(r.metrics.get(c[1]) is not None for r in comparison.rows)
    ]
    header = [("* " if key == comparison.metric else "") + label for label, key in cols]
    cells = []
    for row in comparison.rows:
        line = []
        for label, key in cols:
            if key is None:
                line.append(row.name if label == "run" else row.backbone)
            elif key == "accuracy" and row.metrics.get("accuracy_std") is not None:
                line.append(f"{fmt(row.metrics['accuracy'])} ± {fmt(row.metrics['accuracy_std'])}")
            else:
                line.append(fmt(row.metrics.get(key)))
        cells.append(line)
    return header, cells


def render_terminal(comparison: Comparison) -> str:
    header, cells = table_rows(comparison)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    fmt_line = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt_line.format(*header), fmt_line.format(*("-" * w for w in widths))]
    lines += [fmt_line.format(*c) for c in cells]
    lines += [f"note: {n}" for n in comparison.notes]
    if comparison.promoted is not None:
        lines.append(f"promoted {comparison.promoted_run} -> {comparison.promoted}")
    return "\n".join(lines)


def render_markdown(comparison: Comparison) -> str:
    header, cells = table_rows(comparison)
    info = METRICS[comparison.metric]
    order = "higher" if info.higher_is_better else "lower"
    lines = [
        "# Model comparison",
        "",
        f"Sorted by {info.label} ({order} is better).",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    lines += [""] + [f"Note: {n}" for n in comparison.notes]
    if comparison.promoted is not None:
        lines.append(f"Promoted `{comparison.promoted_run}` to `{comparison.promoted}`.")
    return "\n".join(lines).rstrip() + "\n"


def write_comparison(comparison: Comparison, out: str | Path) -> Path:
    """``comparison.md`` and ``comparison.json`` in ``out``; returns the markdown path."""
    import json

    out = Path(out)
    md = out / "comparison.md"
    write_text_atomic(md, render_markdown(comparison))
    doc = {
        "metric": comparison.metric,
        "promoted": str(comparison.promoted) if comparison.promoted else None,
        "promoted_run": comparison.promoted_run,
        "rows": [
            {
                "name": r.name,
                "source": r.source,
                "backbone": r.backbone,
                "evaluation": str(r.evaluation),
                "reused": r.reused,
                **r.metrics,
            }
            for r in comparison.rows
        ],
        "notes": comparison.notes,
    }
    write_text_atomic(out / "comparison.json", json.dumps(doc, indent=2) + "\n")
    return md
