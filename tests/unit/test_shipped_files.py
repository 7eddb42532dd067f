"""Where shipped files are found: bundle, installed package, checkout; and the `beautylens` arguments."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from beauty_app import paths
from beauty_app.launcher import gui_arguments

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_overrides(monkeypatch):
    monkeypatch.delenv("BEAUTYLENS_RESOURCES", raising=False)
    monkeypatch.delenv("BEAUTYLENS_MODEL_STORE", raising=False)
    monkeypatch.delattr(sys, "_MEIPASS", raising=False)


def test_checkout_finds_the_top_level_folders(no_overrides):
    assert paths.resources_dir() == ROOT / "resources"
    assert paths.model_store_dir() == ROOT / "model_store"
    assert paths.demo_checkpoint() == ROOT / "model_store" / "demo_manet.safetensors"
    assert paths.demo_checkpoint().is_file() and (paths.resources_dir() / "icons" / "beautylens.png").is_file()


def test_installed_package_folders_come_first(no_overrides, monkeypatch, tmp_path):
    package = tmp_path / "beauty_app"
    (package / "model_store").mkdir(parents=True)
    (package / "resources").mkdir()
    monkeypatch.setattr(paths, "files", lambda name: package)
    assert paths.model_store_dir() == package / "model_store"
    assert paths.resources_dir() == package / "resources"


def test_bundle_and_environment_overrides(no_overrides, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert paths.resources_dir() == tmp_path / "resources"
    assert paths.demo_checkpoint() == tmp_path / "model_store" / "demo_manet.safetensors"
    monkeypatch.setenv("BEAUTYLENS_MODEL_STORE", str(tmp_path / "models"))
    assert paths.model_store_dir() == tmp_path / "models"


def test_every_shipped_file_is_declared_as_package_data():
    """A file added to resources/ or model_store/ must also be listed, or the wheel goes without it."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    packages = {"beauty_app.resources": "resources", "beauty_app.resources.icons": "resources/icons",
                "beauty_app.model_store": "model_store"}
    folders = {ROOT / folder for folder in packages.values()}
    assert {p for top in ("resources", "model_store") for p in [ROOT / top, *(ROOT / top).rglob("*")]
            if p.is_dir() and p.name != "__pycache__"} == folders, "a new data folder needs its package in setup.py"
    for package, folder in packages.items():
        shipped = {p for p in (ROOT / folder).iterdir() if p.is_file()}
        covered = {p for pattern in declared[package] for p in (ROOT / folder).glob(pattern)}
        assert shipped == covered, f"not in [tool.setuptools.package-data] {package}: {shipped - covered}"


@pytest.mark.parametrize("argv, expected", [
    ([], ["gui"]),
    (["photo.heic"], ["gui", "photo.heic"]),
    (["--model", "m.safetensors"], ["gui", "--model", "m.safetensors"]),
    (["--self-test"], ["--self-test"]),
    (["--version"], ["--version"]),
])
def test_beautylens_arguments(argv, expected):
    assert gui_arguments(argv) == expected
