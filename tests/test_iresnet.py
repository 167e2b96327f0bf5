"""Face-shaped IResNets: registry, resolution per stage, shapes at several sizes, learning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import facemetric.models.iresnet  # noqa: F401 - registers the IResNets
from conftest import shared_set
from facemetric.data.image import load_image
from facemetric.errors import ModelError
from facemetric.models import (
    ModelSpec,
    available_backbones,
    build_model,
    create_backbone,
    load_checkpoint,
    save_checkpoint,
)
from facemetric.models.iresnet import IBasicBlock, IResNet
from facemetric.train.losses import LossSettings, create_loss
from facemetric.train.setup import backbone_stages

NAMES = ("iresnet_tiny", "iresnet18", "iresnet50")


def test_registered() -> None:
    assert set(NAMES) <= set(available_backbones())


@pytest.mark.parametrize("name", ["iresnet_tiny", "iresnet18"])
def test_stage_resolutions_at_112(name: str) -> None:
    """Stride-1 stem keeps 112 px; each stage halves it down to a 7x7 map."""
    backbone = create_backbone(name).eval()
    body = backbone.body
    assert isinstance(body, IResNet)
    sizes: list[tuple[int, int]] = []
    hooks = [
        getattr(body, n).register_forward_hook(lambda _m, _i, o: sizes.append(tuple(o.shape[-2:])))
        for n in ("conv1", "layer1", "layer2", "layer3", "layer4", "bn2")
    ]
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 112, 112))
    for h in hooks:
        h.remove()
    assert sizes == [(112, 112), (56, 56), (28, 28), (14, 14), (7, 7), (7, 7)]
    assert out.shape == (1, body.out_channels * 49) == (1, backbone.out_features)


def test_iresnet50_layout() -> None:
    """IResNet50: 3-4-14-3 blocks, 512 x 7 x 7 features (forward checked on the smaller nets)."""
    backbone = create_backbone("iresnet50")
    body = backbone.body
    assert isinstance(body, IResNet)
    blocks = [len(getattr(body, f"layer{i}")) for i in range(1, 5)]
    assert blocks == [3, 4, 14, 3]
    assert backbone.out_features == 512 * 7 * 7


@pytest.mark.parametrize("size", [112, 96, 128, 160])
def test_embedding_shapes_at_other_sizes(size: int) -> None:
    model = build_model(ModelSpec(backbone="iresnet_tiny", embedding_dim=32, input_size=size))
    with torch.no_grad():
        emb = model.eval()(torch.randn(3, 3, size, size))
    assert emb.shape == (3, 32)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)


def test_pool_is_identity_at_112() -> None:
    """At 112 px the features are the BN2d map itself, flattened (the ArcFace head's input)."""
    body = create_backbone("iresnet_tiny").eval().body
    assert isinstance(body, IResNet)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        h = body.prelu(body.bn1(body.conv1(x)))
        h = body.bn2(body.layer4(body.layer3(body.layer2(body.layer1(h)))))
        torch.testing.assert_close(body(x), h)


def test_block_shortcut_only_when_shape_changes() -> None:
    assert IBasicBlock(8, 8).downsample is None
    assert IBasicBlock(8, 16).downsample is not None
    block = IBasicBlock(8, 16, stride=2).eval()
    assert block(torch.randn(1, 8, 14, 14)).shape == (1, 16, 7, 7)


def test_freeze_stages_sees_stem_and_four_layers() -> None:
    model = build_model(ModelSpec(backbone="iresnet_tiny", embedding_dim=16))
    stages = backbone_stages(model)
    assert len(stages) == 5
    assert stages[1] == [model.backbone.body.layer1]


def test_pretrained_local_state_dict_and_no_imagenet(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = create_backbone("iresnet_tiny")
    torch.save(source.state_dict(), tmp_path / "w.pt")
    loaded = create_backbone("iresnet_tiny", str(tmp_path / "w.pt"))
    for a, b in zip(source.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ModelError, match="no ImageNet weights"):
        create_backbone("iresnet18", "imagenet")


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = build_model(ModelSpec(backbone="iresnet_tiny", embedding_dim=16)).eval()
    save_checkpoint(tmp_path / "m.pt", model)
    again = load_checkpoint(tmp_path / "m.pt").build().eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.allclose(model(x), again(x))


def _orl_batch(
    identities: int = 8, per_identity: int = 2, size: int = 48
) -> tuple[torch.Tensor, torch.Tensor]:
    root = shared_set("orl")
    people = sorted(p for p in root.iterdir() if p.is_dir())[:identities]
    images, labels = [], []
    for label, person in enumerate(people):
        for f in sorted(person.iterdir())[:per_identity]:
            face = Image.fromarray(load_image(f)).resize((size, size))
            images.append(np.asarray(face))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.25, torch.tensor(labels)


@pytest.mark.slow  # 54 s with the machine's 2 cores shared by ~10 jobs; a few s when idle
def test_tiny_iresnet_learns_on_real_faces() -> None:
    """A few CosFace steps on ORL faces (48 px to keep it quick): the batch loss falls clearly."""
    torch.manual_seed(0)
    x, labels = _orl_batch()
    model = build_model(ModelSpec(backbone="iresnet_tiny", embedding_dim=32)).train()
    loss_fn = create_loss("cosface", LossSettings(num_classes=8, embedding_dim=32))
    params = [*model.parameters(), *loss_fn.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    for _ in range(12):
        loss = loss_fn(model.features(x), labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
