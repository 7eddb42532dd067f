"""Pipeline: where an indexing run's time goes outside the network, and how decoding scales with processes.

The network is the tiny backbone by default, standing in for a fast GPU: what is left is the cost a
GPU build would pay around the network (decoding, thumbnails, pooling, SQLite writes). Two numbers
matter: the main process's cost per image outside the network (it caps the images/s any network
can reach) and how decode+thumbnail throughput grows from 1 to 2 worker processes (the work moved
off the main process must be parallel). On a CUDA device the GPU's busy share is reported too.
Scaling needs free cores: the load average before and after each measurement is in the report.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from beauty_app.errors import UserError
from beauty_app.evaluation.bench.data import cached_demo_data
from beauty_app.evaluation.bench.report import BenchReport, Echo, Table, finish_report, load_average, machine_info
from beauty_app.jobs import JobControl

log = logging.getLogger(__name__)


@dataclass
class PipelineSettings:
    """Sizes of the indexing pipeline bench."""

    images: int = 600
    device: str = "auto"
    model: str | None = None  # default: a random tiny MANet (a stand-in for a fast GPU network)
    batch_size: int = 32
    workers: int = 2
    runtime: str = "torch"
    seed: int = 0


def _tiny_model(folder: Path) -> str:
    """A random-weight tiny MANet checkpoint (its speed, not its vectors, matters here)."""
    import torch

    from beauty_app.models.checkpoint import save_checkpoint
    from beauty_app.models.manet import MANet

    path = folder / "tiny.pt"
    if not path.is_file():
        torch.manual_seed(0)
        save_checkpoint(path, MANet("tiny", num_classes=3, attention="both"), class_names=["a", "b", "c"],
                        input_size=224, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                        train_config={"note": "random tiny network for the pipeline bench"})
    return str(path)


def decode_rate(paths: list[str], input_size: int, batch: int, workers: int, processes: bool) -> float:
    """Images/s of decode + letterbox + thumbnail alone, worker start included."""
    from beauty_app.retrieval.pipeline import decode_stream

    chunks = [[(path, "") for path in paths[i:i + batch]] for i in range(0, len(paths), batch)]
    started = time.perf_counter()
    for _ in decode_stream(chunks, input_size, workers=workers, processes=processes):
        pass
    return len(paths) / (time.perf_counter() - started)


def run_pipeline_bench(out_dir: str | os.PathLike, settings: PipelineSettings | None = None, *,
                       job: JobControl | None = None, echo: Echo | None = None, command: str = "") -> BenchReport:
    """Indexing images/s, main-process ms/image outside the network, decode scaling 1 -> 2 processes."""
    from beauty_app.catalog_io import read_catalog
    from beauty_app.device import pick_device
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.build import build_index
    from beauty_app.retrieval.session import new_extractor

    settings = settings or PipelineSettings()
    echo = echo or log.info
    if settings.images < 1:
        raise UserError("The pipeline bench needs at least 1 image.")
    started, load_before = time.perf_counter(), load_average()
    device = pick_device(settings.device)
    work = Path(out_dir) / "pipeline-work"
    work.mkdir(parents=True, exist_ok=True)
    n_products = math.ceil(settings.images / 2)
    data = cached_demo_data(work / "catalog", {"n_products": n_products, "seed": settings.seed, "views": 2},
                            echo, job, n_products=n_products, seed=settings.seed, views_per_product=(2, 2),
                            query_fraction=0.0)
    catalog = read_catalog(data.catalog_csv)
    catalog = replace(catalog, entries=catalog.entries[:settings.images])
    spec = settings.model or _tiny_model(work)
    bundle = load_model(spec, device=device)
    settings = replace(settings, device=str(device), model=bundle.spec)
    extractor = new_extractor(bundle, batch_size=settings.batch_size, decode_workers=settings.workers,
                              runtime=settings.runtime)
    extractor.extract_paths([entry.path for entry in catalog.entries[:4]])  # lazy initialisation off the clock

    def build():
        folder = work / "index"
        if folder.exists():
            shutil.rmtree(folder)
        return build_index(catalog, extractor, folder, job=job)

    echo(f"indexing {len(catalog.entries)} images with {bundle.describe()} on {device} "
         f"({settings.workers} decoding processes, batches of {settings.batch_size})")
    loads = {"build_before": load_average()}
    builds = [build(), build()]
    loads["build_after"] = load_average()
    images = sum(b.indexed for b in builds)
    total = {key: sum(b.timings.get(key, 0.0) for b in builds)
             for key in ("featurise_s", "network_s", "decode_wait_s", "store_s", "gpu_busy_s", "featurise_cpu_s",
                         "network_cpu_s")}
    outside_ms = (total["featurise_s"] - total["network_s"] - total["decode_wait_s"]) * 1000 / images
    outside_cpu_ms = (total["featurise_cpu_s"] - total["network_cpu_s"]) * 1000 / images
    rate = images / sum(b.elapsed_s for b in builds)
    loop_rate = images / total["featurise_s"]
    rows = [["indexing, whole `catalog build` (images/s)", rate],
            ["indexing, featurise loop without finalise (images/s)", loop_rate],
            ["main process outside the network, CPU time (ms/image)", outside_cpu_ms],
            ["main process outside the network, wall time (ms/image)", outside_ms],
            ["  of which SQLite writes, wall (ms/image)", total["store_s"] * 1000 / images],
            ["network + pooling (ms/image)", total["network_s"] * 1000 / images],
            ["waiting for decoded images (ms/image)", total["decode_wait_s"] * 1000 / images]]
    if device.type == "cuda":
        rows.append(["GPU busy share of the featurise loop (%)", 100 * total["gpu_busy_s"] / total["featurise_s"]])

    echo("decode + letterbox + thumbnail alone: 1 and 2 worker processes, 2 threads")
    paths = [str(entry.path) for entry in catalog.entries]
    decode: dict[str, list[float]] = {"1 process": [], "2 processes": [], "2 threads": []}
    loads["decode_before"] = load_average()
    for _ in range(2):  # in turns, so a change of background load weighs on each
        decode["1 process"].append(decode_rate(paths, extractor.input_size, settings.batch_size, 1, True))
        decode["2 processes"].append(decode_rate(paths, extractor.input_size, settings.batch_size, 2, True))
        decode["2 threads"].append(decode_rate(paths, extractor.input_size, settings.batch_size, 2, False))
    loads["decode_after"] = load_average()
    best = {name: max(values) for name, values in decode.items()}
    scaling = best["2 processes"] / best["1 process"]
    main = Table(f"Indexing pipeline ({device.type}, {bundle.describe()}, runtime {builds[-1].timings.get('runtime')})",
                 ["measure", "value"], rows)
    main.notes += [
        f"{images} images indexed in two builds of {len(catalog.entries)} synthetic demo JPEGs (256 px), "
        f"network input {extractor.input_size} px, batches of {settings.batch_size}, {settings.workers} decoding "
        f"processes ({builds[-1].timings.get('decode_processes')} used), comparison poolings stored as by the product.",
        "Main process outside the network: what the feeding thread spends besides the device's work (forward, "
        "pooling, copy of the vectors to the host) and waiting for decoded images: building rows, SQLite writes, "
        "progress, handing batches over. CPU time = the thread's CPU time (robust to other jobs' load); wall time "
        "also counts fsync waits and being pre-empted by other processes.",
        f"Load average before/after the builds: {loads['build_before']} / {loads['build_after']} "
        f"(on {os.cpu_count()} CPUs).",
    ]
    scaling_table = Table("Decode + letterbox + thumbnail throughput", ["workers", "images/s (best of 2)"],
                          [[name, value] for name, value in best.items()] +
                          [["scaling 1 -> 2 processes (×)", scaling]])
    scaling_table.notes += [
        "Workers start inside each timing (fork), as in a build; each figure is the better of two runs in turns.",
        f"Load average before/after: {loads['decode_before']} / {loads['decode_after']} on {os.cpu_count()} CPUs; "
        "with load above the free cores, the 1 -> 2 scaling says more about the other jobs than about ours.",
    ]
    results = {"images_per_s": rate, "loop_images_per_s": loop_rate, "main_outside_network_ms_per_image": outside_ms,
               "main_outside_network_cpu_ms_per_image": outside_cpu_ms,
               "timings_s": total, "decode_images_per_s": decode, "decode_scaling_1_to_2": scaling, "loads": loads,
               "runtime": builds[-1].timings.get("runtime"),
               "gpu_busy_share": (total["gpu_busy_s"] / total["featurise_s"]) if device.type == "cuda" else None}
    bench = BenchReport("pipeline", "Pipeline: indexing around the network", [main, scaling_table],
                        machine_info(str(device)), asdict(settings), results, command)
    return finish_report(bench, started, load_before)
