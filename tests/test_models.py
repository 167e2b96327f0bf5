"""Backbone registry, embedding network and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facemetric.errors import ConfigError, ModelError
from facemetric.models import (
    ModelSpec,
    available_backbones,
    build_model,
    load_checkpoint,
    load_embedder,
    resolve_model_path,
    save_checkpoint,
)
from facemetric.models.checkpoint import update_checkpoint
from facemetric.models.embedder import spec_for
from facemetric.models.registry import backbone_info


@pytest.mark.parametrize("name", available_backbones())
def test_every_backbone_embeds_tiny_input(name: str) -> None:
    """Small inputs and embeddings, except where the backbone fixes them (dlib: 150 px, 128-d)."""
    needs = backbone_info(name).spec_defaults
    small = {"embedding_dim": 16, "input_size": 64}
    spec = spec_for(name, **{k: needs.get(k, v) for k, v in small.items()})
    model = build_model(spec).eval()
    size = spec.input_size
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, spec.embedding_dim)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_unknown_backbone_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="resnet50"):
        build_model(ModelSpec(backbone="vgg99"))


def test_checkpoint_round_trip_and_threshold_update(tmp_path) -> None:
    spec = ModelSpec(backbone="tiny", embedding_dim=8, input_size=48)
    model = build_model(spec).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, meta={"data": "x"})
    ckpt = load_checkpoint(path)
    assert ckpt.spec == spec and ckpt.threshold is None and ckpt.meta == {"data": "x"}
    update_checkpoint(path, threshold=0.42, calibration={"far": 1e-3})
    ckpt = load_checkpoint(path)
    assert ckpt.threshold == pytest.approx(0.42)
    assert ckpt.meta["calibration"] == {"far": 1e-3}
    faces = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    emb = load_embedder(path, engine="torch").embed(faces)
    with torch.no_grad():
        x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255
        mean, std = torch.tensor(spec.mean)[:, None, None], torch.tensor(spec.std)[:, None, None]
        ref = model((x - mean) / std).numpy()
    np.testing.assert_allclose(emb, ref, atol=1e-5)


def test_bad_checkpoints_name_the_file(tmp_path) -> None:
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="junk.pt"):
        load_checkpoint(bad)
    with pytest.raises(ModelError, match="missing.pt"):
        resolve_model_path(tmp_path / "missing.pt")
