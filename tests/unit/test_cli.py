"""The command line: outputs, JSON, and one clear sentence with exit status 2 on user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from beauty_app.cli import main, parse_args


def run_cli(*args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_search_json_gives_one_object_per_query(built_index, demo_data, capsys):
    queries = sorted(demo_data.queries_dir.iterdir())[:2]
    code, out, _ = run_cli("search", "--index", built_index, *queries, "-k", 5, "--json", capsys=capsys)
    assert code == 0
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert len(lines) == 2
    assert [len(obj["results"]) for obj in lines] == [5, 5]
    assert {"rank", "id", "score", "path", "description"} <= set(lines[0]["results"][0])
    assert len(lines[0]["predicted"]) == 3


def test_eval_writes_a_submission_that_score_reproduces(built_index, demo_data, tmp_path, capsys):
    ranking = tmp_path / "ranking.csv"
    code, out, _ = run_cli("eval", "--index", built_index, "--queries", demo_data.queries_dir, "--truth",
                           demo_data.truth_csv, "--ranking-out", ranking, "--json", "-q", capsys=capsys)
    assert code == 0
    report = json.loads(out)
    rows = ranking.read_text().strip().splitlines()
    assert len(rows) == report["queries"] and all(len(row.split(",")) == 8 for row in rows)
    code, out, _ = run_cli("score", "--truth", demo_data.truth_csv, "--ranking", ranking, "--json", capsys=capsys)
    assert code == 0
    assert json.loads(out)["map"] == pytest.approx(report["map"], abs=1e-6)


def test_catalog_info_reports_model_and_pooling(built_index, capsys):
    code, out, _ = run_cli("catalog", "info", "--index", built_index, "--json", capsys=capsys)
    info = json.loads(out)
    assert code == 0 and info["pooling"] == "srmac" and info["count"] > 0 and info["complete"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["search", "--index", "{missing}", "{query}"], "not a BeautyLens index"),
        (["search", "--index", "{index}", "{bad_image}"], "bad.jpg"),
        (["search", "--index", "{index}", "{missing_image}"], "nope.jpg"),
        (["score", "--truth", "{missing}", "--ranking", "{missing}"], "missing"),
        (["catalog", "build", "--catalog", "{missing}", "--model", "{model}", "--out", "{out}"], "missing"),
        (["catalog", "build", "--catalog", "{catalog}", "--model", "{missing}", "--out", "{out}"], "does not exist"),
    ],
)
def test_user_errors_exit_2_with_one_sentence(args, fragment, built_index, demo_data, tiny_checkpoint, tmp_path,
                                              capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_text("this is text, not a JPEG")
    values = {"missing": tmp_path / "missing", "query": next(demo_data.queries_dir.iterdir()),
              "index": built_index, "bad_image": bad, "missing_image": tmp_path / "nope.jpg",
              "out": tmp_path / "out", "catalog": demo_data.catalog_csv, "model": tiny_checkpoint}
    code, _, err = run_cli(*[a.format(**values) for a in args], capsys=capsys)
    assert code == 2
    assert err.startswith("beauty-app: error: ") and fragment in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "beauty_app", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "beauty-app" in proc.stdout


#: What answering --help or --version must not load: each costs seconds or pulls in a GUI toolkit.
HEAVY_MODULES = ("torch", "faiss", "cv2", "PySide6", "sklearn", "pyqtgraph", "timm", "torchvision")

# Runs the command line in a fresh interpreter and prints which heavy modules it imported.
_IMPORT_PROBE = """
import json, sys
from beauty_app.cli import main, parse_args
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = {heavy!r}
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in heavy)), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["catalog", "build", "--help"], ["bench", "all", "--help"],
                                  ["train", "--help"], ["dataset", "mine", "--help"]])
def test_help_and_version_import_no_heavy_module(argv):
    proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE.format(heavy=HEAVY_MODULES), *argv],
                          capture_output=True, text=True, timeout=120)
    assert "usage: beauty-app" in proc.stdout or "beauty-app 0." in proc.stdout, proc.stderr
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []


def test_the_probe_sees_heavy_imports_of_a_real_command(tmp_path):
    """The probe above is not blind: a command that uses torch shows up in its report."""
    proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE.format(heavy=HEAVY_MODULES), "catalog", "info",
                           "--index", str(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
    assert "faiss" in json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ["-q", "-v", "score", "--truth", "t.csv", "--ranking", "r.csv"],
    ["score", "-q", "--truth", "t.csv", "-v", "--ranking", "r.csv"],
    ["-v", "catalog", "-q", "info", "--index", "x"],
    ["catalog", "info", "--index", "x", "-qv"],
    ["-q", "bench", "ann", "-v"],
    ["train", "--data", "d", "-q", "-v"],
])
def test_verbose_and_quiet_are_accepted_before_and_after_the_command(argv):
    args = parse_args(argv)
    assert args.quiet is True and args.verbose is True


def test_verbose_and_quiet_are_off_unless_given():
    args = parse_args(["catalog", "info", "--index", "x"])
    assert args.quiet is False and args.verbose is False


def test_bench_options_left_out_take_the_settings_defaults():
    from beauty_app.cli import build_parser
    from beauty_app.cli.bench import _settings
    from beauty_app.evaluation.bench import AccuracySettings, AnnSettings, SpeedSettings
    from beauty_app.evaluation.bench import BuildSettings

    args = build_parser().parse_args(["bench", "all"])
    assert [_settings(args, name) for name in args.benches] == [AccuracySettings(), SpeedSettings(), AnnSettings()]
    assert _settings(build_parser().parse_args(["bench", "build"]), "build") == BuildSettings()


def test_core_imports_nothing_of_the_command_line():
    """`beauty_app.cli` is loaded by nothing but the entry points (also held by import-linter in CI)."""
    proc = subprocess.run([sys.executable, "-c", "import sys, beauty_app.retrieval.session, beauty_app.demo.runner, "
                           "beauty_app.selftest, beauty_app.evaluation.bench.scale, beauty_app.training.trainer; "
                           "print(sorted(m for m in sys.modules if m.startswith('beauty_app.cli')))"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
