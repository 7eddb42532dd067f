"""Benchmarks: the paper's accuracy tables (A1-A3) on demo data, speed, approximate search, scale.

Each bench returns a :class:`~.report.BenchReport` (JSON + a Markdown table, with the machine and
its load recorded) and reuses the product's own code paths:

* :mod:`.accuracy`: Tables A1-A3 (mined demo catalog, trained ablation variants, six poolings).
* :mod:`.recipes`: cross-domain instance retrieval by training recipe (paper vs instance objective).
* :mod:`.speed`: catalog indexing throughput and query latency against a naive baseline.
* :mod:`.ann`: flat / IVF / HNSW / PQ indexes on synthetic vectors.
* :mod:`.build`: the resident memory of a real `catalog build`.
* :mod:`.pipeline`: indexing cost around the network, decode scaling over worker processes.
* :mod:`.scale`: a Perfect-500K-sized index, phase by phase in fresh processes
  (``python -m beauty_app.evaluation.bench.scale``; not imported here, so that running it as a
  module does not import it twice).

The names below are what the `beauty-app bench` command uses.
"""

from __future__ import annotations

from beauty_app.evaluation.bench.accuracy import AccuracySettings, run_accuracy_bench
from beauty_app.evaluation.bench.ann import AnnSettings, parse_sizes, run_ann_bench
from beauty_app.evaluation.bench.build import BuildSettings, run_build_bench
from beauty_app.evaluation.bench.recipes import RecipeSettings, run_recipes_bench
from beauty_app.evaluation.bench.pipeline import PipelineSettings, run_pipeline_bench
from beauty_app.evaluation.bench.report import BenchReport, command_line, write_report
from beauty_app.evaluation.bench.speed import SpeedSettings, run_speed_bench

__all__ = [
    "AccuracySettings", "AnnSettings", "BenchReport", "BuildSettings", "PipelineSettings", "RecipeSettings",
    "SpeedSettings", "command_line", "parse_sizes", "run_accuracy_bench", "run_ann_bench", "run_build_bench",
    "run_pipeline_bench", "run_recipes_bench",
    "run_speed_bench", "write_report",
]
