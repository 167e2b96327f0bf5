"""What a user's MODEL argument names: the promoted model, a pretrained model by name (converted
on first use), a run folder or a checkpoint file."""

from __future__ import annotations

from pathlib import Path

from facemetric.errors import ModelError
from facemetric.models.pretrained import DEFAULT_MODEL, is_pretrained_name, pretrained_checkpoint
from facemetric.paths import best_model_path


def resolve_model_path(model: str | Path | None) -> Path:
    """Turn a user's MODEL argument into a checkpoint file.

    ``None`` or ``"best"``: the promoted model, or the default pretrained model when none has
    been promoted. A pretrained model's name (``dlib``): its converted checkpoint (a folder of
    that name is ``./dlib``). A folder: a run folder (its ``best.pt``, else ``last.pt``).
    Anything else: a checkpoint file.
    """
    if model is None or str(model) == "best":
        best = best_model_path()
        if best.is_file():
            return best
        try:
            return pretrained_checkpoint(DEFAULT_MODEL)
        except ModelError as exc:
            raise ModelError(
                f"no promoted model at {best}, and the default pretrained model is unusable: {exc}"
            ) from exc
    if is_pretrained_name(str(model)):
        return pretrained_checkpoint(str(model))
    path = Path(model)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise ModelError(f"{path}: run folder has no best.pt or last.pt")
    if not path.exists():
        raise ModelError(f"{path}: model not found (a checkpoint file, a run folder or 'best')")
    return path
