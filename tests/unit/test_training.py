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
from beauty_app.training.mining import mine_dataset
from beauty_app.training.trainer import Interrupted, attention_loss, decayed_lr, read_mask_marks, resume_path_for, train


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
    assert payload["train_config"]["iterations"] == 6
    assert not resume_path_for(result.checkpoint).exists()
    bundle = load_model(str(result.checkpoint))
    assert bundle.has_saliency and bundle.has_text


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
    from beauty_app.cli import main

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
