"""Self-describing checkpoints: round trip, model specs and refusal of pickled code."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from beauty_app.errors import ModelError
from beauty_app.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from beauty_app.models.manet import MANet
from tests.conftest import make_tiny_checkpoint


def test_round_trip_rebuilds_an_identical_model(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "m.pt", classes=("a", "b"), attention="saliency", input_size=80)
    payload = read_checkpoint(path)
    for key in ("backbone", "attention", "class_names", "input_size", "mean", "std", "feature_dim",
                "train_config", "versions"):
        assert key in payload
    bundle = load_model(str(path))
    assert bundle.class_names == ["a", "b"] and bundle.input_size == 80
    assert bundle.has_saliency and not bundle.has_text
    images = torch.randn(1, 3, 80, 80)
    again = load_model(str(path))
    with torch.no_grad():
        assert torch.equal(bundle.model(images).logits, again.model(images).logits)
    assert bundle.fingerprint == again.fingerprint and len(bundle.fingerprint) == 64


class _Payload:
    """Unpickling this object would create a file: the attack a checkpoint must not carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_checkpoint_with_pickle_payload_is_refused_without_running_it(tmp_path, protocol):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "beautylens-manet", "state_dict": {}, "x": _Payload(str(marker))}, evil,
               pickle_protocol=protocol)
    with pytest.raises(ModelError, match="refused"):
        load_model(str(evil))
    assert not marker.exists()
    # The payload is live: unrestricted unpickling does create the file.
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_bad_specs_give_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(str(tmp_path / "missing.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelError, match="refused"):
        load_model(str(garbage))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ModelError, match="not a BeautyLens"):
        load_model(str(foreign))
    with pytest.raises(ModelError, match="Unknown backbone"):
        load_model("imagenet:alexnet")


@pytest.mark.parametrize("head", ["fine", "coarse"])
def test_checkpoints_record_the_attention_head(tmp_path, head):
    model = MANet("tiny", num_classes=2, attention="both", attention_head=head)
    path = save_checkpoint(tmp_path / "m.pt", model, class_names=["a", "b"], input_size=64,
                           mean=(0.5,) * 3, std=(0.25,) * 3)
    assert read_checkpoint(path)["attention_head"] == head
    assert load_model(str(path)).model.attention_head == head


def test_checkpoint_without_a_head_is_the_coarse_one_and_an_unknown_head_is_refused(tmp_path):
    model = MANet("tiny", num_classes=2, attention="both", attention_head="coarse")
    path = save_checkpoint(tmp_path / "m.pt", model, class_names=["a", "b"], input_size=64,
                           mean=(0.5,) * 3, std=(0.25,) * 3)
    payload = torch.load(path, weights_only=True)
    del payload["attention_head"]  # as written before the fine head existed
    torch.save(payload, path)
    assert load_model(str(path)).model.attention_head == "coarse"
    payload["attention_head"] = "hexagonal"
    torch.save(payload, path)
    with pytest.raises(ModelError, match="attention head"):
        load_model(str(path))


LEGACY_MODEL = Path(__file__).parents[1] / "data" / "legacy_coarse_manet.safetensors"


def test_a_checkpoint_from_before_the_fine_head_loads_with_its_head_and_gives_the_outputs_it_gave_before():
    # The demo model shipped before the fine head existed (git 795a0e5 blob, tests/data); the reference
    # was computed by the code of that time (tests/data/*.json says how).
    reference = json.loads((Path(__file__).parents[1] / "data" / "demo_manet_reference.json").read_text())
    bundle = load_model(str(LEGACY_MODEL))
    assert "attention_head" not in read_checkpoint(LEGACY_MODEL)
    assert bundle.model.attention_head == "coarse"
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 224), torch.linspace(-1, 1, 224), indexing="ij")
    images = torch.stack([xx, yy, xx * yy], 0)[None].float()
    images[..., 60:170, 80:150] += 1.5
    with torch.no_grad():
        out = bundle.model(images)
    for name, got in (("saliency", out.saliency[0, 0]), ("text", out.text[0, 0]), ("logits", out.logits[0]),
                      ("features_mean", out.features.mean(dim=(2, 3))[0, :32])):
        torch.testing.assert_close(got, torch.tensor(reference[name]), atol=2e-5, rtol=1e-4)


def test_a_query_size_is_the_side_the_loaded_model_is_used_at(tmp_path):
    from beauty_app.retrieval.extractor import FeatureExtractor

    torch.manual_seed(0)
    model = MANet("tiny", num_classes=2, attention="both")
    common = {"class_names": ["a", "b"], "input_size": 96, "mean": (0.5,) * 3, "std": (0.25,) * 3}
    path = save_checkpoint(tmp_path / "q.safetensors", model, query_size=160, **common)
    bundle = load_model(str(path))
    assert bundle.input_size == 160 and bundle.metadata["input_size"] == 96  # the training side stays known
    assert FeatureExtractor(bundle, "srmac", use_amp=False).input_size == 160  # indexes and queries follow it
    # Without one (or the same as the training side) nothing changes: older files load as before.
    plain = load_model(str(save_checkpoint(tmp_path / "p.safetensors", model, **common)))
    same = save_checkpoint(tmp_path / "s.safetensors", model, query_size=96, **common)
    assert plain.input_size == 96 and "query_size" not in read_checkpoint(same)
    # A crafted size is refused like a crafted input_size.
    payload = read_checkpoint(path)
    payload["query_size"] = 10**6
    from beauty_app.models.checkpoint import validate_checkpoint_metadata

    with pytest.raises(ValueError, match="query_size"):
        validate_checkpoint_metadata(payload)
