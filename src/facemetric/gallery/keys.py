"""Which model an embedding belongs to: a key hashed from the model's weights and spec."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facemetric.models.inference import Embedder


def model_key(embedder: Embedder) -> str:
    """A hash of the embedder's weights and spec (cached on the embedder).

    Calibrating a threshold rewrites the checkpoint file but not the weights, so the key hashes
    the tensors, not the file: the gallery is not re-embedded for a new threshold.
    """
    cached = getattr(embedder, "model_key", None) or getattr(embedder, "_gallery_model_key", None)
    if isinstance(cached, str):
        return cached
    model = getattr(embedder, "model", None)
    if model is not None and hasattr(model, "state_dict"):
        state = model.state_dict()
    else:
        from facemetric.models.checkpoint import load_checkpoint

        state = load_checkpoint(embedder.checkpoint_path).state_dict
    key = weights_key(embedder.spec.to_dict(), state)
    with contextlib.suppress(AttributeError):  # an embedder with __slots__ just recomputes
        embedder._gallery_model_key = key  # type: ignore[attr-defined]
    return key


def weights_key(spec: dict[str, Any], state_dict: dict[str, Any]) -> str:
    """blake2b over the spec (JSON) and every tensor in name order; 32 hex digits."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(spec, sort_keys=True).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name]
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
