"""``facemetric compare``: several runs on one protocol, one table, and promotion of the best.

A run is a run folder, a checkpoint, a pretrained model's name (``dlib``) or an
``evaluation.json`` written elsewhere (the dlib baseline, for one: shown in the table, never
promoted). Each model's evaluation is stored beside its checkpoint
(``RUN/eval/<checkpoint>-<pairs file>/``) and reused while its fingerprint (weights hash, pairs
file hash, root and options) still matches.

A fine-tune is always compared with the model it started from (its base joins the table when
not given), and the base comes first on a tie: ``--promote`` never picks a fine-tune that does
not beat its base on the comparison's people. The promoted model must carry a calibrated
threshold: one it was given (pretrained, ``evaluate --calibrate``, the end of its training run)
or, failing that, one calibrated on the comparison's pairs; with neither, promotion is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from facemetric.errors import ConfigError, ModelError
from facemetric.evaluate.promote import promote
from facemetric.evaluate.protocols import read_pairs
from facemetric.evaluate.report import JSON_NAME, fmt, read_report, write_report, write_text_atomic
from facemetric.evaluate.run import EvaluateConfig, evaluate, fingerprint, model_name
from facemetric.models.checkpoint import is_calibrated
from facemetric.models.pretrained import is_pretrained_name


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
    base: str | None = None  # the model a fine-tune started from
    calibration: dict[str, Any] | None = None  # on the comparison's pairs or folder
    warnings: list[str] = field(default_factory=list)  # from its evaluation (people seen)


@dataclass
class Comparison:
    rows: list[Row]
    metric: str
    promoted: Path | None = None
    promoted_run: str | None = None
    notes: list[str] = field(default_factory=list)


def evaluation_dir(
    checkpoint: Path, pairs: Path | None, identify: Path | None, split: Path | None = None
) -> Path:
    """Where ``compare`` keeps a model's evaluation on a protocol (beside the checkpoint)."""
    parts = [p.stem if p.is_file() else p.name for p in (pairs, identify) if p is not None]
    if split is not None:
        parts.append(f"{Path(split).resolve().name}-test")
    return checkpoint.parent / "eval" / f"{checkpoint.stem}-{'-'.join(parts)}"


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
    from facemetric.models.checkpoint import load_checkpoint
    from facemetric.models.resolve import resolve_model_path

    ckpt = resolve_model_path(run)
    cfg = replace(config.protocol, model=str(ckpt), calibrate=False)
    out = evaluation_dir(ckpt, cfg.pairs, cfg.identify, cfg.split)
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
    meta = load_checkpoint(ckpt).meta
    init = (meta.get("config") or {}).get("init")
    calibration = (doc.get("verification") or {}).get("calibration")
    if not calibration or (doc["verification"].get("impostor_pairs", 0) * cfg.target_far < 1):
        calibration = (doc.get("identification") or {}).get("calibration")
    return Row(
        name="best" if str(run) == "best" else model_name(ckpt, meta),
        source=str(ckpt),
        backbone=str(doc["model"].get("backbone", "?")),
        metrics=flat_metrics(doc),
        evaluation=out / JSON_NAME,
        checkpoint=ckpt,
        reused=reused,
        base=str(init) if init else None,
        calibration=calibration,
        warnings=list(doc.get("warnings") or []),
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
    notes: list[str] = []
    for run in config.runs:
        path = Path(run)
        row = (
            _external(path, config, sha)
            if _is_evaluation(path) and not is_pretrained_name(run)
            else _model_row(run, config, protocol)
        )
        if row.source in seen:
            continue
        if row.base is not None and not _has_model(rows, row.base) and row.base != run:
            base = _base_row(row, config, protocol, notes)
            if base is not None and base.source not in seen:
                seen.add(base.source)
                rows.append(base)  # before its fine-tune: the base wins a tie
        seen.add(row.source)
        rows.append(row)
    notes += [f"warning: {row.name}: {w}" for row in rows for w in row.warnings]
    result = Comparison(rows=sort_rows(rows, config.metric), metric=config.metric, notes=notes)
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
        calibration = _promotion_calibration(best, config)
        result.promoted = promote(
            best.checkpoint,  # type: ignore[arg-type]
            metric=config.metric,
            value=value,
            calibration=calibration,
        )
        result.promoted_run = best.name
        if calibration is not None:
            result.notes.append(
                f"{best.name} had no calibrated threshold: promoted with "
                f"{calibration['threshold']:.4f}, calibrated for FAR "
                f"{calibration.get('target_far')} on the comparison's pairs"
            )
    if config.out is not None:
        write_comparison(result, config.out)
    return result


def _has_model(rows: list[Row], model: str) -> bool:
    from facemetric.models.resolve import resolve_model_path

    try:
        source = str(resolve_model_path(model))
    except (ConfigError, ModelError):  # a base that is gone is reported by _base_row
        return False
    return any(r.source == source for r in rows)


def _base_row(row: Row, config: CompareConfig, protocol: Any, notes: list[str]) -> Row | None:
    """The evaluated base model of a fine-tune, or None (with a note) when it is gone."""
    assert row.base is not None
    try:
        base = _model_row(row.base, config, protocol)
    except (ConfigError, ModelError) as exc:
        notes.append(f"{row.name} was fine-tuned from {row.base}, which is not available ({exc})")
        return None
    notes.append(f"{base.name} added: the model {row.name} was fine-tuned from")
    return base


def _promotion_calibration(row: Row, config: CompareConfig) -> dict[str, Any] | None:
    """None when the model is calibrated already; else a calibration on the comparison's pairs
    (or folder), or ``ConfigError`` when they are too few to give one."""
    from facemetric.models.checkpoint import load_checkpoint

    assert row.checkpoint is not None
    ckpt = load_checkpoint(row.checkpoint)
    if is_calibrated(ckpt.meta, ckpt.threshold):
        return None
    if (
        row.calibration is None
        or row.calibration.get("impostor_pairs", 0)
        * (row.calibration.get("target_far") or config.protocol.target_far)
        < 1
    ):
        where = config.protocol.pairs or config.protocol.identify or config.protocol.split
        raise ConfigError(
            f"--promote: {row.name} has no calibrated match threshold and {where} gives too few "
            f"impostor pairs to calibrate one at FAR {config.protocol.target_far:g}; calibrate "
            f"it first (facemetric evaluate {row.source} --identify PEOPLE --calibrate) or "
            "compare on more people"
        )
    return {
        **row.calibration,
        "on": "comparison: "
        f"{config.protocol.pairs or config.protocol.identify or config.protocol.split}",
    }


COLUMNS = [
    ("run", None),
    ("backbone", None),
    ("accuracy", "accuracy"),
    ("AUC", "auc"),
    ("EER", "eer"),
    ("TAR@1e-2", "tar_at_far_1e-2"),
    ("TAR@1e-3", "tar_at_far_1e-3"),
    ("pair threshold", "threshold"),
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
    if any(h.endswith("pair threshold") for h in header):
        lines.append(
            "pair threshold: calibrated on these pairs for the FAR target; a gallery decides "
            "with its own threshold, calibrated on its people (identify, the live page)"
        )
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
