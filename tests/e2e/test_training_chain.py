"""Issue 3's chain at tiny scale, through the CLI: mine -> train MANet -> SR-MAC index -> evaluate."""

from __future__ import annotations

import json

import pytest

from beauty_app.cli import main
from beauty_app.models.checkpoint import read_checkpoint

pytestmark = pytest.mark.e2e


def test_mine_train_index_evaluate(tmp_path, capsys):
    data, mined, model, index = tmp_path / "demo", tmp_path / "mined", tmp_path / "manet.pt", tmp_path / "index"
    assert main(["demo", "generate", "--out", str(data), "--products", "30", "--seed", "21", "--size", "160", "-q"]) == 0
    capsys.readouterr()
    assert main(["dataset", "mine", "--catalog", str(data / "catalog.csv"), "--out", str(mined),
                 "--min-images", "2", "--json", "-q"]) == 0
    mined_summary = json.loads(capsys.readouterr().out)
    assert len(mined_summary["classes"]) >= 5
    assert main(["train", "--data", str(mined), "--backbone", "tiny", "--out", str(model), "--iterations", "6",
                 "--stage1-iterations", "3", "--batch-size", "4", "--input-size", "96", "--workers", "0",
                 "--device", "cpu", "--progress", "none"]) == 0
    payload = read_checkpoint(model)
    assert payload["class_names"] == mined_summary["classes"] and "val_accuracy" in payload["metrics"]
    assert main(["catalog", "build", "--catalog", str(data / "catalog.csv"), "--model", str(model),
                 "--pooling", "srmac", "--out", str(index), "-q"]) == 0
    capsys.readouterr()
    assert main(["eval", "--index", str(index), "--queries", str(data / "queries"), "--truth",
                 str(data / "truth.csv"), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["queries"] > 0 and 0.0 <= report["map"] <= 1.0
