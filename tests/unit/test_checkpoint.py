"""Self-describing checkpoints: round trip, model specs and refusal of pickled code."""

from __future__ import annotations

import pickle

import pytest
import torch

from beauty_app.errors import ModelError
from beauty_app.models.checkpoint import load_model, read_checkpoint
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
