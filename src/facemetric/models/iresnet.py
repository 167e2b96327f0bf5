"""Face-shaped ResNets (IResNet family) for 112 px crops: iresnet18, iresnet50, iresnet_tiny.

torchvision's ResNets were made for 224 px ImageNet photos: their stride-2 7x7 stem and max-pool
leave a 4x4 map at 112 px, too coarse for faces. The IResNet layout used by ArcFace keeps the
resolution early (a stride-1 3x3 stem) and halves it once per stage: 112 -> 56 -> 28 -> 14 -> 7.
Each block is BN-conv-BN-PReLU-conv-BN plus a shortcut.

The ArcFace embedding head is BN2d -> dropout -> flatten -> FC -> BN1d over the 7x7 map, keeping
where things are on the face rather than averaging it away. Here it is split across the two
modules so that ``EmbeddingNet`` needs no change: the backbone ends with the BN2d and returns the
flattened map (``channels x 7 x 7`` features), and ``EmbeddingNet.head`` (dropout -> linear ->
BN1d, see ``facemetric/models/embedder.py``) is the rest. ``ModelSpec.dropout`` is the head's
dropout. At other input sizes the last map is average-pooled to 7x7 first, so the feature size,
and thus a checkpoint, does not depend on the input size.

The backbones register themselves (``registry.py``) when this module is imported;
``facemetric.models.backbones`` imports it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facemetric.models.registry import Backbone, apply_pretrained, register_backbone

MAP_SIZE = 7  # the last feature map at 112 px, and what other sizes are pooled to
MIN_CHANNELS_LAST_1X1 = 16  # see IBasicBlock.forward


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3 (stride) -> BN, plus the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = _conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = _conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                nn.BatchNorm2d(cout, eps=1e-5),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        if self.downsample is None:
            shortcut = x
        elif x.shape[1] < MIN_CHANNELS_LAST_1X1:
            # oneDNN 3.12 (torch 2.14.1) crashes in the backward pass of a 1x1 stride-2
            # convolution on channels-last input with fewer than 16 channels on AVX-512 CPUs
            # (seen on an AMD EPYC with AVX-512 BF16); only the test-size IResNet has such a
            # block, and a contiguous input avoids the faulty kernel.
            shortcut = self.downsample(x.contiguous())
        else:
            shortcut = self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    """Stem (stride 1), four stages each halving the resolution, then BN2d on the last map.

    Attribute names follow torchvision (``conv1``, ``bn1``, ``layer1``..``layer4``) so that
    ``--freeze-stages`` finds the stages the same way.
    """

    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, blocks: Sequence[int], widths: Sequence[int]) -> None:
        super().__init__()
        if len(blocks) != 4 or len(widths) != 4:
            raise ValueError(f"IResNet needs 4 stages, got blocks={blocks} widths={widths}")
        stem = widths[0]
        self.conv1 = _conv3x3(3, stem)
        self.bn1 = nn.BatchNorm2d(stem, eps=1e-5)
        self.prelu = nn.PReLU(stem)
        cin = stem
        for i, (n, width) in enumerate(zip(blocks, widths, strict=True), start=1):
            layers = [IBasicBlock(cin, width, stride=2)]
            layers += [IBasicBlock(width, width) for _ in range(n - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layers))
            cin = width
        self.bn2 = nn.BatchNorm2d(cin, eps=1e-5)
        self.pool = nn.AdaptiveAvgPool2d(MAP_SIZE)  # identity at 112 px
        self.out_channels = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.pool(self.bn2(x))


def _iresnet(blocks: Sequence[int], widths: Sequence[int], pretrained: str | None) -> Backbone:
    body = IResNet(blocks, widths)
    model = Backbone(body, body.out_channels * MAP_SIZE * MAP_SIZE)
    # No ImageNet weights exist for these; a local state dict (of this Backbone) is accepted.
    apply_pretrained(model, pretrained, None)
    return model


@register_backbone("iresnet18", "face-shaped IResNet18 for 112 px (512x7x7 map, ArcFace head)")
def iresnet18(pretrained: str | None = None) -> Backbone:
    return _iresnet((2, 2, 2, 2), (64, 128, 256, 512), pretrained)


@register_backbone("iresnet50", "face-shaped IResNet50 for 112 px (512x7x7 map, ArcFace head)")
def iresnet50(pretrained: str | None = None) -> Backbone:
    return _iresnet((3, 4, 14, 3), (64, 128, 256, 512), pretrained)


@register_backbone("iresnet_tiny", "a 4-block face-shaped IResNet for tests (32x7x7 map)")
def iresnet_tiny(pretrained: str | None = None) -> Backbone:
    return _iresnet((1, 1, 1, 1), (8, 16, 32, 32), pretrained)
