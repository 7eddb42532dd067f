"""The peak memory of a real `catalog build` (``beauty-app bench build --images 100000``).

:func:`run_build_bench` runs a real `catalog build` of generated demo images in a child process
(:func:`measure_build`), samples its resident memory as the build goes, and reports the peak, the
memory by tenth of the catalog, and a plot.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from beauty_app.fileio import atomic_write_text
from beauty_app.errors import UserError
from beauty_app.evaluation.bench.report import BenchReport, Table, format_cell, machine_info
from beauty_app.jobs import report

log = logging.getLogger(__name__)


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
    from beauty_app.demo.products import generate_demo

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
    from beauty_app.models.presets import default_model_spec
    from beauty_app.device import pick_device

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
