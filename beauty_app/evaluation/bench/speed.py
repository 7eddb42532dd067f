"""Speed: catalog indexing throughput and end-to-end query latency, ours against a naive baseline.

Ours is the product's path (batched, the runtime measured fastest here, decoding in worker processes); the
naive baseline (fp32, batch 1, eager, serial decoding) is measured in the same run on the same
images.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from beauty_app.errors import UserError
from beauty_app.evaluation.bench.data import cached_demo_data
from beauty_app.evaluation.bench.report import (BenchReport, Echo, Table, finish_report, load_average,
                                                machine_info, percentile_ms)
from beauty_app.jobs import JobControl, report

log = logging.getLogger(__name__)


@dataclass
class SpeedSettings:
    """Sizes of the indexing / query-latency bench."""

    catalog_size: int = 300
    queries: int = 50
    device: str = "auto"
    model: str | None = None  # default: the shipped demo MANet, else the ImageNet backbone
    pooling: str | None = None  # default: srmac with a saliency branch, else ramac
    batch_size: int = 32
    workers: int = 2
    runtime: str = "auto"  # our indexing runtime (auto: measured once per machine and model)
    compile: bool = False  # also time torch.compile in the runtime table (minutes on a small CPU)
    seed: int = 0
    warmup: int = 3


class _Threads:
    """A runtime run with a given number of torch threads (the thread-setting rows of the table)."""

    def __init__(self, runtime, threads: int):
        self.runtime, self.threads, self.name = runtime, threads, runtime.name

    def features(self, pixels):
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self.runtime.features(pixels)
        finally:
            torch.set_num_threads(before)


def runtime_variants(bundle, input_size: int, device, compile_too: bool = False) -> dict:
    """Label -> runtime factory for every way of running the feature path the bench compares."""
    from functools import partial

    from beauty_app.device import autocast_dtype
    from beauty_app.retrieval.runtime import (OnnxRuntime, OpenVinoRuntime, TorchRuntime, available_runtimes,
                                              cpu_threads)

    amp = autocast_dtype(device, True)
    variants = {"naive: torch fp32, batch 1": partial(TorchRuntime, bundle, use_amp=False),
                "torch fp32": partial(TorchRuntime, bundle, use_amp=False)}
    if device.type == "cpu" and cpu_threads() > 1:
        variants["torch fp32, 1 thread"] = lambda: _Threads(TorchRuntime(bundle, use_amp=False), 1)
    if amp is not None:
        variants[f"torch {amp} autocast".replace("torch.", "")] = partial(TorchRuntime, bundle, use_amp=True)
    variants["torch channels-last fp32"] = partial(TorchRuntime, bundle, use_amp=False, channels_last=True)
    if amp is not None:
        variants["torch channels-last + autocast"] = partial(TorchRuntime, bundle, use_amp=True, channels_last=True)
    if compile_too:
        variants["torch.compile + autocast"] = partial(TorchRuntime, bundle, use_amp=True, compiled=True)
    if device.type == "cpu":
        installed = available_runtimes()
        if "onnxruntime" in installed:
            variants["onnxruntime fp32"] = partial(OnnxRuntime, bundle, input_size)
            if cpu_threads() > 1:
                variants["onnxruntime fp32, 1 thread"] = partial(OnnxRuntime, bundle, input_size, threads=1)
        if "openvino" in installed:
            variants["openvino fp32"] = partial(OpenVinoRuntime, bundle, input_size, use_amp=False)
            variants["openvino, bf16 where native"] = partial(OpenVinoRuntime, bundle, input_size, use_amp=True)
            if cpu_threads() > 1:
                variants["openvino, bf16 where native, 1 thread"] = partial(
                    OpenVinoRuntime, bundle, input_size, use_amp=True, threads=1)
    return variants


def _timed_queries(sessions: dict, paths: Sequence[Path], warmup: int, job) -> dict[str, list[float]]:
    """End-to-end seconds of `search_image` per query for each session, interleaved query by query.

    On a shared machine the background load drifts; timing the sessions in turns on the same
    query (first one, then the other first) exposes both to the same load instead of one to the
    quiet minutes and the other to the busy ones.
    """
    names = list(sessions)
    for path in list(paths)[:warmup]:
        for session in sessions.values():
            session.search_image(path, k=7)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for i, path in enumerate(paths):
        for name in (names if i % 2 == 0 else names[::-1]):
            t = time.perf_counter()
            sessions[name].search_image(path, k=7)
            seconds[name].append(time.perf_counter() - t)
        report(job, "queries", i + 1, len(paths))
    return seconds


def _stage_times(session, paths: Sequence[Path]) -> dict[str, list[float]]:
    """Per-stage seconds of the query path: the three calls `SearchSession.search_image` makes."""
    from beauty_app.imaging import load_image
    from beauty_app.retrieval.extractor import DECODE_MAX_SIDE

    stages: dict[str, list[float]] = {"decode": [], "analyze": [], "search": []}
    for path in paths:
        t0 = time.perf_counter()
        image = load_image(path, max_side=DECODE_MAX_SIDE)
        t1 = time.perf_counter()
        analysis = session.extractor.analyze(image)
        t2 = time.perf_counter()
        session.index.search(analysis.vector[None], 7)
        t3 = time.perf_counter()
        for name, seconds in (("decode", t1 - t0), ("analyze", t2 - t1), ("search", t3 - t2)):
            stages[name].append(seconds)
    return stages


def _naive_vectors(extractor, entries, job) -> tuple[np.ndarray, float]:
    """The baseline: decode one image, run it alone in fp32, pool it, next image (nothing overlaps)."""
    import torch

    from beauty_app.imaging import load_image
    from beauty_app.retrieval.extractor import DECODE_MAX_SIDE

    vectors = []
    started = time.perf_counter()
    for i, entry in enumerate(entries):
        image = load_image(entry.path, max_side=DECODE_MAX_SIDE)
        vectors.append(extractor.vectors(extractor.to_tensor(image)[None])[0])
        report(job, "naive indexing", i + 1, len(entries))
    if extractor.device.type == "cuda":
        torch.cuda.synchronize(extractor.device)
    return np.stack(vectors), time.perf_counter() - started


def _sync(device) -> None:
    if getattr(device, "type", "") == "cuda":
        import torch

        torch.cuda.synchronize(device)


def run_speed_bench(out_dir: str | os.PathLike, settings: SpeedSettings | None = None, *,
                    job: JobControl | None = None, echo: Echo | None = None, command: str = "") -> BenchReport:
    """Catalog indexing throughput and query latency, ours against the naive baseline, same run and images."""
    import torch

    from beauty_app.catalog_io import read_catalog
    from beauty_app.models.presets import default_model_spec
    from beauty_app.device import autocast_dtype, pick_device
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.build import build_index
    from beauty_app.retrieval.extractor import FeatureExtractor
    from beauty_app.retrieval.session import new_extractor
    from beauty_app.retrieval.index import CatalogIndex, make_faiss_index
    from beauty_app.retrieval.search import SearchSession, query_files_in

    settings = settings or SpeedSettings()
    echo = echo or log.info
    if settings.catalog_size < 1 or settings.queries < 1:
        raise UserError("The speed bench needs a catalog size and a query count of at least 1.")
    started, load_before = time.perf_counter(), load_average()
    device = pick_device(settings.device)
    work = Path(out_dir) / "speed-work"
    work.mkdir(parents=True, exist_ok=True)
    n_products = math.ceil(settings.catalog_size / 2)
    per_product = math.ceil(settings.queries / n_products)
    data = cached_demo_data(work / "catalog", {"n_products": n_products, "seed": settings.seed, "views": 2,
                                         "queries_per_product": per_product}, echo, job,
                      n_products=n_products, seed=settings.seed, views_per_product=(2, 2), query_fraction=1.0,
                      queries_per_product=per_product)
    catalog = read_catalog(data.catalog_csv)
    catalog = replace(catalog, entries=catalog.entries[:settings.catalog_size])
    queries = query_files_in(data.queries_dir)[:settings.queries]

    spec, default_pooling = (settings.model, None) if settings.model else default_model_spec()
    bundle = load_model(spec, device=device)
    pooling = settings.pooling or default_pooling or ("srmac" if bundle.has_saliency else "ramac")
    settings = replace(settings, device=str(device), model=bundle.spec, pooling=pooling)
    ours = new_extractor(bundle, pooling, batch_size=settings.batch_size, use_amp=True,
                         decode_workers=settings.workers, runtime=settings.runtime)
    naive = FeatureExtractor(bundle, pooling, batch_size=1, use_amp=False, decode_workers=1)

    # Warm-up outside the clock: first calls pay for lazy initialisation (kernels, allocator, caches).
    warm = catalog.entries[:max(1, min(settings.warmup, len(catalog.entries)))]
    ours.extract_paths([e.path for e in warm])
    _naive_vectors(naive, warm, None)

    from beauty_app.retrieval.runtime import calibration_pixels, measure_runtimes

    echo("timing the ways to run the feature path (one batch each, in turns)")
    variants = runtime_variants(bundle, ours.input_size, device, settings.compile)
    runtimes = measure_runtimes(bundle, ours.input_size, variants, batch=16, rounds=3,
                                batch_one=["naive: torch fp32, batch 1"])
    chosen = ours.runtime_for(len(catalog.entries))  # calibrates (first time) and compiles off the clock
    chosen.features(calibration_pixels(ours.input_size, 2))
    runtime_name = chosen.name
    echo(f"indexing {len(catalog.entries)} catalog images: ours (batch {settings.batch_size}, "
         f"{settings.workers} decoding processes, runtime {runtime_name})")

    def build(folder: Path):
        if folder.exists():
            shutil.rmtree(folder)
        _sync(device)
        return build_index(catalog, ours, folder, job=job)

    # Ours runs before and after the (long) naive pass, so a change in background load during the
    # run weighs on both sides; its rate is over both builds.
    index_dir = work / "index-ours"
    first = build(index_dir)
    echo("indexing the same images: naive (fp32, batch 1, serial decoding)")
    naive_matrix, naive_seconds = _naive_vectors(naive, catalog.entries, job)
    t = time.perf_counter()
    make_faiss_index(naive_matrix, "flat")
    naive_seconds += time.perf_counter() - t
    naive_rate = len(catalog.entries) / naive_seconds
    echo("indexing with ours again")
    second = build(work / "index-ours-again")
    shutil.rmtree(work / "index-ours-again")
    ours_rate = (first.indexed + second.indexed) / (first.elapsed_s + second.elapsed_s)

    # Do the two paths give the same vectors? (bf16 autocast changes the last digits, not the ranking.)
    with CatalogIndex.open(index_dir) as index:
        ours_matrix = index.raw_vectors()
        order = [item["id"] for item in index.iter_items()]
    position = {entry.id: i for i, entry in enumerate(catalog.entries)}
    matched = naive_matrix[[position[i] for i in order]]
    agreement = float(np.mean(np.sum(ours_matrix * matched, axis=1) /
                              (np.linalg.norm(ours_matrix, axis=1) * np.linalg.norm(matched, axis=1) + 1e-12)))

    echo(f"timing {len(queries)} queries end to end (decode, forward, heatmaps, {pooling}, search)")
    with SearchSession(index_dir, bundle.spec, device=device, bundle=bundle, use_amp=True) as fast, \
            SearchSession(index_dir, bundle.spec, device=device, bundle=bundle, use_amp=False) as slow:
        latency = _timed_queries({"ours": fast, "naive": slow}, queries, settings.warmup, job)
        stages = _stage_times(fast, queries)
    ours_latency, naive_latency = latency["ours"], latency["naive"]

    p50, p95 = percentile_ms(ours_latency, 50), percentile_ms(ours_latency, 95)
    n50, n95 = percentile_ms(naive_latency, 50), percentile_ms(naive_latency, 95)
    main = Table(
        f"Indexing and query speed ({device.type}, {bundle.describe()}, {pooling})",
        ["measure", "ours", "naive baseline", "speed-up (×)"],
        [["catalog indexing (images/s)", ours_rate, naive_rate, ours_rate / naive_rate],
         ["query latency p50 (ms)", p50, n50, n50 / p50],
         ["query latency p95 (ms)", p95, n95, n95 / p95]])
    main.notes += [
        f"{len(catalog.entries)} catalog images and {len(queries)} query photos of the synthetic demo "
        f"(256 px JPEGs); network input {ours.input_size} px; model {bundle.spec}.",
        f"Ours: batches of {settings.batch_size}, {settings.workers} decoding processes ahead of the network, "
        f"runtime {runtime_name} (chosen: {settings.runtime}), "
        f"autocast {autocast_dtype(device, True) or 'off (no native bf16 here)'}; the indexing time is the whole "
        f"`catalog build` path, which also writes SQLite rows, thumbnails and comparison poolings.",
        "Naive: decode one image, run it alone in fp32, pool it, then the next (no overlap), plus a flat faiss "
        "index; it writes nothing to disk, so the indexing ratio is conservative.",
        "Query latency: `SearchSession.search_image` end to end (decode, MANet forward, heatmaps, pooling, "
        "SR-MAC regions, search) on the same index; naive = the same path in fp32. Both run one image at a time, "
        "taking turns query by query; our indexing rate is over two builds, before and after the naive pass.",
        f"Vectors of the two paths agree to a mean cosine of {agreement:.4f}.",
    ]
    stages["total"] = [sum(parts) for parts in zip(*stages.values())]
    breakdown = Table("Query latency by stage (ours)", ["stage", "p50 (ms)", "p95 (ms)"],
                      [[name, percentile_ms(values, 50), percentile_ms(values, 95)] for name, values in stages.items()])
    breakdown.notes.append("A second pass over the same queries, timing the three calls `search_image` makes; "
                           "analyze = MANet forward + heatmaps upsampled to the image + pooling + SR-MAC regions.")
    naive_ms = runtimes["naive: torch fp32, batch 1"].get("ms_per_image")
    runtime_table = Table(
        f"Feature path by runtime ({device.type}, {bundle.describe()}, {ours.input_size} px)",
        ["runtime", "ms/image", "speed-up vs naive (×)", "lowest cosine to fp32", "set-up (s)"],
        [[label, r.get("ms_per_image"), (naive_ms / r["ms_per_image"]) if naive_ms and r.get("ms_per_image") else None,
          r.get("cosine"), r.get("prepare_s")] if "error" not in r else [label, None, None, None, r["error"]]
         for label, r in runtimes.items()])
    runtime_table.notes += [
        "Forward pass (uint8 pixels -> normalised -> features + saliency) on 16 product-like images, median of 3 "
        "rounds taken in turns; batches of 16 except the naive row. Cosine: lowest per-image cosine of the "
        "GAP, MAC, R-MAC and SR-MAC vectors to eager fp32's; `auto` ships a runtime only at >= 0.99.",
        f"`--runtime auto` picked {runtime_name} here (measured once per machine and model, cached); the ONNX "
        "export and OpenVINO compile are in set-up, paid once per process (the export once per model). "
        "Eager rows are hit hardest by other jobs' load (OpenMP barriers); compare rows of one run only.",
    ]
    results = {"indexing_images_per_s": {"ours": ours_rate, "naive": naive_rate,
                                         "ours_builds": [first.rate, second.rate]},
               "query_latency_ms": {"ours": {"p50": p50, "p95": p95}, "naive": {"p50": n50, "p95": n95}},
               "stage_latency_ms": {name: {"p50": percentile_ms(v, 50), "p95": percentile_ms(v, 95)}
                                    for name, v in stages.items()},
               "vector_agreement_cosine": agreement, "catalog_images": len(catalog.entries), "queries": len(queries),
               "autocast": str(autocast_dtype(device, True)), "torch_threads": torch.get_num_threads(),
               "runtime": runtime_name, "runtimes": runtimes}
    bench = BenchReport("speed", "Speed: catalog indexing and query latency", [main, breakdown, runtime_table],
                        machine_info(str(device)), asdict(settings), results, command)
    return finish_report(bench, started, load_before)
