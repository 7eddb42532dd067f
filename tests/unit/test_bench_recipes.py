"""The recipes bench at tiny scale: its tables' structure, and numbers that come from its own runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from beauty_app.evaluation.bench import RecipeSettings, run_recipes_bench, write_report
from beauty_app.evaluation.bench.recipes import COMPARISONS, ROWS, paired_difference


@pytest.fixture(scope="module")
def recipes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipes")
    # fp32: bf16 autocast of tiny convolutions is slow on CPUs without AMX.
    settings = RecipeSettings(products=20, eval_products=6, iterations=2, stage1_iterations=2, batch_size=4,
                              input_size=64, backbone="tiny", image_size=64, min_images=2, workers=0,
                              device="cpu", amp=False)
    return out, settings, run_recipes_bench(out, settings, command="beauty-app bench recipes")


def _column(table, name):
    return [row[table.columns.index(name)] for row in table.rows]


def test_recipes_table_has_one_row_per_model_and_pooling(recipes_run):
    _, _, bench = recipes_run
    table, paired = bench.tables
    assert table.columns == ["model", "pooling", "input side (px)", "MAP@7", "± s.e.", "x paper recipe"]
    assert _column(table, "pooling") == ["GAP", "R-MAC", "GAP", "R-MAC", "GAP", "SR-MAC", "SR-MAC", "R-MAC"]
    # The instance recipe is used at 10/7 of its training side (64 -> 96 px), the paper recipe at its own;
    # the off-the-shelf backbone is scored at both.
    assert _column(table, "input side (px)") == [64, 64, 96, 96, 64, 64, 96, 96]
    models = _column(table, "model")
    assert models[0].startswith("off-the-shelf") and "paper recipe" in models[5] and "instance recipe" in models[6]
    assert all(0.0 <= v <= 1.0 for v in _column(table, "MAP@7"))
    assert all(v is not None and v >= 0 for v in _column(table, "± s.e."))
    paper_row = _column(table, "x paper recipe")[5]
    assert paper_row == pytest.approx(1.0) or _column(table, "MAP@7")[5] == 0
    assert len(paired.rows) == len(COMPARISONS)
    assert paired.columns[:3] == ["comparison", "MAP@7 difference", "± s.e."]
    assert any("Issue 18's targets" in note for note in paired.notes)


def test_trained_rows_come_from_checkpoints_of_their_recipe(recipes_run):
    from beauty_app.models.checkpoint import read_checkpoint

    _, _, bench = recipes_run
    rows = bench.results["rows"]
    expected = {"finetuned_gap": ("paper", "none"), "paper_srmac": ("paper", "both"),
                "instance_srmac": ("instance", "both"), "instance_none_rmac": ("instance", "none")}
    for key, (recipe, attention) in expected.items():
        config = read_checkpoint(rows[key]["spec"])["train_config"]
        # Each recipe on its default schedule: the instance recipe twice the paper's iterations.
        assert (config["recipe"], config["attention"], config["iterations"]) == (
            recipe, attention, 4 if recipe == "instance" else 2)
        assert (config["instance_weight"] > 0) == (recipe == "instance")
        assert config["query_size"] == (96 if recipe == "instance" else 0)


def test_map_equals_an_independent_evaluation_of_the_same_model(recipes_run, tmp_path):
    from beauty_app.catalog_io import read_catalog
    from beauty_app.evaluation.evaluate import evaluate
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.build import build_index
    from beauty_app.retrieval.extractor import FeatureExtractor
    from beauty_app.retrieval.search import SearchSession

    out, settings, bench = recipes_run
    eval_dir = next((out / "recipes-work").glob("eval-*"))
    table = bench.tables[0]
    for position, key in ((6, "instance_srmac"), (1, "offshelf_rmac"), (3, "offshelf_rmac_q")):
        entry = bench.results["rows"][key]
        bundle = load_model(entry["spec"], device="cpu")
        extractor = FeatureExtractor(bundle, entry["pooling"], batch_size=4, input_size=entry["input_size"],
                                     use_amp=False)
        build_index(read_catalog(eval_dir / "catalog.csv"), extractor, tmp_path / key)
        with SearchSession(tmp_path / key, bundle.spec, device="cpu", bundle=bundle, use_amp=False) as session:
            result = evaluate(session, eval_dir / "queries", eval_dir / "truth.csv", k=7)
        assert table.rows[position][3] == pytest.approx(result.result.value, abs=1e-9)
        assert entry["per_query"] == pytest.approx(result.result.per_query, abs=1e-9)


def test_paired_differences_are_the_mean_per_query_differences(recipes_run):
    _, _, bench = recipes_run
    rows = bench.results["rows"]
    first, second = rows["instance_srmac"]["per_query"], rows["paper_srmac"]["per_query"]
    diffs = np.array([first[q] - second[q] for q in first])
    assert bench.tables[1].rows[0][1] == pytest.approx(diffs.mean())
    assert bench.tables[1].rows[0][2] == pytest.approx(diffs.std(ddof=1) / np.sqrt(len(diffs)))


def test_paired_difference_of_known_values():
    diff = paired_difference({"a": 0.5, "b": 1.0, "c": 0.0}, {"a": 0.25, "b": 0.5, "c": 0.0, "d": 1.0})
    assert diff["queries"] == 3  # only the common queries
    assert diff["difference"] == pytest.approx(0.25)
    assert diff["se"] == pytest.approx(np.std([0.25, 0.5, 0.0], ddof=1) / np.sqrt(3))
    assert diff["ratio"] == pytest.approx(2.0)


def test_recipes_report_is_written_and_cli_parses_its_options(recipes_run):
    from beauty_app.cli.bench import _settings
    from beauty_app.cli.main import build_parser

    out, _, bench = recipes_run
    json_path, md_path = write_report(bench, out)
    data = json.loads(json_path.read_text())
    assert data["name"] == "recipes" and [t["title"] for t in data["tables"]] == [t.title for t in bench.tables]
    assert set(data["results"]["rows"]) == {row.key for row in ROWS}
    assert "beauty-app bench recipes" in md_path.read_text() and "| SR-MAC |" in md_path.read_text()

    args = build_parser().parse_args(["bench", "recipes", "--products", "30", "--iterations", "5", "--fp32",
                                      "--train-batch-size", "8", "--device", "cpu"])
    settings = _settings(args, "recipes")
    assert (settings.products, settings.iterations, settings.batch_size, settings.amp, settings.device) == \
        (30, 5, 8, False, "cpu")
    assert settings.input_size == RecipeSettings().input_size  # left out: the dataclass default
