"""The built-in backbones: torchvision's (ResNet50 from scratch is the seed's Model 3), a tiny
CNN for tests, and, imported here so that they register too, the face networks (dlib's ResNet,
IResNets) and the backbones built from a spec (a TF.js graph, composites). The registry itself
is ``registry.py``.
"""

from __future__ import annotations

from torch import nn

from facemetric.models import composite as _composite  # noqa: F401  (registers itself)
from facemetric.models import dlib_resnet as _dlib_resnet  # noqa: F401
from facemetric.models import iresnet as _iresnet  # noqa: F401
from facemetric.models import tfjs_net as _tfjs_net  # noqa: F401
from facemetric.models.registry import Backbone, apply_pretrained, register_backbone

# --- torchvision backbones ----------------------------------------------------------------------


def _torchvision_resnet(arch: str, weights_enum: str, pretrained: str | None) -> Backbone:
    import torchvision.models as tvm

    net = getattr(tvm, arch)(weights=None)
    apply_pretrained(net, pretrained, getattr(tvm, weights_enum).DEFAULT)
    out = net.fc.in_features
    net.fc = nn.Identity()
    return Backbone(net, out)


@register_backbone("resnet50", "torchvision ResNet50 (2048-d): the seed's Model 3, from scratch")
def resnet50(pretrained: str | None = None) -> Backbone:
    return _torchvision_resnet("resnet50", "ResNet50_Weights", pretrained)


@register_backbone("resnet18", "torchvision ResNet18 (512-d features)")
def resnet18(pretrained: str | None = None) -> Backbone:
    return _torchvision_resnet("resnet18", "ResNet18_Weights", pretrained)


@register_backbone("mobilenet_v3", "torchvision MobileNetV3-Large (960-d features)")
def mobilenet_v3(pretrained: str | None = None) -> Backbone:
    import torchvision.models as tvm

    net = tvm.mobilenet_v3_large(weights=None)
    apply_pretrained(net, pretrained, tvm.MobileNet_V3_Large_Weights.DEFAULT)
    # torchvision sets BatchNorm momentum 0.01, tuned for long ImageNet schedules: after a short
    # CPU budget the running statistics are still far from the data and every face embeds alike in
    # eval mode (seen here: validation AUC 0.50 after 120 steps). 0.1 is PyTorch's default.
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
    body = nn.Sequential(net.features, net.avgpool)
    return Backbone(body, net.classifier[0].in_features)


@register_backbone("tiny", "a 4-layer CNN for tests and smoke runs (64-d features)")
def tiny(pretrained: str | None = None) -> Backbone:
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    body = nn.Sequential(
        block(3, 16), block(16, 32), block(32, 64), block(64, 64), nn.AdaptiveAvgPool2d(1)
    )
    model = Backbone(body, 64)
    apply_pretrained(model, pretrained, None)
    return model
