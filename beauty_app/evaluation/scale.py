"""Scale measurements: a Perfect-500K-sized catalog index, and the peak memory of a real build.

:func:`run_scale_bench` stores N synthetic clustered vectors of the real feature dimension (1280,
EfficientNet-Lite0) through :meth:`CatalogIndex.add_items`, exactly as a build stores features,
then measures, each phase in a fresh process so that its peak memory is its own:

* finalising with ``--index-type auto`` (the search structure the memory budget chooses, its
  training, the recall@7 tuning and the checksums): time and peak RSS;
* opening the index and searching it: open time, peak RSS of a searching process, single-query
  latency p50/p95 of :meth:`CatalogIndex.search` (search structure + SQLite rows) on one thread,
  and recall@7 of new queries against exact search;
* the catalog browser's paging: the first page, the last page reached by scrolling (keyset), the
  same page by OFFSET, and filtered pages.

:func:`run_build_bench` (``beauty-app bench build --images 100000``) runs a real `catalog build` of
generated demo images in a child process (:func:`measure_build`), samples its resident memory as
the build goes, and reports the peak, the memory by tenth of the catalog, and a plot.

Run it as ``python -m beauty_app.evaluation.scale --size 500000 --out DIR`` (results in
``DIR/scale.json`` and ``DIR/scale.md``); docs/scale.md has the numbers measured here.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..catalog_io import atomic_write_text
from ..errors import UserError
from ..jobs import report
from .bench import (BenchReport, Table, format_cell, machine_info, percentile_ms, synthetic_vectors,
                    write_report)

log = logging.getLogger(__name__)


@dataclass
class ScaleSettings:
    """Sizes of the scale measurement."""

    size: int = 500_000
    dim: int = 1280
    memory_budget: str = "1GiB"
    queries: int = 200  # single queries timed, and scored against exact search
    seed: int = 0
    reuse: bool = True  # keep a populated database from an earlier run with the same settings


# ---------------------------------------------------------------------------- child processes
def _peak_rss_mib() -> float:
    import resource  # Unix only; imported here so that the CLI still loads elsewhere

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - not Linux


def _child(target, args, queue) -> None:
    try:
        from ..retrieval import index  # noqa: F401 - faiss, numpy, sqlite: counted in the baseline

        baseline = _current_rss_mib()
        result = target(*args)
        queue.put({"ok": True, "result": {**result, "baseline_rss_mib": baseline}, "peak_rss_mib": _peak_rss_mib()})
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def in_fresh_process(target, *args):
    """Run ``target(*args)`` in a spawned process; returns (result, its peak RSS in MiB)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(target, args, queue))
    process.start()
    answer = queue.get()
    process.join()
    if not answer["ok"]:
        raise RuntimeError(answer["error"])
    return answer["result"], answer["peak_rss_mib"]


