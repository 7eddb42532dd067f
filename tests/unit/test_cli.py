"""The command line: outputs, JSON, and one clear sentence with exit status 2 on user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from beauty_app.cli import main


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
