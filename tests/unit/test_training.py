"""Training chain at tiny scale: mine -> pseudo masks -> two-stage MANet training -> checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from beauty_app.models.checkpoint import load_model, read_checkpoint
from beauty_app.training.config import TrainConfig
from beauty_app.training.data import read_mask_marks
from beauty_app.training.mining import mine_dataset
from beauty_app.training.trainer import Interrupted, attention_loss, decayed_lr, resume_path_for, train


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    from beauty_app.demo.products import generate_demo

    root = tmp_path_factory.mktemp("train")
    demo = generate_demo(root / "demo", n_products=28, seed=5, image_size=128)
    return mine_dataset(demo.catalog_csv, root / "mined", min_images=2, workers=1)


def _config(mined, out, **overrides):
    values = dict(data=str(mined.root), out=str(out), backbone="tiny", pretrained=False, iterations=6,
                  stage1_iterations=4, batch_size=4, input_size=64, workers=0, checkpoint_every=2, device="cpu")
    values.update(overrides)
    return TrainConfig(**values)


def test_two_stage_training_writes_a_self_describing_checkpoint(mined, tmp_path):
    stages, steps = [], []
    from beauty_app.training.trainer import TrainingEvents

    events = TrainingEvents(on_step=steps.append, on_stage=lambda s, _: stages.append(s))
    result = train(_config(mined, tmp_path / "m.pt"), events=events)
    assert stages == [1, 2]
    assert [s.stage for s in steps] == [1] * 4 + [2] * 6
    stage2 = [s for s in steps if s.stage == 2]
    assert stage2[0].lr == pytest.approx(0.01) and stage2[-1].lr == pytest.approx(1e-5)
    assert all(s.loss_saliency is not None for s in steps) and all(s.loss_text is not None for s in stage2)
    payload = read_checkpoint(result.checkpoint)
    assert payload["class_names"] == mined.classes
    assert payload["mean"] == pytest.approx(list(mined.mean))
    assert 0.0 <= payload["metrics"]["val_accuracy"] <= 1.0
    # the open-set threshold is chosen on synthetic photos of the same validation images (queries are
    # photos), by the rule of models/open_set.py
    open_set = payload["metrics"]["open_set"]
    assert open_set["val_images"] == payload["metrics"]["val_images"] > 0
    assert 0.0 < open_set["threshold"] <= 1.0 and open_set["keep"] == 0.95 and "photos" in open_set["images"]
    assert payload["train_config"]["iterations"] == 6
    assert not resume_path_for(result.checkpoint).exists()
    bundle = load_model(str(result.checkpoint))
    assert bundle.has_saliency and bundle.has_text
    from beauty_app.models.open_set import rule_for

    assert rule_for(bundle.metadata).threshold == open_set["threshold"]


def test_interrupted_run_saves_state_and_resumes(mined, tmp_path):
    out = tmp_path / "m.pt"
    calls = {"n": 0}

    def stop_in_stage_two():
        calls["n"] += 1
        return calls["n"] > 7  # 4 stage-1 steps + 3 stage-2 steps, then "Ctrl-C"

    with pytest.raises(Interrupted) as info:
        train(_config(mined, out), should_stop=stop_in_stage_two)
    state = read_checkpoint(info.value.resume_path)
    assert state["extra"]["stage"] == 2 and state["extra"]["step"] == 3
    assert not out.exists()
    seen = []
    from beauty_app.training.trainer import TrainingEvents

    train(_config(mined, out), resume=True, events=TrainingEvents(on_step=seen.append))
    assert [(s.stage, s.iteration) for s in seen] == [(2, i) for i in range(4, 7)]
    assert out.exists() and not info.value.resume_path.exists()


@pytest.mark.parametrize("attention, external", [("none", False), ("text", False), ("saliency", True)])
def test_ablation_variants_train(mined, tmp_path, attention, external):
    result = train(_config(mined, tmp_path / "m.pt", attention=attention, external_saliency=external,
                           iterations=2, stage1_iterations=2))
    payload = read_checkpoint(result.checkpoint)
    assert payload["attention"] == list({"none": [], "text": ["text"], "saliency": ["saliency"]}[attention])
    assert payload["external_saliency"] is external


def test_attention_loss_counts_only_valid_targets():
    logits = torch.zeros(2, 1, 4, 4)
    target = torch.ones(2, 1, 16, 16)
    assert attention_loss(logits, target, torch.tensor([0.0, 0.0])) is None
    one = attention_loss(logits, target, torch.tensor([1.0, 0.0]))
    assert one.item() == pytest.approx(torch.nn.functional.softplus(torch.tensor(0.0)).item(), rel=1e-5)


def test_lr_decays_from_paper_start_to_end():
    config = TrainConfig()
    assert decayed_lr(config, 0, 500) == pytest.approx(0.01)
    assert decayed_lr(config, 499, 500) == pytest.approx(1e-5)
    assert decayed_lr(config, 250, 500) < 0.01


def test_mask_marks_file(tmp_path):
    marks = tmp_path / "marks.csv"
    marks.write_text("id,map,mark\nc1,saliency,wrong\nc2,text,good\nc3,TEXT,Wrong\n")
    assert read_mask_marks(marks) == {("c1", "saliency"), ("c3", "text")}


def test_cli_train_streams_json_lines(mined, tmp_path):
    out = tmp_path / "cli.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "beauty_app", "train", "--data", str(mined.root), "--backbone", "tiny", "--out", str(out),
         "--iterations", "3", "--stage1-iterations", "2", "--batch-size", "4", "--input-size", "64", "--workers", "0",
         "--device", "cpu", "--progress", "jsonl"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("step") == 5 and kinds[-1] == "done"
    step = next(e for e in events if e["event"] == "step")
    assert {"stage", "iteration", "loss", "loss_cls", "lr", "throughput", "eta_s"} <= set(step)
    assert json.loads(proc.stdout.splitlines()[-1])["checkpoint"] == str(out)


def test_torchrun_two_cpu_processes(mined, tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29731",
         "-m", "beauty_app", "train", "--data", str(mined.root), "--backbone", "tiny", "--out", str(out),
         "--iterations", "3", "--stage1-iterations", "2", "--batch-size", "4", "--input-size", "64", "--workers", "0",
         "--device", "cpu", "--progress", "jsonl"],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]
    done = [json.loads(line) for line in proc.stdout.splitlines() if '"done"' in line]
    assert len(done) == 1  # only rank 0 reports and writes
    assert read_checkpoint(out)["train_config"]["iterations"] == 3


def test_a_kill_early_in_stage_two_resumes_at_the_stage_switch(mined, tmp_path):
    """Before: the last state was saved mid stage 1, so a kill early in stage 2 redid the end of stage 1."""
    out = tmp_path / "m.pt"
    calls = {"n": 0}

    def killed_at_first_stage_two_step():
        calls["n"] += 1
        if calls["n"] == 5:  # 4 stage-1 steps, then the process dies: no handler gets to save
            raise SystemExit("killed")
        return False

    with pytest.raises(SystemExit):
        train(_config(mined, out, checkpoint_every=3), should_stop=killed_at_first_stage_two_step)
    state = read_checkpoint(resume_path_for(out))
    assert (state["extra"]["stage"], state["extra"]["step"]) == (2, 0)
    seen = []
    from beauty_app.training.trainer import TrainingEvents

    train(_config(mined, out, checkpoint_every=3), resume=True, events=TrainingEvents(on_step=seen.append))
    assert [(s.stage, s.iteration) for s in seen] == [(2, i) for i in range(1, 7)]


def test_resume_with_another_network_is_one_sentence(mined, tmp_path):

    out = tmp_path / "m.pt"
    with pytest.raises(Interrupted):
        train(_config(mined, out), should_stop=lambda: True)
    base = ["train", "--data", str(mined.root), "--out", str(out), "--resume", "--device", "cpu", "--workers", "0",
            "--progress", "none", "--input-size", "64", "--no-pretrained"]
    for extra, words in ((["--backbone", "vgg16", "--attention", "both"], "backbone tiny, not backbone vgg16"),
                         (["--backbone", "tiny", "--attention", "text"], "attention saliency+text, not attention text")):
        proc = subprocess.run([sys.executable, "-m", "beauty_app", *base, *extra], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# ---------------------------------------------------------------------------- instance objective
def test_instance_recipe_trains_the_retrieval_vector_on_pairs(mined, tmp_path):
    from beauty_app.training.config import RECIPES, config_for_recipe
    from beauty_app.training.trainer import TrainingEvents

    steps, messages = [], []
    values = _config(mined, tmp_path / "m.pt", iterations=3, stage1_iterations=2).__dict__
    # The recipe's objective; the test's short schedule (the recipe's own is 1000 iterations).
    config = config_for_recipe("instance", **{k: v for k, v in values.items()
                                              if (k not in RECIPES["instance"] or k == "iterations")
                                              and k not in ("recipe", "retrieval_attention")},
                               retrieval_attention="saliency")
    result = train(config, events=TrainingEvents(on_step=steps.append, on_message=messages.append))
    assert [s.loss_instance is None for s in steps] == [True, True, False, False, False]  # stage 2 only
    assert all(s.loss_instance > 0 for s in steps if s.stage == 2)
    assert any("global batch 4 images per step" in m and "2 (photo, catalog) pairs" in m for m in messages)
    checkpoint = read_checkpoint(result.checkpoint)
    saved = checkpoint["train_config"]
    assert saved["recipe"] == "instance" and saved["instance_weight"] == 1.0 and saved["category_weight"] == 1.0
    # The ablation reaches the network: its checkpoint rebuilds a model that pools without the text map.
    assert saved["retrieval_attention"] == "saliency" and checkpoint["retrieval_attention"] == "saliency"


def test_instance_loss_without_attention_and_with_memory_and_learned_temperature(mined, tmp_path):
    result = train(_config(mined, tmp_path / "m.pt", attention="none", iterations=3, instance_weight=1.0,
                           category_weight=0.0, instance_memory=8, learn_temperature=True))
    metrics = read_checkpoint(result.checkpoint)["metrics"]
    assert metrics["temperature"] != pytest.approx(0.05)  # it learned
    assert metrics["global_batch"] == 4


def test_recipes_and_flags_reach_the_config():
    import argparse

    from beauty_app.cli.train import config_from_args, register
    from beauty_app.training.config import config_for_recipe

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    default = config_from_args(parser.parse_args(["train", "--data", "d"]))
    assert (default.recipe, default.instance_weight, default.category_weight) == ("instance", 1.0, 1.0)
    paper = config_from_args(parser.parse_args(["train", "--data", "d", "--recipe", "paper"]))
    assert (paper.recipe, paper.instance_weight, paper.category_weight) == ("paper", 0.0, 1.0)
    assert TrainConfig().recipe == "paper" and TrainConfig().instance_weight == 0.0  # the bench's paper runs
    tuned = config_from_args(parser.parse_args(
        ["train", "--data", "d", "--recipe", "instance", "--category-weight", "0", "--instance-memory", "64",
         "--temperature", "0.1", "--learn-temperature", "--per-device-batch", "8", "--attention", "saliency",
         "--map-gradient", "0"]))
    assert (tuned.recipe, tuned.instance_weight, tuned.category_weight) == ("instance", 1.0, 0.0)
    assert (tuned.instance_memory, tuned.temperature, tuned.learn_temperature, tuned.per_device_batch) == (
        64, 0.1, True, 8)
    assert tuned.map_gradient == 0.0 and default.map_gradient == 1.0
    assert (default.retrieval_attention, paper.retrieval_attention) == ("all", "all")
    told = config_from_args(parser.parse_args(["train", "--data", "d", "--retrieval-attention", "saliency"]))
    assert told.retrieval_attention == "saliency" and told.attention_names == ("saliency", "text")
    with pytest.raises(ValueError, match="recipe"):
        config_for_recipe("fancy")


def test_same_training_reads_missing_settings_as_their_defaults():
    from dataclasses import asdict

    from beauty_app.training.config import same_training

    wanted = TrainConfig(iterations=7)
    recorded = asdict(wanted)
    assert same_training(recorded, wanted)
    older = {k: v for k, v in recorded.items() if k != "map_gradient"}  # written before the setting existed
    assert same_training(older, wanted)
    assert not same_training(older, TrainConfig(iterations=7, map_gradient=0.0))
    assert not same_training({**recorded, "iterations": 8}, wanted)
    assert not same_training(None, wanted)


def test_map_gradient_scales_what_the_map_losses_give_the_backbone():
    from beauty_app.models.manet import MANet, scale_gradient

    x = torch.ones(3, requires_grad=True)
    (scale_gradient(x, 0.25) * 2).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), 0.5))
    assert torch.equal(scale_gradient(x, 0.0), x.detach())

    torch.manual_seed(0)
    model = MANet("tiny", 3, attention="both")
    images = torch.randn(2, 3, 64, 64)

    def backbone_grad(share: float) -> float:
        model.zero_grad()
        model.map_gradient = share
        out = model(images)
        (out.saliency_logits.sum() + out.text_logits.sum()).backward()  # a map loss only
        return sum(float(p.grad.abs().sum()) for p in model.backbone.parameters() if p.grad is not None)

    assert backbone_grad(1.0) > 0
    assert backbone_grad(0.0) == 0.0  # the maps still learn, the backbone is left to the other losses
    assert all(p.grad is not None for p in model.saliency_branch.parameters())


def test_stage1_convergence_needs_patience_and_minimum_steps():
    from beauty_app.training.trainer import Stage1Convergence

    tracker = Stage1Convergence(patience=3, min_iterations=5)
    decisions = [tracker.update(1.0, done) for done in range(1, 8)]
    # flat loss: no improvement after the first step; patience reached at step 4, minimum at step 5
    assert decisions == [False, False, False, False, True, True, True]
    improving = Stage1Convergence(patience=3, min_iterations=1)
    assert not any(improving.update(0.5 ** done, done) for done in range(1, 20))
    copy = Stage1Convergence(patience=3, min_iterations=1)
    copy.restore(tracker.state())
    assert copy.update(1.0, 8)


def test_batch_size_per_process_and_sync_batchnorm_only_on_accelerators():
    from beauty_app.models.manet import MANet
    from beauty_app.training.distributed import per_process_batch, use_sync_batchnorm

    assert per_process_batch(TrainConfig(batch_size=16), 8) == 2
    assert per_process_batch(TrainConfig(batch_size=16, per_device_batch=12), 8) == 12
    assert use_sync_batchnorm(torch.device("cuda", 0), 2) and not use_sync_batchnorm(torch.device("cuda", 0), 1)
    assert not use_sync_batchnorm(torch.device("cpu"), 2)  # PyTorch's SyncBatchNorm has no CPU kernel
    model = MANet("tiny", 3)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(MANet("tiny", 3))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    assert list(synced.state_dict()) == list(model.state_dict())  # checkpoints load into a plain MANet


def _torchrun(mined, out, *extra, port):
    """Two CPU processes under torchrun; on a hang the whole process group is killed (workers too)."""
    import signal

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
         "-m", "beauty_app", "train", "--data", str(mined.root), "--backbone", "tiny", "--out", str(out),
         "--input-size", "64", "--workers", "0", "--device", "cpu", "--progress", "jsonl", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
        cwd=Path(__file__).resolve().parents[2])
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("torchrun did not finish: the processes are stuck in mismatched collectives")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


# Stage 1 may end at most here; the patience of 2 steps ends it long before on the tiny model.
_CONVERGING = ("--stage1-iterations", "40", "--stage1-patience", "2", "--stage1-min-iterations", "3")


def _converged_at(stdout: str) -> int:
    events = [json.loads(line) for line in stdout.splitlines()]
    texts = [e["text"] for e in events if e["event"] == "message" and "converged after" in e["text"]]
    assert len(texts) == 1, texts
    stage1 = [e["iteration"] for e in events if e["event"] == "step" and e["stage"] == 1]
    assert stage1[-1] == int(texts[0].split("after ")[1].split()[0]) < 40
    return stage1[-1]


def test_torchrun_processes_leave_stage_one_together(mined, tmp_path):
    out = tmp_path / "ddp.pt"
    proc = _torchrun(mined, out, "--iterations", "2", "--per-device-batch", "4", "--recipe", "instance",
                     *_CONVERGING, port=29733)
    # A process that left stage 1 alone would wait forever in a collective (the run times out).
    assert proc.returncode == 0, proc.stderr[-2000:]
    _converged_at(proc.stdout)
    assert "global batch 8 images per step (2 process(es) x 4), 4 (photo, catalog) pairs" in proc.stdout
    metrics = read_checkpoint(out)["metrics"]
    assert (metrics["global_batch"], metrics["processes"]) == (8, 2)


def test_torchrun_resumes_an_interrupted_run_through_convergence(mined, tmp_path):
    out = tmp_path / "ddp.pt"
    calls = {"n": 0}

    def stop_early():
        calls["n"] += 1
        return calls["n"] > 2  # two stage-1 steps, then "Ctrl-C"

    with pytest.raises(Interrupted) as info:
        train(_config(mined, out, stage1_iterations=40, stage1_patience=2, stage1_min_iterations=3, batch_size=4),
              should_stop=stop_early)
    assert read_checkpoint(info.value.resume_path)["extra"]["stage"] == 1
    proc = _torchrun(mined, out, "--iterations", "2", "--batch-size", "4", "--resume", *_CONVERGING, port=29735)
    assert proc.returncode == 0, proc.stderr[-2000:]
    steps = [json.loads(line) for line in proc.stdout.splitlines() if '"step"' in line]
    assert (steps[0]["stage"], steps[0]["iteration"]) == (1, 3)  # continued where the state was saved
    assert _converged_at(proc.stdout) >= 3
    assert out.exists() and not info.value.resume_path.exists()


def test_the_open_set_threshold_comes_from_photos_and_an_old_checkpoint_can_be_recalibrated(mined, tmp_path):
    from beauty_app.cli.main import main
    from beauty_app.models.checkpoint import save_checkpoint
    from beauty_app.training.trainer import open_set_on_photos, recalibrate_open_set

    result = train(_config(mined, tmp_path / "m.safetensors"))
    payload = read_checkpoint(result.checkpoint)
    bundle = load_model(str(result.checkpoint))
    config = _config(mined, tmp_path / "m.safetensors")
    mask_dir = Path(mined.root) / "masks"
    again = open_set_on_photos(bundle.model, mined.val, mask_dir, config, mined.mean, mined.std, torch.device("cpu"))
    assert again == payload["metrics"]["open_set"]  # seeded: the same photos, the same record
    # A checkpoint written with a plain-view record gets the photo record, and nothing else changes.
    old = save_checkpoint(tmp_path / "old.safetensors", bundle.model, class_names=payload["class_names"],
                          input_size=64, mean=mined.mean, std=mined.std, train_config=payload["train_config"],
                          metrics={"val_accuracy": 0.5, "open_set": {"threshold": 0.999, "val_images": 3}})
    assert main(["train", "--recalibrate-open-set", "--data", str(mined.root), "--out", str(old), "-q"]) == 0
    rewritten = read_checkpoint(old)
    assert rewritten["metrics"]["open_set"] == again and rewritten["metrics"]["val_accuracy"] == 0.5
    assert all(torch.equal(rewritten["state_dict"][k], v) for k, v in payload["state_dict"].items())
    assert recalibrate_open_set(old, mined.root) == again
