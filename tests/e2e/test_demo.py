"""`beauty-app demo` with the shipped MANet checkpoint: headless and with the window (offscreen)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _run(args, tmp_path, timeout=300):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "beauty_app", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_headless_demo_finds_the_sample_product(tmp_path):
    proc = _run(["demo", "--headless", "--workdir", str(tmp_path / "demo"), "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("  predicted:") for line in lines)
    ranked = [line for line in lines if re.match(r"^ [* ]\d+\. ", line)]
    assert len(ranked) == 7
    assert any(line.startswith(" *") for line in ranked), "the sample's own product is among the top 7"


def test_demo_window_shows_a_real_search(tmp_path):
    shot = tmp_path / "demo.png"
    proc = _run(["demo", "--workdir", str(tmp_path / "demo"), "--screenshot", str(shot), "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "window showed the first search" in proc.stdout
    assert shot.stat().st_size > 50_000
