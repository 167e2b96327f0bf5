"""dlib's face-recognition ResNet in PyTorch: 29 convolutions, 150x150 RGB chips in, 128-d out.

The network of ``dlib_face_recognition_resnet_model_v1.dat`` (Davis King, public domain): a
ResNet-34 with layers removed and filters halved, trained on ~3M faces of 7,485 people so that one
person's faces lie within Euclidean distance 0.6. The weights are read from the ``.dat`` file by
``facemetric.models.pretrained.dlib``; this module only rebuilds the topology, numerically the
same as dlib's CPU code (tested against ``dlib.face_recognition_model_v1``):

- every convolution has a bias and is followed by ``affine`` (batch norm folded into a fixed
  per-channel scale and shift);
- dlib pads a convolution or pooling only when its stride is 1 (``kernel // 2``), never otherwise;
- a residual addition of two tensors of different shapes keeps the larger size in every
  dimension, reading both from index 0 and counting missing elements as 0 (``padded_add``). At
  150 px this matters twice: the 3x3 block output meets a 4x4 pooled shortcut, and a 1x1 meets
  a 2x2, so the block adds only to the top-left corner.

The body returns the raw 128-d descriptor (not L2-normalised, norm ~1.2-1.3), which is also what
the triplet loss sees when this network is fine-tuned (``ModelSpec.distance == "euclidean"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facemetric.models.registry import Backbone, apply_pretrained, register_backbone

INPUT_SIZE = 150
EMBEDDING_DIM = 128
# dlib's input scaling, value = (pixel - mean) / 256 per RGB channel (the means are stored in the
# .dat file; these are its values). As a ModelSpec: mean / 255 and std 256 / 255.
PIXEL_MEAN = (122.782, 117.001, 104.298)
PIXEL_SCALE = 256.0
# (channels, residual blocks after the down-sampling one) of each stage after the stem; the first
# stage has no down-sampling block.
STAGES = ((32, 3), (64, 3), (128, 2), (256, 2), (256, 0))


class Affine(nn.Module):
    """dlib's ``affine_`` layer: y = weight[c] * x + bias[c] (batch norm folded after training)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev`` of tensors of different shapes: zero-pad each at the END of the channel,
    row and column axes to the larger size, then add."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(int(x), int(y)) for x, y in zip(a.shape[1:], b.shape[1:], strict=True))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


def _conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 0)


class ResidualBlock(nn.Module):
    """conv-affine-relu-conv-affine, added to the input (or to its 2x2 average when ``down``)."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = _conv(cin, cout, 3, 2 if down else 1)
        self.affine1 = Affine(cout)
        self.conv2 = _conv(cout, cout, 3, 1)
        self.affine2 = Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(padded_add(y, shortcut))


class DlibResNet(nn.Module):
    """(N, 3, 150, 150) chips, already scaled as (pixel - mean) / 256 -> (N, 128) descriptors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _conv(3, 32, 7, 2)
        self.affine1 = Affine(32)
        layers = []
        cin = 32
        for i, (channels, blocks) in enumerate(STAGES):
            stage = [ResidualBlock(cin, channels, down=True)] if i else []
            stage += [ResidualBlock(channels, channels, down=False) for _ in range(blocks)]
            layers.append(nn.Sequential(*stage))
            cin = channels
        self.layer1, self.layer2, self.layer3, self.layer4, self.layer5 = layers
        self.fc = nn.Linear(cin, EMBEDDING_DIM, bias=False)

    def stages(self) -> list[list[nn.Module]]:
        """From the input side, for ``--freeze-stages``: the stem, then the five residual stages
        (32, 64, 128, 256, 256 channels). The final linear layer is never frozen."""
        stem: list[nn.Module] = [self.conv1, self.affine1]
        layers = (self.layer1, self.layer2, self.layer3, self.layer4, self.layer5)
        return [stem] + [[layer] for layer in layers]

    def residual_blocks(self) -> list[ResidualBlock]:
        """Every residual block in the order dlib stores them (input side first)."""
        return [
            block
            for layer in (self.layer1, self.layer2, self.layer3, self.layer4, self.layer5)
            for block in layer
            if isinstance(block, ResidualBlock)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.affine1(self.conv1(x))), 3, 2)
        x = self.layer5(self.layer4(self.layer3(self.layer2(self.layer1(x)))))
        return self.fc(x.mean(dim=(2, 3)))


@register_backbone(
    "dlib_resnet",
    "dlib's 29-conv face ResNet (150 px chips, 128-d); pretrained weights: the 'dlib' model",
    # The network has no batch norm and small weights: lr 1e-4 broke it within 60 steps in an
    # evaluator's runs; 1e-5 with only the 256-channel stages and the last layer training. In
    # benchmarks/finetune_cfp.py (600 steps, 3 splits of CFP's people) dlib's own loss in its own
    # metric (same-person pairs below 0.56, the hardest different-person pairs above 0.64), the
    # starting network as a teacher holding each face's embedding where it was, and no
    # augmentation gained +1.05/+0.26/+1.12 points on unseen people's profile pairs for
    # +0.02/-0.15/-0.06 on frontal ones; the triplet loss (margin 0.04, teacher x3, augmented)
    # +1.01/+0.23/+0.76 for -0.18/-0.14/-0.13; without a teacher either cost up to 1 point.
    finetune={
        "loss": "pair_threshold",
        "lr": 1e-5,
        "freeze_stages": 4,
        "augment": False,
        "teacher": "init",
        "teacher_loss": "embedding",
        "teacher_weight": 1.0,
    },
    input_size=INPUT_SIZE,
    embedding_dim=EMBEDDING_DIM,
    head="none",
    mean=tuple(m / 255.0 for m in PIXEL_MEAN),
    std=(PIXEL_SCALE / 255.0,) * 3,
    alignment="dlib",
    distance="euclidean",
)
def dlib_resnet(pretrained: str | None = None) -> Backbone:
    net = DlibResNet()
    model = Backbone(net, EMBEDDING_DIM)
    apply_pretrained(model, pretrained, None)
    return model
