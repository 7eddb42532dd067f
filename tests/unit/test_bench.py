"""The benchmark suite at tiny sizes: tables, ratios, recall, cached re-runs and written files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from beauty_app.errors import UserError
from beauty_app.evaluation.bench import (
    AccuracySettings,
    AnnSettings,
    SpeedSettings,
    parse_sizes,
    run_accuracy_bench,
    run_ann_bench,
    run_speed_bench,
    write_report,
)
from beauty_app.evaluation.bench.accuracy import VARIANTS, ordering_differences, ordering_notes
from beauty_app.evaluation.bench.data import synthetic_vectors
from beauty_app.evaluation.bench.report import format_cell


def _column(table, name):
    index = table.columns.index(name)
    return [row[index] for row in table.rows]


@pytest.fixture(scope="module")
def accuracy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # fp32: bf16 autocast of tiny convolutions is slow on CPUs without AMX.
    settings = AccuracySettings(products=20, eval_products=6, iterations=2, stage1_iterations=2, batch_size=4,
                                input_size=64, backbone="tiny", image_size=64, min_images=2, workers=0,
                                device="cpu", qe=1, amp=False)
    return out, settings, run_accuracy_bench(out, settings, command="beauty-app bench accuracy")


def test_accuracy_bench_fills_the_three_paper_tables(accuracy_run):
    out, _, bench = accuracy_run
    a1, a2, a3 = bench.tables
    assert [row[:2] for row in a1.rows][0] == ["tiny, no attention (fine-tuned)", "n/a"]
    assert len(a1.rows) == 7
    assert all(0.0 <= v <= 1.0 for v in _column(a1, "accuracy"))
    # The two text rows are one model.
    assert a1.rows[2][2] == a1.rows[5][2]

    assert _column(a2, "pooling") == ["GAP", "MAC", "SPoC", "R-MAC", "RA-MAC", "SR-MAC"]
    offshelf = _column(a2, "off-the-shelf tiny (untrained)")
    manet = _column(a2, "end-to-end MANet (tiny, fine-tuned)")
    assert offshelf[-1] is None, "SR-MAC needs a saliency map the off-the-shelf backbone does not have"
    assert all(0.0 <= v <= 1.0 for v in offshelf[:-1] + manet)

    assert len(a3.rows) == 6 and "query expansion" in a3.rows[-1][0]
    assert all(0.0 <= v <= 1.0 for v in _column(a3, "MAP@7"))
    # A3 reuses A2's numbers for the same model and pooling.
    assert a3.rows[0][1] == offshelf[0] and a3.rows[4][1] == manet[-1]
    assert any(note.startswith("Order here: ") for note in a1.notes)
    timings = bench.results["timings_s"]
    assert {"data", *(f"train {key}" for key, _, _ in VARIANTS)} <= set(timings)
    # Every index the tables read was built and scored once: A2's eleven (no off-the-shelf SR-MAC),
    # A3's fine-tuned GAP and its query-expansion run.
    scored = {k for k in timings if k != "data" and not k.startswith("train ")}
    assert len(scored) == 13 and {"offshelf-gap", "manet-srmac", "finetuned-gap", "manet-srmac-qe"} <= scored


def test_accuracy_bench_rerun_reuses_models_and_indexes(accuracy_run):
    out, settings, first = accuracy_run
    work = out / "accuracy-work"
    files = list((work / "models").glob("*.safetensors")) + list((work / "indexes").rglob("catalog.sqlite"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert len([p for p in stamps if p.suffix == ".safetensors"]) == 6 + 1  # six variants + the untrained stand-in
    assert len([p for p in stamps if p.suffix == ".sqlite"]) == 12  # 5 + 6 poolings (A2) + fine-tuned GAP (A3)
    again = run_accuracy_bench(out, settings)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again.tables[0].rows == first.tables[0].rows
    assert again.tables[1].rows == first.tables[1].rows


def test_reports_are_written_as_json_and_markdown(accuracy_run):
    out, _, bench = accuracy_run
    json_path, md_path = write_report(bench, out)
    data = json.loads(json_path.read_text())
    assert data["name"] == "accuracy" and len(data["tables"]) == 3
    assert data["machine"]["cpu_count"] >= 1 and "load_before" in data["machine"]
    assert data["tables"][0]["rows"][0]["accuracy"] == bench.tables[0].rows[0][2]
    text = md_path.read_text()
    assert "### Table A1" in text and "### Table A2" in text and "### Table A3" in text
    assert "beauty-app bench accuracy" in text and "| SR-MAC |" in text


def test_speed_bench_reports_ratios_and_percentiles(tmp_path):
    from tests.conftest import make_tiny_checkpoint

    model = make_tiny_checkpoint(tmp_path / "tiny.pt")
    bench = run_speed_bench(tmp_path, SpeedSettings(catalog_size=10, queries=6, device="cpu", model=str(model),
                                                    batch_size=4, warmup=1))
    main = bench.tables[0]
    rows = {row[0]: row for row in main.rows}
    assert set(rows) == {"catalog indexing (images/s)", "query latency p50 (ms)", "query latency p95 (ms)"}
    assert all(row[1] > 0 and row[2] > 0 and row[3] > 0 for row in main.rows)
    # The table shows the measured percentiles, ours then naive; the latency speed-up is naive / ours.
    for what in ("p50", "p95"):
        row = rows[f"query latency {what} (ms)"]
        assert row[1:3] == [bench.results["query_latency_ms"][side][what] for side in ("ours", "naive")]
        assert row[3] == pytest.approx(row[2] / row[1])
    indexing = rows["catalog indexing (images/s)"]
    assert indexing[1:3] == [bench.results["indexing_images_per_s"][side] for side in ("ours", "naive")]
    assert indexing[3] == pytest.approx(indexing[1] / indexing[2])  # rates: ours / naive
    assert bench.results["catalog_images"] == 10 and bench.results["queries"] == 6
    assert bench.results["vector_agreement_cosine"] > 0.99  # both paths compute the same vectors
    stages = {row[0]: row for row in bench.tables[1].rows}
    assert list(stages) == ["decode", "analyze", "search", "total"]
    assert all(row[1] > 0 and row[2] > 0 for row in stages.values())  # every stage was timed
    runtimes = {row[0]: row for row in bench.tables[2].rows}
    assert {"naive: torch fp32, batch 1", "torch fp32"} <= set(runtimes)
    assert runtimes["naive: torch fp32, batch 1"][2] == pytest.approx(1.0)  # the speed-up column's reference
    assert all(row[3] >= 0.99 for row in runtimes.values() if row[3] is not None)
    assert bench.results["runtime"] == "torch"  # 10 images: a job this small stays on eager torch
    json_path, md_path = write_report(bench, tmp_path)
    assert json.loads(json_path.read_text())["results"]["indexing_images_per_s"]["ours"] > 0
    assert "query latency p95" in md_path.read_text()


def test_ann_bench_recall_and_memory(tmp_path):
    partial = []
    bench = run_ann_bench(tmp_path, AnnSettings(sizes=(2000,), dim=32, queries=100, latency_queries=20, threads=1),
                          partial=partial.append)
    # A report after every index, so a long run that is stopped keeps its finished rows.
    assert [len(p.tables[0].rows) for p in partial] == [1, 2, 3, 4]
    assert partial[-1].tables[0].rows == bench.tables[0].rows
    (table,) = bench.tables
    recall = dict(zip(_column(table, "index"), _column(table, "recall@7")))
    assert set(recall) == {"flat", "ivf", "hnsw", "pq"}
    assert recall["flat"] == 1.0
    assert all(recall[t] > 0.5 for t in ("ivf", "hnsw", "pq"))
    memory = dict(zip(_column(table, "index"), _column(table, "bytes/vector")))
    assert memory["pq"] < memory["flat"] <= memory["hnsw"]  # PQ compresses, HNSW adds a graph
    p50 = _column(table, "p50 (ms)")
    assert all(a > 0 for a in p50) and all(b > 0 for b in _column(table, "p95 (ms)"))
    # Speed-ups are against the flat index's median latency.
    assert _column(table, "speed-up vs flat (p50)") == pytest.approx([p50[0] / a for a in p50])
    assert _column(table, "faiss class")[2] == "IndexHNSWFlat"
    write_report(bench, tmp_path)
    assert (tmp_path / "ann.json").is_file() and "recall@7" in (tmp_path / "ann.md").read_text()


def test_ann_bench_refuses_unknown_types(tmp_path):
    with pytest.raises(UserError):
        run_ann_bench(tmp_path, AnnSettings(sizes=(100,), dim=8, types=("flat", "lsh")))


def test_cli_bench_ann_prints_and_writes(tmp_path, capsys):
    from beauty_app.cli import main

    code = main(["bench", "ann", "--sizes", "300", "--dim", "16", "--queries", "20", "--latency-queries", "5",
                 "--types", "flat,hnsw", "--threads", "1", "--out", str(tmp_path), "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| hnsw |" in out and "300 vectors of 16 dimensions" in out
    data = json.loads((tmp_path / "ann.json").read_text())
    assert data["command"].startswith("beauty-app") and data["settings"]["sizes"] == [300]


def test_ordering_differences_lists_reversed_pairs_and_ties():
    paper = {"a": 0.3, "b": 0.2, "c": 0.1}
    labels = {"a": "A", "b": "B", "c": "C"}
    assert ordering_differences({"a": 0.9, "b": 0.5, "c": 0.1}, paper) == []
    assert ordering_notes({"a": 0.9, "b": 0.5, "c": 0.1}, paper, labels)[1] == "Every pair is ordered as in the paper."
    assert ordering_differences({"a": 0.4, "b": 0.6, "c": 0.4}, paper) == [("a", "b", False), ("a", "c", True)]
    notes = ordering_notes({"a": 0.4, "b": 0.6, "c": 0.4}, paper, labels, prefix="X: ")
    assert notes[0] == "X: Order here: B 0.600 > A 0.400 > C 0.400. Paper: A 0.300 > B 0.200 > C 0.100."
    assert notes[1] == "X: 2 of 3 pairs differ from the paper's order; reversed here: B > A; tied here: A = C."
    # Rows without a number (n/a) are not compared.
    assert ordering_differences({"a": None, "b": 0.1, "c": 0.2}, paper) == [("b", "c", False)]


def test_synthetic_vectors_are_unit_length_clustered_and_reproducible():
    x = synthetic_vectors(500, 48, seed=1)
    assert x.shape == (500, 48) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(x, synthetic_vectors(500, 48, seed=1))
    queries = synthetic_vectors(50, 48, seed=1, stream=1)
    assert not np.array_equal(queries, x[:50])
    # Clustered: a query's best match is far closer than a typical catalog vector.
    scores = queries @ x.T
    assert float(np.median(scores.max(axis=1))) > float(np.median(scores)) + 0.3


def test_cells_and_sizes_parse_and_format():
    assert parse_sizes("100k, 0.5M,2000") == (100_000, 500_000, 2000)
    with pytest.raises(UserError):
        parse_sizes("many")
    assert [format_cell(v) for v in (None, 0.3456, 12.34, 1234.5, 7, "a|b")] == [
        "n/a", "0.346", "12.3", "1,234", "7", "a\\|b"]


def test_bench_all_parses_every_bench_option():
    from beauty_app.cli import build_parser
    from beauty_app.cli.bench import _settings

    args = build_parser().parse_args(
        ["bench", "all", "--products", "30", "--iterations", "5", "--catalog-size", "40", "--queries", "7",
         "--sizes", "1k,2k", "--ann-queries", "50", "--threads", "1", "--fp32", "--device", "cpu", "--out", "x"])
    assert args.benches == ("accuracy", "speed", "ann")
    accuracy, speed, ann = (_settings(args, name) for name in args.benches)
    assert (accuracy.products, accuracy.iterations, accuracy.amp, accuracy.device) == (30, 5, False, "cpu")
    assert (speed.catalog_size, speed.queries, speed.device) == (40, 7, "cpu")
    assert (ann.sizes, ann.queries, ann.threads) == ((1000, 2000), 50, 1)
