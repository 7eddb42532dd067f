"""`beauty-app gui --index --query --screenshot` renders a real search and quits, at 100% and 200% scaling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scale", ["1", "2"])
def test_window_screenshot_after_a_real_search(tmp_path, built_index, demo_data, scale):
    shot = tmp_path / f"window-{scale}.png"
    query = sorted(demo_data.queries_dir.iterdir())[0]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": scale,
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "beauty_app", "gui", "--index", str(built_index), "--query", str(query),
                           "--screenshot", str(shot), "--device", "cpu"],
                          capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "window showed the first search" in proc.stdout
    with Image.open(shot) as image:
        assert image.width >= 600 * int(scale) * 0.9  # rendered at the device pixel ratio


def test_screenshot_needs_a_query(tmp_path, built_index):
    proc = subprocess.run([sys.executable, "-m", "beauty_app", "gui", "--index", str(built_index),
                           "--screenshot", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, cwd=ROOT)
    assert proc.returncode == 2 and "--query" in proc.stderr
