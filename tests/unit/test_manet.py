"""MANet: shapes, attention ranges, ablation switches and gradient flow on the tiny backbone."""

from __future__ import annotations

import pytest
import torch

from beauty_app.models.manet import MANet, parse_attention, upsample_map


@pytest.mark.parametrize("attention", ["none", "saliency", "text", "both"])
def test_outputs_for_every_attention_variant(attention):
    torch.manual_seed(0)
    model = MANet("tiny", num_classes=4, attention=attention).eval()
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
            assert attention_map.shape == (2, 1, *out.features.shape[-2:])
            full = upsample_map(attention_map, (96, 96))
            assert full.shape == (2, 1, 96, 96)
            assert full.min() >= 0 and full.max() <= 1


def test_attention_reweights_features_residually():
    torch.manual_seed(0)
    model = MANet("tiny", num_classes=3, attention="saliency").eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        raw = model.backbone(images)
        out = model(images)
    # F' = F * (1 + S): attention only adds emphasis, never erases the backbone's features.
    assert torch.allclose(out.features, raw * (1 + out.saliency), atol=1e-6)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = MANet("tiny", num_classes=3, attention="both").train()
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
