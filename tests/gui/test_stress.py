"""Issue 19: the Training and Catalog tabs' job cycles, repeated with busy CPUs, never crash the app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CYCLES = int(os.environ.get("BEAUTYLENS_STRESS_CYCLES", "4"))


@pytest.mark.slow
def test_job_cycles_survive_busy_cpus(tmp_path):
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen",
                   XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"))
        # -X faulthandler: a crash prints every thread's Python stack into the output asserted on below
        run = subprocess.run([sys.executable, "-X", "faulthandler", str(ROOT / "tests" / "gui" / "stress_cycles.py"),
                              str(tmp_path / "work"), str(CYCLES)], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=3600)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    output = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, f"exit status {run.returncode}:\n{output}"
    assert f"cycle {CYCLES}/{CYCLES} done" in run.stdout, output
