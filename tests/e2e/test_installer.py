"""The installer: `installer/build.sh` builds the Linux bundle, and the bundle works on its own.

The build (a clean venv with CPU torch, PyInstaller, checks, archive) takes minutes and several GB,
so it is marked slow: `make test-all` runs it, `make test` and CI do not. Set BEAUTYLENS_BUILD_DIR
to build there and keep the result (a later run then reuses its venv).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "installer"
NEED_BYTES = 7 * 1024**3
BUILD_TIMEOUT_S = 3600


def _load_launcher():
    spec = importlib.util.spec_from_file_location("beautylens_launcher", INSTALLER / "launcher.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("executable, argv, expected", [
    ("/opt/BeautyLens/beautylens", [], ["gui"]),
    ("/opt/BeautyLens/beautylens", ["photo.jpg"], ["gui", "photo.jpg"]),
    ("/opt/BeautyLens/beautylens", ["--index", "idx"], ["gui", "--index", "idx"]),
    ("/opt/BeautyLens/beautylens", ["--self-test"], ["--self-test"]),
    ("C:/BeautyLens/beautylens.exe", ["--version"], ["--version"]),
    ("/opt/BeautyLens/beauty-app", ["search", "--index", "i", "q.jpg"], ["search", "--index", "i", "q.jpg"]),
    ("/opt/BeautyLens/beauty-app", [], []),
])
def test_the_executable_name_picks_window_or_command_line(executable, argv, expected):
    assert _load_launcher()._arguments(executable, argv) == expected


def _build_dir(tmp_path_factory) -> tuple[Path, list[str]]:
    kept = os.environ.get("BEAUTYLENS_BUILD_DIR")
    if kept:
        return Path(kept), ["--reuse-venv"]
    return tmp_path_factory.mktemp("installer"), []


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Run installer/build.sh once; returns its build-info.json (with the output folder)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("installer/build.sh builds the Linux bundle; other platforms are described in installer/README.md")
    if shutil.which("bash") is None:
        pytest.skip("installer/build.sh needs bash")
    out, extra = _build_dir(tmp_path_factory)
    out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out).free
    if free < NEED_BYTES:
        pytest.skip(f"the bundle build needs about {NEED_BYTES / 1024**3:.0f} GB of free disk, "
                    f"{out} has {free / 1024**3:.1f} GB")
    try:
        proc = subprocess.run(["bash", str(INSTALLER / "build.sh"), "--out", str(out), *extra],
                              capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"installer/build.sh took longer than {BUILD_TIMEOUT_S} s")
    if proc.returncode == 3:
        pytest.skip(f"not enough disk space for the build: {proc.stderr.strip()}")
    assert proc.returncode == 0, f"build.sh failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    info = json.loads((out / "build-info.json").read_text())
    info["out"] = out
    info["stdout"] = proc.stdout
    return info


@pytest.mark.slow
def test_build_script_builds_and_checks_the_bundle(built):
    assert built["self_test_ok"] is True and built["gui_ok"] is True
    bundle = Path(built["bundle"])
    for name in ("beautylens", "beauty-app"):
        assert os.access(bundle / name, os.X_OK), f"{name} is missing or not executable"
    internal = bundle / "_internal"
    assert (internal / "model_store" / "demo_manet.safetensors").is_file()
    assert (internal / "resources" / "icons" / "beautylens.png").is_file()
    assert (bundle / "beautylens.desktop").is_file() and (bundle / "install-desktop-entry.sh").is_file()
    # The CPU build of torch keeps the bundle small: no CUDA libraries in it.
    assert not list(internal.glob("nvidia")) and not list(internal.rglob("libcudart*"))
    assert built["bundle_bytes"] < 2.5 * 1024**3
    assert Path(built["tar"]).is_file() and 0 < built["tar_bytes"] < built["bundle_bytes"]
    assert "Self-test passed" in (built["out"] / "self-test.txt").read_text()


@pytest.mark.slow
def test_bundle_self_test_uses_the_user_folders_and_leaves_the_bundle_alone(built, tmp_path):
    bundle = Path(built["bundle"])
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "state")}
    for key in ("BEAUTYLENS_RESOURCES", "BEAUTYLENS_MODEL_STORE", "PYTHONPATH"):
        env.pop(key, None)
    before = sorted((str(p), p.lstat().st_size, p.lstat().st_mtime_ns) for p in bundle.rglob("*"))
    assert all(p.exists() for p in bundle.rglob("*")), "the bundle has dangling links"
    # Run from an unrelated folder: the bundle must find its files by itself, not via the checkout.
    proc = subprocess.run([str(bundle / "beauty-app"), "--self-test"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bundle:" in proc.stdout and "Self-test passed" in proc.stdout
    assert f"resources:   {bundle / '_internal' / 'resources'}" in proc.stdout
    assert str(tmp_path / "cache" / "BeautyLens") in proc.stdout
    assert len(re.findall(r"^\s+[ *]\d\. \d\.\d{4}  c\d{6}", proc.stdout, flags=re.MULTILINE)) == 5
    assert sorted((str(p), p.lstat().st_size, p.lstat().st_mtime_ns) for p in bundle.rglob("*")) == before
    version = subprocess.run([str(bundle / "beauty-app"), "--version"], capture_output=True, text=True, env=env,
                             timeout=120)
    assert version.returncode == 0 and re.search(r"beauty-app \d+\.\d+", version.stdout)
