"""Evaluation reports: ``evaluation.json``, ``evaluation.md`` and plots (matplotlib Agg).

Plots: ``roc.png`` (TAR against FAR, log FAR axis), ``similarity.png`` (genuine and impostor
similarity histograms with the match threshold marked) and ``embedding_map.png`` (a 2-D PCA or
t-SNE map of embeddings coloured by identity).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facemetric.errors import ConfigError

if TYPE_CHECKING:
    from facemetric.evaluate.run import Evaluation

JSON_NAME = "evaluation.json"
MARKDOWN_NAME = "evaluation.md"
PLOTS = ("roc.png", "similarity.png", "embedding_map.png")
MAP_METHODS = ("pca", "tsne")


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename (no half-written reports)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None  # +/-inf thresholds (accept all / nothing) are not JSON
    return v


def fmt(value: Any, digits: int = 4) -> str:
    """A metric for a table: fractions with ``digits`` decimals, '-' when absent."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_markdown(doc: dict[str, Any]) -> str:
    """A short human summary of an evaluation document."""
    model = doc.get("model", {})
    lines = [
        f"# Evaluation of {model.get('name', '?')}",
        "",
        f"- model: `{model.get('path')}` ({model.get('backbone')}, "
        f"{model.get('embedding_dim')}-d, {model.get('input_size')} px)",
        f"- created: {doc.get('created')}",
    ]
    for warning in doc.get("warnings") or []:
        lines += ["", f"> **Warning:** {warning}"]
    ver = doc.get("verification")
    if ver:
        lines += [
            "",
            "## Verification",
            "",
            f"`{ver['protocol']}` ({ver['format']}) on `{ver['root']}`: {ver['pairs']} pairs "
            f"({ver['genuine_pairs']} genuine, {ver['impostor_pairs']} impostor), "
            f"{ver['folds']} folds; faces found in {ver['faces_found']:.1%} of the images.",
            "",
            "| metric | value |",
            "| --- | --- |",
            f"| accuracy ({ver['folds']}-fold) | {fmt(ver['accuracy'])} ± "
            f"{fmt(ver['accuracy_std'])} |",
            f"| AUC | {fmt(ver['auc'])} |",
            f"| EER | {fmt(ver['eer'])} (threshold {fmt(ver['eer_threshold'])}) |",
            f"| TAR @ FAR 1e-2 | {fmt(ver.get('tar_at_far_1e-2'))} |",
            f"| TAR @ FAR 1e-3 | {fmt(ver.get('tar_at_far_1e-3'))} |",
            f"| calibrated threshold | {fmt(ver['threshold'])} |",
        ]
        cal = ver.get("calibration", {})
        target = cal.get("target_far")
        how = "at the EER" if cal.get("method") == "eer" else f"for FAR {target:g}"
        lines += [
            "",
            f"Calibrated threshold {how}: {fmt(cal.get('threshold'))}, giving TAR "
            f"{fmt(cal.get('tar'))} and FAR {fmt(cal.get('far'), 5)} on these pairs.",
        ]
        if target is not None and target * ver["impostor_pairs"] < 1:
            lines.append(
                f"With {ver['impostor_pairs']} impostor pairs a FAR below "
                f"{1 / ver['impostor_pairs']:.1e} cannot be measured: the threshold is the "
                "lowest that accepts no impostor here (use more pairs for a reliable one)."
            )
        if ver.get("pairs_missing_images") or ver.get("pairs_unreadable_images"):
            lines.append(
                f"Left out: {ver['pairs_missing_images']} pairs with missing images, "
                f"{ver['pairs_unreadable_images']} with unreadable images."
            )
        if model.get("calibrated_threshold_stored") is not None:
            lines.append(f"The threshold was stored in `{model['path']}`.")
    ident = doc.get("identification")
    if ident:
        split = f" (test people of `{ident['split']}`)" if ident.get("split") else ""
        lines += [
            "",
            "## Identification",
            "",
            f"`{ident['root']}`{split}: {ident['identities_enrolled']} identities enrolled with "
            f"{ident['enrol']} image(s) each ({ident['gallery_images']} gallery images), "
            f"{ident['probes']} probes; {ident['identities_not_enrolled']} identities not "
            "enrolled (strangers).",
            "",
            "| metric | value |",
            "| --- | --- |",
            f"| rank-1 | {fmt(ident.get('rank1'))} |",
            f"| rank-5 | {fmt(ident.get('rank5'))} |",
            f"| TPIR @ FPIR 1e-2 | {fmt(ident.get('tpir_at_fpir_1e-2'))} |",
            f"| strangers matched at threshold {fmt(ident.get('match_threshold'))} | "
            f"{ident.get('strangers_matched', '-')} of {ident.get('strangers', '-')} |",
        ]
        dec = ident.get("decision")
        if dec:
            lines += [
                f"| open-set decision: named right (TPIR) | {fmt(dec.get('tpir'))} |",
                f"| open-set decision: strangers named (FPIR) | {fmt(dec.get('fpir'))} "
                f"({dec.get('strangers_named')} of {dec.get('strangers')}) |",
                f"| open-set decision: threshold for this gallery | {fmt(dec.get('threshold'))} |",
            ]
        cal = ident.get("calibration")
        if cal and not ver:
            how = "at the EER" if cal.get("method") == "eer" else f"for FAR {cal['target_far']:g}"
            lines += [
                "",
                f"Calibrated threshold {how} on every pair of these images "
                f"({cal.get('genuine_pairs', '?')} genuine, {cal.get('impostor_pairs', '?')} "
                f"impostor): {fmt(cal.get('threshold'))}, giving TAR {fmt(cal.get('tar'))} and "
                f"FAR {fmt(cal.get('far'), 5)}.",
            ]
            if model.get("calibrated_threshold_stored") is not None:
                lines.append(f"The threshold was stored in `{model['path']}`.")
        notes = ident.get("notes") or []
        if notes:
            lines += [""] + [f"- {note}" for note in notes]
    plots = [p for p in doc.get("plots", [])]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(
    scores: np.ndarray, labels: np.ndarray, path: Path, title: str, threshold: float | None = None
) -> None:
    from facemetric.evaluate.metrics import roc_curve

    plt = _figure()
    roc = roc_curve(scores, labels)
    floor = 0.5 / max(roc.n_impostor, 1)  # so FAR = 0 shows on a log axis
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
    ax.plot(np.maximum(roc.far, floor), roc.tar, lw=1.8)
    if threshold is not None and math.isfinite(threshold):
        accepted = scores >= threshold
        far, tar = float(accepted[~labels].mean()), float(accepted[labels].mean())
        ax.plot([max(far, floor)], [tar], "ko", ms=5, label=f"threshold {threshold:.3f}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (log)")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_similarity(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float | None,
    path: Path,
    title: str,
    xlabel: str = "cosine similarity",
) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    marks = [threshold] if threshold is not None and math.isfinite(threshold) else []
    lo, hi = min(scores.min(), *marks), max(scores.max(), *marks)
    pad = max(hi - lo, 1e-3) * 0.03
    bins = np.linspace(lo - pad, hi + pad, 61)
    for sel, label, colour in ((~labels, "impostor (different people)", "C3"),
                               (labels, "genuine (same person)", "C0")):  # fmt: skip
        ax.hist(scores[sel], bins=bins, alpha=0.5, label=label, color=colour)
        ax.hist(scores[sel], bins=bins, histtype="step", color=colour, lw=1.0)
    if threshold is not None and math.isfinite(threshold):
        ax.axvline(threshold, color="k", ls="--", lw=1.2, label=f"threshold {threshold:.3f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def project_2d(x: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) with PCA or t-SNE (scikit-learn)."""
    if method not in MAP_METHODS:
        raise ConfigError(f"map method {method!r}: use one of {', '.join(MAP_METHODS)}")
    if len(x) < 3:
        return np.zeros((len(x), 2))
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    from sklearn.decomposition import PCA

    return PCA(2, random_state=seed).fit_transform(x)


def plot_embedding_map(
    x: np.ndarray, labels: list[str], path: Path, title: str, method: str = "pca"
) -> None:
    plt = _figure()
    xy = project_2d(x, method)
    names = sorted(set(labels))
    cmap = plt.get_cmap("tab20", max(len(names), 1))
    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    lab = np.asarray(labels)
    for i, name in enumerate(names):
        pts = xy[lab == name]
        ax.scatter(pts[:, 0], pts[:, 1], s=14, color=cmap(i), label=name, alpha=0.85)
    ax.set_title(f"{title} ({method.upper()}, {len(names)} identities)")
    ax.set_xticks([])
    ax.set_yticks([])
    if len(names) <= 20:
        ax.legend(fontsize=6, loc="best", markerscale=0.8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(evaluation: Evaluation, out: str | Path, map_method: str = "pca") -> Path:
    """Write the JSON, the markdown summary and the plots into ``out``; returns the JSON path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = evaluation.metrics
    name = doc.get("model", {}).get("name", "model")
    plots = []
    if evaluation.scores.size:
        plot_roc(
            evaluation.scores,
            evaluation.labels,
            out / PLOTS[0],
            f"ROC: {name}",
            evaluation.threshold,
        )
        plot_similarity(
            evaluation.scores,
            evaluation.labels,
            evaluation.threshold,
            out / PLOTS[1],
            f"Pair similarities: {name}",
            doc.get("verification", {}).get("similarity", "cosine similarity"),
        )
        plots += list(PLOTS[:2])
    if len(evaluation.map_labels) >= 3:
        plot_embedding_map(
            evaluation.map_embeddings,
            evaluation.map_labels,
            out / PLOTS[2],
            f"Embeddings: {name}",
            map_method,
        )
        plots.append(PLOTS[2])
    doc["plots"] = plots
    path = out / JSON_NAME
    write_text_atomic(path, json.dumps(_json_safe(doc), indent=2) + "\n")
    write_text_atomic(out / MARKDOWN_NAME, render_markdown(doc))
    return path


def read_report(path: str | Path) -> dict[str, Any]:
    """An ``evaluation.json`` (a file, or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / JSON_NAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: evaluation file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or "model" not in doc:
        raise ConfigError(f"{path}: not a facemetric evaluation (no 'model' entry)")
    return doc
