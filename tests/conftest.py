"""Shared fixtures: a tiny MANet checkpoint, a small synthetic catalog and an index built from them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PAPER_MEAN = (0.8276, 0.8057, 0.7937)
PAPER_STD = (0.2334, 0.2479, 0.2563)


@pytest.fixture(autouse=True)
def _isolate_user_dirs(tmp_path_factory, monkeypatch):
    """Tests never touch the user's real settings, caches or logs."""
    home = tmp_path_factory.getbasetemp() / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))


@pytest.fixture(autouse=True)
def _no_dangling_threads():
    """A test that leaves a non-daemon thread running fails (it would hang the app on quit)."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    for thread in leftover:
        thread.join(timeout=5)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"threads left running: {still}"


def make_tiny_checkpoint(path: Path, classes=("lipstick", "perfume", "razor"), attention="both",
                         input_size: int = 96, seed: int = 0) -> Path:
    import torch

    from beauty_app.models.checkpoint import save_checkpoint
    from beauty_app.models.manet import MANet

    torch.manual_seed(seed)
    model = MANet("tiny", num_classes=len(classes), attention=attention)
    return save_checkpoint(path, model, class_names=list(classes), input_size=input_size,
                           mean=PAPER_MEAN, std=PAPER_STD, train_config={"note": "random tiny test model"})


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny.safetensors")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    from beauty_app.demo.products import generate_demo

    return generate_demo(tmp_path_factory.mktemp("demo"), n_products=16, seed=3, image_size=160)


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, tiny_checkpoint, demo_data) -> Path:
    from beauty_app.catalog_io import read_catalog
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.build import build_index
    from beauty_app.retrieval.extractor import FeatureExtractor

    out = tmp_path_factory.mktemp("index") / "idx"
    extractor = FeatureExtractor(load_model(str(tiny_checkpoint)), "srmac", batch_size=8)
    build_index(read_catalog(demo_data.catalog_csv), extractor, out)
    return out