# ---------------------------------------------------------------------------- phases
def _clusters(settings: ScaleSettings) -> int:
    return max(8, settings.size // 100)


def _populate(directory: str, settings: dict) -> dict:
    from ..retrieval.index import CatalogIndex, ItemRecord

    s = ScaleSettings(**settings)
    started = time.perf_counter()
    with CatalogIndex.create(directory, {"model_spec": "synthetic", "model_fingerprint": "synthetic",
                                         "pooling": "srmac", "dim": s.dim}) as index:
        for number, start in enumerate(range(0, s.size, 10_000)):
            count = min(10_000, s.size - start)
            block = synthetic_vectors(count, s.dim, seed=s.seed, stream=100 + number, clusters=_clusters(s))
            index.add_items([ItemRecord(f"c{start + i:07d}", f"catalog/c{start + i:07d}.jpg",
                                        f"Product {start + i} moisturising cream 50 ml", "moisturizer", v)
                             for i, v in enumerate(block)])
    return {"seconds": time.perf_counter() - started}


def _finalize(directory: str, settings: dict) -> dict:
    from ..retrieval.ann import parse_memory
    from ..retrieval.index import CatalogIndex

    s = ScaleSettings(**settings)
    started = time.perf_counter()
    with CatalogIndex.open(directory, writable=True) as index:
        index.finalize("auto", memory_budget=parse_memory(s.memory_budget))
        info = index.info()
        stored = index.settings()
    return {"seconds": time.perf_counter() - started, "info": info, "plan": stored.get("index_plan")}


def _search(directory: str, settings: dict) -> dict:
    from ..retrieval.ann import ExactNeighbours, recall
    from ..retrieval.index import CatalogIndex, set_search_threads

    s = ScaleSettings(**settings)
    queries = synthetic_vectors(s.queries, s.dim, seed=s.seed, stream=1, clusters=_clusters(s))
    started = time.perf_counter()
    index = CatalogIndex.open(directory)
    opened = time.perf_counter() - started
    index.search(queries[:1], 7)  # loads the search structure
    loaded = time.perf_counter() - started
    rss_loaded = _peak_rss_mib()
    set_search_threads(1)
    latency, found = [], []
    for query in queries:
        t = time.perf_counter()
        hits = index.search(query[None], 7)[0]
        latency.append(time.perf_counter() - t)
        found.append([hit.row for hit in hits])
    # Exact answers for the same queries, streamed from the database.
    set_search_threads(os.cpu_count() or 1)
    exact = ExactNeighbours(queries, np.full(len(queries), -1), 7)
    rows: list[int] = []
    for chunk_rows, vectors in index.vector_chunks():
        exact.add(index.prepare_queries(vectors), len(rows))
        rows += chunk_rows
    exact_rows = np.asarray(rows)[exact.ids]
    measured = recall(np.asarray(found), exact_rows, 7)
    index.close()
    return {"open_s": opened, "open_and_load_s": loaded, "rss_loaded_mib": rss_loaded,
            "p50_ms": percentile_ms(latency, 50), "p95_ms": percentile_ms(latency, 95),
            "p99_ms": percentile_ms(latency, 99), "recall_at_7": measured}


def _paging(directory: str, settings: dict) -> dict:
    from ..retrieval.index import CatalogIndex

    s = ScaleSettings(**settings)
    page = 200
    index = CatalogIndex.open(directory)

    def timed(call) -> float:
        t = time.perf_counter()
        call()
        return (time.perf_counter() - t) * 1000

    first = timed(lambda: list(index.iter_items(limit=page)))
    # Scroll to the end as the browser does (each page continues the previous one: keyset).
    t = time.perf_counter()
    offset = 0
    while offset + page < s.size:
        list(index.iter_items(limit=page, offset=offset))
        offset += page
    scroll_s = time.perf_counter() - t
    last_keyset = timed(lambda: list(index.iter_items(limit=page, offset=offset)))
    jump = timed(lambda: list(index.iter_items(limit=page, offset=s.size // 2)))  # a dragged scroll bar
    # What a jump costs once rows have gaps (after removals): SQLite's OFFSET, as paging did before.
    last_offset = timed(lambda: index._db.execute(
        "SELECT row, id, path, description, category FROM items ORDER BY row LIMIT ? OFFSET ?",
        (page, offset)).fetchall())
    common = timed(lambda: list(index.iter_items("moisturising", limit=page)))
    rare = timed(lambda: list(index.iter_items(f"Product {s.size - 7} ", limit=page)))
    count = timed(index.count)
    filter_count = timed(lambda: index.count_items("moisturising"))
    index.close()
    return {"first_page_ms": first, "last_page_keyset_ms": last_keyset, "jump_middle_ms": jump,
            "last_page_offset_ms": last_offset, "scroll_all_s": scroll_s, "pages": s.size // page,
            "filter_common_first_page_ms": common, "filter_rare_ms": rare, "count_ms": count,
            "filter_count_ms": filter_count}


# ---------------------------------------------------------------------------- the bench
def run_scale_bench(out_dir: str | os.PathLike, settings: ScaleSettings | None = None, *, echo=None,
                    command: str = "", **_ignored) -> BenchReport:
    """Build, finalise, search and page a synthetic catalog index of `settings.size` vectors."""
    settings = settings or ScaleSettings()
    echo = echo or log.info
    started = time.perf_counter()
    work = Path(out_dir) / "scale-work"
    directory = work / f"index-{settings.size}x{settings.dim}"
    marker = directory / "scale-settings.json"
    wanted = {"size": settings.size, "dim": settings.dim, "seed": settings.seed}
    plain = asdict(settings)
    results: dict = {}
    if settings.reuse and marker.is_file() and json.loads(marker.read_text()) == wanted:
        echo(f"reusing the {settings.size:,}-row database in {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        echo(f"storing {settings.size:,} synthetic {settings.dim}-d vectors through CatalogIndex.add_items")
        results["populate"], results["populate_peak_rss_mib"] = in_fresh_process(_populate, str(directory), plain)
        marker.write_text(json.dumps(wanted))
    echo("finalising with --index-type auto")
    results["finalize"], results["finalize_peak_rss_mib"] = in_fresh_process(_finalize, str(directory), plain)
    echo("opening and searching")
    results["search"], results["search_peak_rss_mib"] = in_fresh_process(_search, str(directory), plain)
    echo("paging the catalog browser")
    results["paging"], _ = in_fresh_process(_paging, str(directory), plain)
    db_bytes = sum(p.stat().st_size for p in directory.glob("catalog.sqlite*"))
    results["database_bytes"] = db_bytes

    fin, search, paging = results["finalize"], results["search"], results["paging"]
    info = fin["info"]
    main = Table(f"{settings.size:,} catalog vectors of {settings.dim} dimensions, --index-type auto "
                 f"--memory-budget {settings.memory_budget}", ["measure", "value"], [
                     ["search structure", info["structure"]],
                     ["search structure size (MiB)", info_size_mib(fin)],
                     ["recall@7 at build time (held-out catalog vectors)", info["recall_at_7"]],
                     [f"recall@7 of {settings.queries} new queries against exact search", search["recall_at_7"]],
                     ["query latency p50 (ms, one thread, CatalogIndex.search)", search["p50_ms"]],
                     ["query latency p95 (ms)", search["p95_ms"]],
                     ["query latency p99 (ms)", search["p99_ms"]],
                     ["finalise time (s)", fin["seconds"]],
                     ["finalise peak RSS (MiB)", results["finalize_peak_rss_mib"]],
                     ["  of which the process before finalising (Python, torch, faiss imported)",
                      fin["baseline_rss_mib"]],
                     ["open time (s, checksum of the database)", search["open_s"]],
                     ["open + load the search structure (s)", search["open_and_load_s"]],
                     ["searching process RSS with the index loaded (MiB)", search["rss_loaded_mib"]],
                     ["  of which the process before opening the index", search["baseline_rss_mib"]],
                     ["database on disk (GiB)", db_bytes / 2**30]])
    if "populate" in results:
        main.rows.insert(8, ["storing the vectors: time (s)", results["populate"]["seconds"]])
        main.rows.insert(9, ["storing the vectors: peak RSS (MiB)", results["populate_peak_rss_mib"]])
        main.rows.insert(10, ["  of which the process before storing", results["populate"]["baseline_rss_mib"]])
    browse = Table("Catalog browser paging (200 rows a page)", ["measure", "ms"], [
        ["first page", paging["first_page_ms"]],
        ["last page, reached by scrolling (keyset: continues after the last row)", paging["last_page_keyset_ms"]],
        ["a jump to the middle (a dragged scroll bar; rows without gaps: by key)", paging["jump_middle_ms"]],
        ["last page by LIMIT/OFFSET (a jump once rows have gaps; all paging before)", paging["last_page_offset_ms"]],
        ["filter matching every row, first page", paging["filter_common_first_page_ms"]],
        ["filter matching one row (scans the table)", paging["filter_rare_ms"]],
        ["row count", paging["count_ms"]],
        ["counting a filter's matches (the browser's scroll range; scans the table)", paging["filter_count_ms"]]])
    browse.notes.append(f"Scrolling through all {paging['pages']:,} pages took {paging['scroll_all_s']:.1f} s "
                        f"in total ({paging['scroll_all_s'] / max(paging['pages'], 1) * 1000:.2f} ms a page).")
    main.notes += [
        "Vectors: synthetic, clustered (N/100 clusters in a 64-dimensional subspace plus isotropic noise), "
        "L2-normalised; the same generator as `bench ann`. Stored as a build stores features, without "
        "thumbnails or comparison poolings (a real build adds about 4 x 5 KiB of comparison vectors and a "
        "thumbnail per image on disk, not in memory).",
        "Each phase runs in a fresh process; peak RSS is that process's maximum resident set size.",
        "Latency: single queries on one faiss thread through CatalogIndex.search, which also reads the "
        "hits' rows from SQLite. New queries: points drawn from the same clusters, not in the catalog.",
    ]
    bench = BenchReport("scale", "Scale: a Perfect-500K-sized catalog index", [main, browse],
                        machine_info("cpu (faiss)"), plain, results, command)
    bench.machine["load_after"] = [round(v, 2) for v in os.getloadavg()]
    bench.elapsed_s = time.perf_counter() - started
    return bench


def info_size_mib(finalize: dict) -> float | None:
    text = finalize["info"].get("index_size") or ""
    number, _, unit = text.partition(" ")
    try:
        return float(number) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 2**20}[unit]
    except (ValueError, KeyError):
        return None


# ---------------------------------------------------------------------------- a real build's memory
@dataclass
class BuildSettings:
    """A real `catalog build` whose resident memory is sampled: `bench build`."""

    images: int = 100_000  # catalog images to index (demo images are generated when --data is not given)
    data: str | None = None  # an existing demo folder (`demo generate --out`) to take the images from
    model: str | None = None  # default: the shipped demo MANet, else the ImageNet backbone
    pooling: str | None = None
    batch_size: int = 16
    workers: int = 2  # decoding threads of the build (and processes generating demo images)
    device: str = "auto"
    interval_s: float = 1.0  # how often the build's resident memory is read
    seed: int = 0
    keep_index: bool = False  # the 100K index takes about 3 GB of disk


#: Catalog images per demo product, on average (1 to 3 views): 19,903 for 10,000 products.
_VIEWS_PER_PRODUCT = 1.99


def measure_build(catalog_csv: str | os.PathLike, out_dir: str | os.PathLike, model: str,
                  extra_args: tuple[str, ...] = (), interval_s: float = 1.0, job=None) -> dict:
    """Run `catalog build` in a child process, sampling its resident memory as it goes.

    The child reports its progress as JSON lines, so every memory sample is tied to how far the
    build was: ``samples`` holds (seconds, RSS MiB, images done, stage) rows; ``peak_rss_mib`` is
    the child's maximum resident set size as the kernel counted it (it also catches peaks between
    two samples). Progress is passed on to `job`, whose cancel stops the child.
    """
    command = [sys.executable, "-m", "beauty_app", "catalog", "build", "--catalog", str(catalog_csv),
               "--model", model, "--out", str(out_dir), "--progress", "jsonl", "--json", *extra_args]
    if not hasattr(os, "wait4") or not Path("/proc/self/status").is_file():
        raise UserError("bench build reads a process's memory from /proc: it runs on Linux only.")
    state = {"done": 0, "stage": "start"}
    samples: list[tuple[float, float, int, str]] = []
    stage_starts: dict[str, float] = {}
    finished = threading.Event()
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)

        def sample() -> None:
            status = Path(f"/proc/{process.pid}/status")
            while not finished.is_set():
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("VmRSS:"):  # absent once the child has exited
                            samples.append((time.perf_counter() - started, int(line.split()[1]) / 1024,
                                            state["done"], state["stage"]))
                except OSError:
                    break
                finished.wait(interval_s)

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        summary = None
        try:
            for line in process.stdout:
                message = json.loads(line)
                if message.get("event") != "progress":
                    summary = message
                    continue
                stage_starts.setdefault(message["stage"], time.perf_counter() - started)
                state["stage"] = message["stage"]
                if message["stage"] == "index":
                    state["done"] = message["done"]
                if job is not None:
                    job.report(message["stage"], message["done"], message["total"], message["message"])
        except BaseException:
            process.kill()
            raise
        finally:
            # wait4 gives this child's own peak (RUSAGE_CHILDREN would also count earlier children,
            # such as the processes that generated the demo images).
            _, wait_status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(wait_status)
            process.stdout.close()
            finished.set()
            watcher.join()
        errors.seek(0)
        stderr = errors.read().strip()
    if process.returncode != 0 or summary is None:
        last = stderr.splitlines()[-1] if stderr else f"exit status {process.returncode}"
        raise UserError(f"The measured `catalog build` failed: {last}")
    return {"seconds": time.perf_counter() - started, "peak_rss_mib": usage.ru_maxrss / 1024,
            "samples": samples, "stage_starts": stage_starts, "summary": summary}


def _demo_catalog(settings: BuildSettings, work: Path, echo, job) -> Path:
    """A catalog CSV of `settings.images` demo images: generated (and cached) unless --data names one."""
    from ..demo.products import generate_demo

    if settings.data:
        folder = Path(settings.data)
        if not (folder / "catalog.csv").is_file():
            raise UserError(f"{folder} holds no catalog.csv; give a folder made by `beauty-app demo generate`.")
    else:
        products = math.ceil(settings.images / _VIEWS_PER_PRODUCT * 1.05)  # a margin for the random views
        folder = work / f"demo-{products}-seed{settings.seed}"
        if not (folder / "truth.csv").is_file():  # written last: a complete earlier generation is reused
            echo(f"generating {products:,} demo products (about {settings.images:,} catalog images) in {folder}")
            generate_demo(folder, n_products=products, seed=settings.seed, workers=settings.workers,
                          progress=lambda done, total: report(job, "generate", done, total))
    rows = (folder / "catalog.csv").read_text(encoding="utf-8").splitlines()
    if len(rows) - 1 <= settings.images:
        if len(rows) - 1 < settings.images:
            echo(f"{folder / 'catalog.csv'} lists {len(rows) - 1:,} images, fewer than {settings.images:,}: "
                 "indexing them all")
        return folder / "catalog.csv"
    first = folder / f"catalog-first-{settings.images}.csv"  # same folder: the same relative image paths
    if not first.is_file():
        atomic_write_text(first, "\n".join(rows[:settings.images + 1]) + "\n")
    return first


def _rss_stats(values: list[float]) -> list[float | None]:
    return [min(values), sum(values) / len(values), max(values)] if values else [None, None, None]


def run_build_bench(out_dir: str | os.PathLike, settings: BuildSettings | None = None, *, job=None, echo=None,
                    command: str = "", **_ignored) -> BenchReport:
    """Build the index of a real catalog of demo images and report its resident memory over the build."""
    from ..models.presets import default_model_spec
    from ..device import pick_device

    settings = settings or BuildSettings()
    echo = echo or log.info
    started = time.perf_counter()
    work = Path(out_dir) / "build-work"
    work.mkdir(parents=True, exist_ok=True)
    load_before = [round(v, 2) for v in os.getloadavg()]
    catalog_csv = _demo_catalog(settings, work, echo, job)
    spec, default_pooling = (settings.model, None) if settings.model else default_model_spec()
    pooling = settings.pooling or default_pooling or "srmac"
    device = str(pick_device(settings.device))
    machine = machine_info(device)  # now: the code revision that runs the build, not the one at the end
    index_dir = work / "index"
    shutil.rmtree(index_dir, ignore_errors=True)
    echo(f"indexing {catalog_csv} with {spec} ({pooling}) on {device}, sampling memory every {settings.interval_s:g} s")
    run = measure_build(catalog_csv, index_dir, spec,
                        ("--pooling", pooling, "--batch-size", str(settings.batch_size), "--workers",
                         str(settings.workers), "--device", device), interval_s=settings.interval_s, job=job)
    database_bytes = sum(p.stat().st_size for p in index_dir.glob("catalog.sqlite*"))
    if not settings.keep_index:
        shutil.rmtree(index_dir, ignore_errors=True)

    summary, samples = run["summary"], run["samples"]
    indexed, skipped = summary["indexed"], len(summary["skipped"])
    total = indexed + skipped
    index_start = run["stage_starts"].get("index", 0.0)
    finalize_start = run["stage_starts"].get("finalize", run["seconds"])
    featurising = [rss for t, rss, done, stage in samples if stage == "index" and done > 0]
    finalising = [rss for t, rss, done, stage in samples if stage == "finalize"]
    tenths = []
    for k in range(10):
        low, high = k * total / 10, (k + 1) * total / 10
        part = [rss for t, rss, done, stage in samples if stage == "index" and low < done <= high]
        tenths.append([f"{k * 10}-{(k + 1) * 10}% ({int(low):,}-{int(high):,})", *_rss_stats(part)])
    second, last = tenths[1][2], tenths[-1][2]  # mean RSS of the 10-20% and 90-100% tenths
    growth = None if second is None or last is None else last - second
    info = summary["index"]
    rate = indexed / max(finalize_start - index_start, 1e-9)

    main = Table(f"`catalog build` of {indexed:,} demo images: resident memory", ["measure", "value"], [
        ["catalog images indexed", indexed],
        ["files skipped", skipped],
        ["model, pooling", f"{spec}, {pooling}"],
        ["device, batch size, decoding threads", f"{device}, {settings.batch_size}, {settings.workers}"],
        ["peak RSS of the whole build (MiB)", run["peak_rss_mib"]],
        ["RSS when the first images were stored (MiB): start-up, catalog read, model loaded",
         featurising[0] if featurising else None],
        ["RSS while featurising, min / mean / max (MiB)",
         " / ".join(format_cell(v) for v in _rss_stats(featurising))],
        ["mean RSS change from the 10-20% to the 90-100% tenth of the images (MiB)", growth],
        ["RSS while finalising, max (MiB)", max(finalising) if finalising else None],
        ["start-up before featurising (s)", index_start],
        ["featurising (s)", finalize_start - index_start],
        ["featurising rate (images/s)", rate],
        ["finalising (s)", run["seconds"] - finalize_start],
        ["search structure", info.get("structure")],
        ["search structure size", info.get("index_size")],
        ["recall@7 at build time", info.get("recall_at_7")],
        ["database on disk (GiB)", database_bytes / 2**30],
        ["wall time (s)", run["seconds"]]])
    main.notes += [
        f"Resident memory (VmRSS) of the `catalog build` process, read every {settings.interval_s:g} s; the peak is "
        "the kernel's maximum resident set size for the process, so it includes peaks between two samples.",
        f"Catalog: {catalog_csv} (generated demo images, 256 px JPEG). Command: `beauty-app catalog build --catalog "
        f"{catalog_csv.name} --model {spec} --pooling {pooling} --batch-size {settings.batch_size} "
        f"--workers {settings.workers} --device {device}`.",
    ]
    over_time = Table("Resident memory through the build, by tenth of the catalog (MiB)",
                      ["images", "min", "mean", "max"],
                      [["start-up: catalog read, model loaded", *_rss_stats(
                          [rss for t, rss, done, stage in samples if stage != "finalize" and done == 0])],
                       *tenths, ["finalising: search structure, recall, checksums", *_rss_stats(finalising)]])
    bench = BenchReport("build", f"Peak memory of a real {indexed:,}-image catalog build",
                        [main, over_time], machine, asdict(settings),
                        {"peak_rss_mib": run["peak_rss_mib"], "seconds": run["seconds"], "indexed": indexed,
                         "skipped": skipped, "stage_starts": run["stage_starts"], "database_bytes": database_bytes,
                         "index": info, "samples": [[round(t, 2), round(rss, 1), done, stage]
                                                    for t, rss, done, stage in samples]},
                        command)
    bench.machine["load_before"] = load_before
    bench.machine["load_after"] = [round(v, 2) for v in os.getloadavg()]
    bench.elapsed_s = time.perf_counter() - started
    plot = plot_build_memory(bench.results, Path(out_dir) / "build-memory.png")
    if plot is not None:
        over_time.notes.append(f"Plot: {plot.name} (resident memory against time, stages shaded).")
    return bench


def plot_build_memory(results: dict, png: Path) -> Path | None:
    """Resident memory against time as a PNG (needs matplotlib: `pip install beauty_app[bench]`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        log.info("matplotlib is not installed: no memory plot")
        return None
    samples = results["samples"]
    if not samples:
        return None
    times = [s[0] / 60 for s in samples]
    figure, axis = plt.subplots(figsize=(8, 3.6), dpi=110)
    axis.plot(times, [s[1] for s in samples], color="#b0306a", linewidth=1.2, label="resident memory (VmRSS)")
    axis.axhline(results["peak_rss_mib"], color="#555555", linestyle=":", linewidth=1,
                 label=f"peak {results['peak_rss_mib']:,.0f} MiB")
    starts = results["stage_starts"]
    end = times[-1]
    spans = [("start-up", 0.0, starts.get("index", 0.0) / 60), ("featurising", starts.get("index", 0.0) / 60,
              starts.get("finalize", end * 60) / 60), ("finalising", starts.get("finalize", end * 60) / 60, end)]
    for (name, left, right), color in zip(spans, ("#eeeeee", "#ffffff", "#e3ecf7")):
        if right > left:
            axis.axvspan(left, right, color=color, zorder=0)
            axis.text((left + right) / 2, 0.02, name, transform=axis.get_xaxis_transform(), ha="center",
                      fontsize=8, color="#444444")
    images = axis.twinx()  # memory stays flat while the images stored climb
    images.plot(times, [s[2] for s in samples], color="#7a7a7a", linewidth=1, linestyle="--",
                label="images stored")
    images.set_ylabel("images stored", color="#7a7a7a")
    images.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    images.set_ylim(0, max(1, results["indexed"] + results["skipped"]) * 1.3)
    images.legend(loc="upper right", fontsize=8, frameon=False)
    axis.set_xlabel("minutes since the build started")
    axis.set_ylabel("MiB")
    axis.set_ylim(0, results["peak_rss_mib"] * 1.3)  # room for the legends above the peak line
    axis.set_title(f"catalog build of {results['indexed']:,} images: resident memory", fontsize=10)
    axis.legend(loc="upper left", fontsize=8, frameon=False)
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png)
    plt.close(figure)
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m beauty_app.evaluation.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=ScaleSettings.size)
    parser.add_argument("--dim", type=int, default=ScaleSettings.dim)
    parser.add_argument("--memory-budget", default=ScaleSettings.memory_budget)
    parser.add_argument("--queries", type=int, default=ScaleSettings.queries)
    parser.add_argument("--out", default="bench_results")
    parser.add_argument("--no-reuse", action="store_true", help="store the vectors again even if a database is there")
    args = parser.parse_args(argv)
    settings = ScaleSettings(size=args.size, dim=args.dim, memory_budget=args.memory_budget, queries=args.queries,
                             reuse=not args.no_reuse)
    bench = run_scale_bench(args.out, settings, echo=lambda m: print(m, file=sys.stderr, flush=True),
                            command="python -m beauty_app.evaluation.scale " + " ".join(argv or sys.argv[1:]))
    json_path, md_path = write_report(bench, args.out)
    print(bench.to_markdown())
    print(f"Written {json_path} and {md_path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
