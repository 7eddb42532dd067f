"""Models saved and shipped as safetensors: metadata in the header, same validation, .pt still readable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from beauty_app.errors import ModelError
from beauty_app.models.checkpoint import (
    CHECKPOINT_FORMAT,
    convert_to_safetensors,
    load_model,
    main,
    read_checkpoint,
    save_checkpoint,
)
from beauty_app.models.manet import MANet
from beauty_app.paths import demo_checkpoint
from beauty_app.retrieval.extractor import FeatureExtractor
from tests.conftest import PAPER_MEAN, PAPER_STD, make_tiny_checkpoint

# Weights digest (see _weights_digest) of model_store/demo_manet.pt as shipped before the conversion
# (git 73d059b, file SHA-256 6fd3bb86...); the converted file must carry exactly these weights.
DEMO_PT_WEIGHTS_DIGEST = "39b9cde80feb692b10be03c94cd1a1a8e714725196afaf2dfa290ededb0e6d01"


def _weights_digest(state_dict: dict) -> str:
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].contiguous()
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _outputs(spec: str, images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    bundle = load_model(spec)
    with torch.no_grad():
        logits = bundle.model(images).logits
    return logits, FeatureExtractor(bundle, "srmac", use_amp=False).vectors(images)


def test_safetensors_header_carries_the_description_as_strings(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "m.safetensors", classes=("a", "b"), attention="both", input_size=80)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert all(isinstance(value, str) for value in metadata.values())
    assert metadata["format"] == CHECKPOINT_FORMAT and metadata["backbone"] == "tiny"
    assert json.loads(metadata["class_names"]) == ["a", "b"]
    assert json.loads(metadata["input_size"]) == 80
    assert json.loads(metadata["train_config"]) == {"note": "random tiny test model"}
    assert "torch" in json.loads(metadata["versions"])
    # No pickle anywhere: the file is a safetensors header followed by raw tensor bytes.
    assert path.read_bytes()[8:9] == b"{"

    payload = read_checkpoint(path)
    assert payload["attention"] == ["saliency", "text"] and payload["mean"] == pytest.approx(PAPER_MEAN)
    bundle = load_model(str(path))
    assert bundle.class_names == ["a", "b"] and bundle.input_size == 80 and bundle.has_saliency
    assert bundle.metadata["feature_dim"] == bundle.model.feature_dim


def test_a_pt_model_converts_to_safetensors_with_equal_logits_and_vectors(tmp_path):
    old = make_tiny_checkpoint(tmp_path / "old.pt", classes=("a", "b", "c"), input_size=64, seed=3)
    new = convert_to_safetensors(old)
    assert new == tmp_path / "old.safetensors"
    before, after = read_checkpoint(old), read_checkpoint(new)
    assert {k: v for k, v in before.items() if k != "state_dict"} == {
        k: v for k, v in after.items() if k != "state_dict"}
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    old_logits, old_vectors = _outputs(str(old), images)
    new_logits, new_vectors = _outputs(str(new), images)
    assert torch.equal(old_logits, new_logits)
    assert np.array_equal(old_vectors, new_vectors)


def test_the_demo_model_converted_from_pt_kept_its_weights():
    # The demo model as first shipped (a .pt pickle), converted to safetensors without changing a weight;
    # kept in tests/data since a retrained model replaced it in model_store.
    path = Path(__file__).parents[1] / "data" / "legacy_coarse_manet.safetensors"
    assert path.read_bytes()[8:9] == b"{"
    payload = read_checkpoint(path)
    assert payload["backbone"] == "efficientnet_lite0" and len(payload["class_names"]) == payload["num_classes"] == 14
    assert _weights_digest(payload["state_dict"]) == DEMO_PT_WEIGHTS_DIGEST


def test_the_shipped_demo_model_is_safetensors_made_by_the_project_s_training():
    path = demo_checkpoint()
    assert path.name == "demo_manet.safetensors" and path.is_file()
    assert path.read_bytes()[8:9] == b"{"
    payload = read_checkpoint(path)
    assert payload["backbone"] == "efficientnet_lite0" and len(payload["class_names"]) == payload["num_classes"] == 14
    config = payload["train_config"]
    assert config["backbone"] == "efficientnet_lite0" and config["recipe"] == "instance"
    assert payload["attention_head"] == "fine" and payload["title_names"]
    # Trained at 224 px, used at the side measured best for it (docs/benchmarks.md, model_store/README.md).
    assert payload["input_size"] == config["input_size"] == 224 and payload["query_size"] == config["query_size"]


def test_container_is_recognised_by_content_not_name(tmp_path):
    real = make_tiny_checkpoint(tmp_path / "m.safetensors")
    renamed = tmp_path / "renamed.pt"
    renamed.write_bytes(real.read_bytes())
    assert read_checkpoint(renamed)["format"] == CHECKPOINT_FORMAT
    legacy = make_tiny_checkpoint(tmp_path / "legacy.pt")
    disguised = tmp_path / "disguised.safetensors"
    disguised.write_bytes(legacy.read_bytes())
    assert read_checkpoint(disguised)["format"] == CHECKPOINT_FORMAT


def _tiny_weights() -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in MANet("tiny", num_classes=2, attention="none").state_dict().items()}


def test_safetensors_metadata_gets_the_same_validation(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weights": torch.zeros(2)}, str(foreign))
    with pytest.raises(ModelError, match="not a BeautyLens"):
        load_model(str(foreign))
    good = read_checkpoint(make_tiny_checkpoint(tmp_path / "m.safetensors"))
    base = {k: v if k in ("format", "arch", "backbone") else json.dumps(v) for k, v in good.items() if k != "state_dict"}

    newer = tmp_path / "newer.safetensors"
    save_file(_tiny_weights(), str(newer), metadata={**base, "format_version": "99"})
    with pytest.raises(ModelError, match="newer BeautyLens"):
        read_checkpoint(newer)
    unknown = tmp_path / "unknown.safetensors"
    save_file(_tiny_weights(), str(unknown), metadata={**base, "backbone": "alexnet"})
    with pytest.raises(ModelError, match="unknown backbone 'alexnet'"):
        read_checkpoint(unknown)
    broken = tmp_path / "broken.safetensors"
    save_file(_tiny_weights(), str(broken), metadata={**base, "class_names": "[unterminated"})
    with pytest.raises(ModelError, match="unreadable metadata field 'class_names'"):
        read_checkpoint(broken)
    mismatched = tmp_path / "mismatched.safetensors"
    save_file({"weights": torch.zeros(2)}, str(mismatched), metadata=base)
    with pytest.raises(ModelError, match="do not hold the classifier"):
        load_model(str(mismatched))


def test_truncated_safetensors_file_is_a_clear_error(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelError, match="not a readable"):
        load_model(str(path))


def test_resume_state_stays_a_torch_file_and_is_not_converted(tmp_path):
    model = MANet("tiny", num_classes=2, attention="none")
    kwargs = dict(class_names=["a", "b"], input_size=64, mean=PAPER_MEAN, std=PAPER_STD)
    with pytest.raises(ValueError, match="safetensors"):
        save_checkpoint(tmp_path / "run.safetensors", model, extra={"iteration": 3}, **kwargs)
    assert not list(tmp_path.iterdir())  # nothing half-written
    state = save_checkpoint(tmp_path / "run.safetensors.resume", model, extra={"iteration": 3}, **kwargs)
    assert read_checkpoint(state)["extra"] == {"iteration": 3}
    with pytest.raises(ModelError, match="resumable state"):
        convert_to_safetensors(state, tmp_path / "x.safetensors")


def test_conversion_command(tmp_path, capsys):
    old = make_tiny_checkpoint(tmp_path / "old.pt")
    assert main([str(old), str(tmp_path / "new.safetensors")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "new.safetensors")
    assert read_checkpoint(tmp_path / "new.safetensors")["backbone"] == "tiny"
    assert main([str(old), str(tmp_path / "new.pt")]) == 2
    assert "must be named *.safetensors" in capsys.readouterr().err


def test_training_writes_safetensors_and_resumes_from_a_torch_state(tmp_path):
    from beauty_app.demo.products import generate_demo
    from beauty_app.training.config import TrainConfig
    from beauty_app.training.mining import mine_dataset
    from beauty_app.training.trainer import Interrupted, resume_path_for, train

    assert TrainConfig().out.endswith(".safetensors")
    demo = generate_demo(tmp_path / "demo", n_products=12, seed=5, image_size=96)
    mined = mine_dataset(demo.catalog_csv, tmp_path / "mined", min_images=2, workers=1)
    out = tmp_path / "m.safetensors"
    config = TrainConfig(data=str(mined.root), out=str(out), backbone="tiny", pretrained=False, iterations=3,
                         stage1_iterations=2, batch_size=4, input_size=64, workers=0, checkpoint_every=1,
                         device="cpu")
    steps = {"n": 0}

    def stop_in_stage_two() -> bool:
        steps["n"] += 1
        return steps["n"] > 3

    with pytest.raises(Interrupted) as info:
        train(config, should_stop=stop_in_stage_two)
    assert info.value.resume_path == resume_path_for(out) and not out.exists()
    assert info.value.resume_path.read_bytes()[:2] == b"PK"  # torch.save's zip: optimizer state and all
    result = train(config, resume=True)
    assert result.checkpoint == out and out.read_bytes()[8:9] == b"{"
    assert read_checkpoint(out)["class_names"] == mined.classes and load_model(str(out)).has_saliency
