"""What a run leaves beside its checkpoints: ``metrics.jsonl``, TensorBoard, ``curve.png``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "curve.png"


class RunLog:
    """One JSON object per line (``kind``: step, epoch or event), scalars to TensorBoard too."""

    def __init__(self, folder: Path, tensorboard: bool = True) -> None:
        self.folder = folder
        self.path = folder / METRICS_FILE
        self.writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(folder / "tb"))
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                log.warning("tensorboard is not installed; metrics go to %s only", self.path)

    def write(self, kind: str, step: int, **values: Any) -> None:
        record = {"kind": kind, "step": step, **values}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(folder: str | Path) -> list[dict[str, Any]]:
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill; the rest is still good
    return out


def plot_curve(folder: str | Path) -> Path | None:
    """Training loss per step and validation accuracy/AUC per epoch, saved as ``curve.png``."""
    records = read_metrics(folder)
    steps = [r for r in records if r.get("kind") == "step" and "loss" in r]
    epochs = [r for r in records if r.get("kind") == "epoch" and "val_accuracy" in r]
    if not steps and not epochs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=1)
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss")
    ax1.grid(alpha=0.3)
    for key, label in (
        ("val_accuracy", "verification accuracy"),
        ("val_auc", "AUC"),
        ("val_rank1", "rank-1"),
    ):
        ax2.plot(
            [r["epoch"] for r in epochs], [r.get(key) for r in epochs], marker="o", label=label
        )
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation (unseen identities)")
    ax2.grid(alpha=0.3)
    ax2.legend()
    fig.tight_layout()
    out = Path(folder) / CURVE_FILE
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
