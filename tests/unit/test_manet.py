"""MANet: shapes, attention ranges, ablation switches and gradient flow on the tiny backbone."""

from __future__ import annotations

import pytest
import torch

from beauty_app.models.backbones import BACKBONES, build_backbone
from beauty_app.models.manet import ATTENTION_HEADS, MANet, parse_attention, pool_to, upsample_map


@pytest.mark.parametrize("head", ATTENTION_HEADS)
@pytest.mark.parametrize("attention", ["none", "saliency", "text", "both"])
def test_outputs_for_every_attention_variant(attention, head):
    torch.manual_seed(0)
    model = MANet("tiny", num_classes=4, attention=attention, attention_head=head).eval()
    images = torch.randn(2, 3, 96, 96)
    out = model(images)
    assert out.logits.shape == (2, 4)
    assert out.features.shape[:2] == (2, model.feature_dim)
    assert torch.isfinite(out.features).all() and torch.isfinite(out.logits).all()
    enabled = parse_attention(attention)
    assert (out.saliency is not None) == ("saliency" in enabled)
    assert (out.text is not None) == ("text" in enabled)
    for attention_map in (out.saliency, out.text):
        if attention_map is not None:
            # The fine head predicts at stride 8, the coarse one on the feature map's grid (stride 16 here).
            expected = (12, 12) if head == "fine" else tuple(out.features.shape[-2:])
            assert attention_map.shape == (2, 1, *expected)
            full = upsample_map(attention_map, (96, 96))
            assert full.shape == (2, 1, 96, 96)
            assert full.min() >= 0 and full.max() <= 1


@pytest.mark.parametrize("head", ATTENTION_HEADS)
def test_attention_reweights_features_residually(head):
    torch.manual_seed(0)
    model = MANet("tiny", num_classes=3, attention="saliency", attention_head=head).eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        raw = model.backbone(images)
        out = model(images)
    # F' = F * (1 + S): attention only adds emphasis, never erases the backbone's features. The fine
    # map (8x8 here) is averaged onto the feature map's 4x4 grid first.
    weight = pool_to(out.saliency, raw.shape[-2:])
    assert weight.shape[-2:] == raw.shape[-2:]
    if head == "fine":
        assert out.saliency.shape[-2:] == (8, 8)
        assert torch.allclose(weight, torch.nn.functional.avg_pool2d(out.saliency, 2), atol=1e-6)
    assert torch.allclose(out.features, raw * (1 + weight), atol=1e-6)


@pytest.mark.parametrize("head", ATTENTION_HEADS)
def test_gradients_reach_every_parameter(head):
    torch.manual_seed(0)
    model = MANet("tiny", num_classes=3, attention="both", attention_head=head).train()
    out = model(torch.randn(4, 3, 64, 64))
    loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 0]))
    loss = loss + out.saliency_logits.mean() + out.text_logits.mean()
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_external_saliency_variant_uses_the_given_mask():
    model = MANet("tiny", num_classes=2, attention="both", external_saliency=True).eval()
    assert model.saliency_branch is None
    images = torch.randn(1, 3, 64, 64)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    out = model(images, saliency=mask)
    assert out.saliency.max() == 1 and out.saliency.min() == 0
    with pytest.raises(ValueError):
        model(images)


def test_feature_extractor_without_classifier():
    model = MANet("tiny", num_classes=0, attention="none")
    out = model(torch.randn(1, 3, 64, 64))
    assert out.logits is None and out.saliency is None


def test_parse_attention_rejects_unknown_names():
    assert parse_attention("both") == ("saliency", "text")
    assert parse_attention("text,saliency") == ("saliency", "text")
    with pytest.raises(ValueError):
        parse_attention("colour")


def test_unknown_attention_head_is_refused():
    with pytest.raises(ValueError, match="attention head"):
        MANet("tiny", num_classes=2, attention="both", attention_head="medium")


@pytest.mark.parametrize("name", BACKBONES)
def test_backbones_give_the_fine_level_and_the_same_final_map(name):
    torch.manual_seed(0)
    backbone = build_backbone(name).eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fine, final = backbone.forward_levels(images)
        plain = backbone(images)
    info = backbone.info
    assert fine.shape == (1, info.fine_channels, 64 // info.fine_stride, 64 // info.fine_stride)
    assert torch.equal(final, plain)


def test_srmac_uses_the_fine_map_as_the_reweighting_does():
    from beauty_app.retrieval.pooling import srmac

    torch.manual_seed(0)
    model = MANet("tiny", num_classes=2, attention="both").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 96, 96))
    grid = out.features.shape[-2:]
    assert out.saliency.shape[-2:] != grid
    # SR-MAC shrinks the map onto the feature grid by area averaging, exactly as MANet's re-weighting.
    torch.testing.assert_close(srmac(out.features, out.saliency), srmac(out.features, pool_to(out.saliency, grid)))


def test_saliency_retrieval_attention_keeps_text_out_of_the_retrieval_features(tmp_path):
    from beauty_app.models.checkpoint import load_model, read_checkpoint, save_checkpoint

    torch.manual_seed(0)
    paper = MANet("tiny", num_classes=3, attention="both").eval()
    split = MANet("tiny", num_classes=3, attention="both", retrieval_attention="saliency").eval()
    split.load_state_dict(paper.state_dict())
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        raw = split.backbone(images)
        ours, theirs = split(images), paper(images)
    grid = raw.shape[-2:]
    # The index pools F * (1 + S); the classifier still reads the paper's F * (1 + S + T).
    torch.testing.assert_close(ours.features, raw * (1 + pool_to(ours.saliency, grid)))
    torch.testing.assert_close(ours.head_features, theirs.features)
    torch.testing.assert_close(ours.logits, theirs.logits)
    assert not torch.allclose(ours.features, theirs.features)
    assert theirs.head_features is None
    # The choice travels with the checkpoint; files without it re-weight with every map.
    common = dict(class_names=["a", "b", "c"], input_size=64, mean=[0.5] * 3, std=[0.25] * 3)
    path = save_checkpoint(tmp_path / "split.safetensors", split, **common)
    assert read_checkpoint(path)["retrieval_attention"] == "saliency"
    assert load_model(str(path)).model.retrieval_attention == "saliency"
    plain = save_checkpoint(tmp_path / "paper.safetensors", paper, **common)
    assert "retrieval_attention" not in read_checkpoint(plain)
    assert load_model(str(plain)).model.retrieval_attention == "all"


def test_unknown_retrieval_attention_is_refused(tmp_path):
    from beauty_app.errors import ModelError
    from beauty_app.models.checkpoint import load_model, read_checkpoint, rewrite_checkpoint, save_checkpoint

    with pytest.raises(ValueError, match="retrieval attention"):
        MANet("tiny", num_classes=2, retrieval_attention="text")
    path = save_checkpoint(tmp_path / "m.safetensors", MANet("tiny", num_classes=2), class_names=["a", "b"],
                           input_size=64, mean=[0.5] * 3, std=[0.25] * 3)
    payload = read_checkpoint(path)
    payload["retrieval_attention"] = "text"
    rewrite_checkpoint(path, payload)
    with pytest.raises(ModelError, match="retrieval attention"):
        load_model(str(path))


def test_retrieval_features_alone_skip_the_heads_input():
    torch.manual_seed(0)
    model = MANet("tiny", num_classes=2, attention="both", retrieval_attention="saliency").eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        indexing, full = model.forward_features(images), model(images)
    assert indexing.head_features is None and full.head_features is not None
    torch.testing.assert_close(indexing.features, full.features)
