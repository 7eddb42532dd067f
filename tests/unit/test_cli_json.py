"""Every command that reports prints one JSON object on stdout, and nothing else, with --json."""

from __future__ import annotations

import json
import shutil

import pytest

from beauty_app.cli import main


def run_json(capsys, *args) -> dict:
    """Run the command line with --json and parse the whole of stdout as one JSON object."""
    code = main([str(a) for a in args] + ["--json", "-q"])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


@pytest.fixture
def index_copy(built_index, tmp_path):
    """A copy of the shared index that a test may change."""
    return shutil.copytree(built_index, tmp_path / "idx")


def test_catalog_add_remove_verify_print_json(index_copy, demo_data, capsys):
    added = run_json(capsys, "catalog", "add", "--index", index_copy, "--catalog", demo_data.catalog_csv,
                     "--device", "cpu")
    assert added["indexed"] == 0 and added["already_done"] > 0 and added["index"]["count"] == added["already_done"]
    first_id = demo_data.catalog_csv.read_text().splitlines()[1].split(",")[0]
    removed = run_json(capsys, "catalog", "remove", "--index", index_copy, first_id, "no-such-id")
    assert removed == {"index": str(index_copy), "removed": 1, "asked": 2}
    verified = run_json(capsys, "catalog", "verify", "--index", index_copy)
    assert verified["intact"] is True and verified["rows"] == added["index"]["count"] - 1


def test_demo_generate_dataset_and_train_print_json(tmp_path, capsys):
    generated = run_json(capsys, "demo", "generate", "--out", tmp_path / "demo", "--products", 12, "--size", 96)
    assert generated["products"] == 12 and generated["catalog_images"] > 0
    mined = run_json(capsys, "dataset", "mine", "--catalog", generated["catalog_csv"], "--out", tmp_path / "mined",
                     "--keywords", "default", "--min-images", 2, "--workers", 1)
    masks = run_json(capsys, "dataset", "masks", "--data", mined["out"], "--workers", 1)
    assert masks["images"] == mined["train"] + mined["val"] and sum(masks["statuses"].values()) == masks["images"]
    trained = run_json(capsys, "train", "--data", mined["out"], "--backbone", "tiny", "--out", tmp_path / "m.pt",
                       "--iterations", 2, "--stage1-iterations", 1, "--batch-size", 4, "--input-size", 64,
                       "--workers", 0, "--device", "cpu", "--progress", "none")
    assert trained["checkpoint"] == str(tmp_path / "m.pt") and trained["backbone"] == "tiny"


def test_train_refuses_json_with_jsonl_progress(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt"), "--json", "--progress", "jsonl"])
    assert code == 2 and "choose one" in capsys.readouterr().err


def test_bench_prints_its_report_as_json(tmp_path, capsys):
    report = run_json(capsys, "bench", "ann", "--sizes", 200, "--dim", 8, "--queries", 10, "--latency-queries", 3,
                      "--types", "flat", "--threads", 1, "--out", tmp_path)
    ann = report["benches"]["ann"]
    assert ann["settings"]["sizes"] == [200] and (tmp_path / "ann.json").is_file()
    assert ann["files"]["json"] == str(tmp_path / "ann.json")


def test_bench_startup_reports_median_p90_and_load(capsys):
    result = run_json(capsys, "bench", "startup", "--runs", 1)
    assert [row["command"] for row in result["commands"]] == ["python -m beauty_app --version",
                                                              "python -m beauty_app --help"]
    for row in result["commands"]:
        assert row["runs"] == 1 and len(row["times_ms"]) == 1
        assert row["median_ms"] == row["p90_ms"] == row["times_ms"][0] > 0
    assert "load_average_before" in result and "load_average_after" in result
    code = main(["bench", "startup", "--runs", "1"])
    table = capsys.readouterr().out
    assert code == 0 and "| `python -m beauty_app --help` | 1 |" in table and "Load average" in table
