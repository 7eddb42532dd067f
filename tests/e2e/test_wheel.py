"""The wheel is a complete app: built from the project, installed into a fresh venv away from the source.

The venv sees the project's own site-packages through a ``.pth`` line (torch and friends are GBs and
need not be installed twice) but never the source tree: ``beauty_app`` must come from the venv, with
the shipped model, icons and desktop entry inside it, found through importlib.resources.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEP_TIMEOUT_S = 600

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _copy_source(target: Path) -> Path:
    """The project as a build sees it, without the venv, git data or earlier build outputs."""
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*cache",
                                    "tests", "docs", "bench_results")
    shutil.copytree(ROOT, target, ignore=ignore)
    return target


def _run(args: list, *, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=STEP_TIMEOUT_S)
    assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the wheel from a copy of the project and install it into a fresh venv; returns its parts."""
    work = tmp_path_factory.mktemp("wheel")
    source = _copy_source(work / "source")
    # No build isolation: the build uses this environment's setuptools instead of downloading one.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", work / "dist",
          source], cwd=work)
    wheel = next((work / "dist").glob("beauty_app-*.whl"))
    shutil.rmtree(source)  # nothing of the source tree is left to import from

    env_dir = work / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], cwd=work)
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=work).stdout.strip())
    dependencies = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "project_dependencies.pth").write_text("\n".join(sorted(dependencies)) + "\n")

    home = work / "home"
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith(("BEAUTYLENS_", "XDG_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / "cache"), XDG_DATA_HOME=str(home / "data"),
               XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"),
               QT_QPA_PLATFORM="offscreen", PYTHONNOUSERSITE="1")
    run_dir = work / "run"
    run_dir.mkdir()
    return {"wheel": wheel, "env_dir": env_dir, "python": python, "bin": python.parent, "env": env,
            "run_dir": run_dir}


def test_wheel_carries_the_model_the_icons_the_desktop_entry_and_the_scripts(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        names = set(wheel.namelist())
        entry_points = next(wheel.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for shipped in ("beauty_app/py.typed", "beauty_app/model_store/demo_manet.safetensors",
                    "beauty_app/resources/icons/beautylens.png", "beauty_app/resources/beautylens.desktop",
                    "beauty_app/training/default_keywords.txt"):
        assert shipped in names
    assert not any(n.endswith((".pt", ".pth")) for n in names)
    assert "beautylens = beauty_app.launcher:gui_main" in entry_points.split("[gui_scripts]")[1]


def test_installed_package_finds_its_files_inside_the_venv(installed):
    probe = ("import json, beauty_app, beauty_app.paths as p; print(json.dumps([beauty_app.__file__, "
             "str(p.demo_checkpoint()), str(p.resources_dir()), p.demo_checkpoint().is_file(), "
             "(p.resources_dir() / 'icons' / 'beautylens.png').is_file()]))")
    out = _run([installed["python"], "-c", probe], cwd=installed["run_dir"], env=installed["env"]).stdout
    package_file, checkpoint, resources, has_model, has_icon = json.loads(out)
    venv_dir = installed["env_dir"].resolve()
    for path in (package_file, checkpoint, resources):
        assert Path(path).resolve().is_relative_to(venv_dir), f"{path} is not inside the venv"
    assert not Path(package_file).resolve().is_relative_to(ROOT)
    assert has_model and has_icon


def test_beautylens_self_test_and_a_search_with_the_shipped_model(installed):
    bin_dir, env, run_dir = installed["bin"], installed["env"], installed["run_dir"]
    self_test = _run([bin_dir / "beautylens", "--self-test"], cwd=run_dir, env=env)
    assert "Self-test passed" in self_test.stdout
    assert str(installed["env_dir"]) in self_test.stdout  # the model and resources it reported

    cli = bin_dir / "beauty-app"
    model = _run([installed["python"], "-c", "from beauty_app.paths import demo_checkpoint; print(demo_checkpoint())"],
                 cwd=run_dir, env=env).stdout.strip()
    _run([cli, "demo", "generate", "--out", run_dir / "catalog", "--products", "6", "--size", "160", "-q"],
         cwd=run_dir, env=env)
    _run([cli, "catalog", "build", "--catalog", run_dir / "catalog" / "catalog.csv", "--model", model,
          "--pooling", "srmac", "--out", run_dir / "index", "-q"], cwd=run_dir, env=env)
    query = sorted((run_dir / "catalog" / "queries").iterdir())[0]
    found = _run([cli, "search", "--index", run_dir / "index", "-k", "3", "--json", "-q", query],
                 cwd=run_dir, env=env).stdout
    result = json.loads(found.strip().splitlines()[-1])
    assert len(result["results"]) == 3 and "error" not in result
    scores = [hit["score"] for hit in result["results"]]
    assert scores == sorted(scores, reverse=True)
