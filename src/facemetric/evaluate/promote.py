"""Promotion: a run's checkpoint copied into place as the ``best`` model every command uses.

``compare --promote`` promotes the best model of a comparison; the copy records where it came
from, by which metric, and the threshold it was calibrated with when it had none of its own.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from facemetric.errors import ConfigError, ModelError
from facemetric.evaluate.run import model_name


def promote(
    run: str | Path,
    metric: str | None = None,
    value: float | None = None,
    calibration: dict[str, Any] | None = None,
) -> Path:
    """Copy a run's checkpoint to ``best_model_path()`` atomically, recording where it came from.

    ``calibration`` (a threshold calibrated elsewhere) replaces the checkpoint's threshold in
    the promoted copy.

    A fresh ONNX export beside the checkpoint is copied too; a stale ``best.onnx`` is removed so
    ``load_embedder("best")`` can never pair the new weights with an old export.
    """
    import torch

    from facemetric.models.checkpoint import atomic_torch_save
    from facemetric.models.resolve import resolve_model_path
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
    meta["promoted_run"] = model_name(src, meta)
    if calibration is not None:
        payload["threshold"] = float(calibration["threshold"])
        meta["calibration"] = calibration
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
