"""Approximate search: build time, memory, latency, throughput and recall of flat / IVF / HNSW / PQ.

The indexes are the product's own (:func:`make_faiss_index`), on synthetic clustered unit vectors
(:func:`~beauty_app.evaluation.bench.data.synthetic_vectors`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from beauty_app.errors import UserError
from beauty_app.evaluation.bench.data import synthetic_vectors
from beauty_app.evaluation.bench.report import (BenchReport, Echo, Table, finish_report, load_average,
                                                machine_info, percentile_ms)
from beauty_app.jobs import JobControl, report

log = logging.getLogger(__name__)


@dataclass
class AnnSettings:
    """Sizes of the approximate-search bench."""

    sizes: tuple[int, ...] = (100_000, 500_000)
    dim: int = 1280  # EfficientNet-Lite0's feature dimension
    queries: int = 1000  # for recall@7 and batched throughput
    latency_queries: int = 200  # timed one at a time on one thread
    types: tuple[str, ...] = ("flat", "ivf", "hnsw", "pq")
    k: int = 7
    seed: int = 0
    threads: int | None = None  # faiss threads for building and batched search (default: all cores)


def _index_parameters(index) -> str:
    """The search parameters a faiss index was built with, read back from the index itself."""
    parts = []
    for name in ("nlist", "nprobe"):
        if hasattr(index, name):
            parts.append(f"{name} {getattr(index, name)}")
    pq = getattr(index, "pq", None)
    if pq is not None:
        parts.append(f"PQ {pq.M}x{pq.nbits} bit")
    hnsw = getattr(index, "hnsw", None)
    if hnsw is not None:
        parts.append(f"efConstruction {hnsw.efConstruction}, efSearch {hnsw.efSearch}")
    return ", ".join(parts) or "exact"


def _ann_report(settings: AnnSettings, results: dict[str, dict], threads: int, machine: dict,
                command: str) -> BenchReport:
    """The ANN report from the measurements so far (one table per catalog size)."""
    tables = []
    for size, per_type in results.items():
        flat_p50 = per_type["flat"]["p50_ms"]
        rows = [[kind, r["faiss_class"], r["parameters"], r["build_s"], r["memory_bytes"] / 2**20, r["bytes_per_vector"], r["p50_ms"],
                 r["p95_ms"], flat_p50 / r["p50_ms"], r["batched_qps"], r["recall_at_k"]] for kind, r in per_type.items()]
        tables.append(Table(f"{int(size):,} vectors of {settings.dim} dimensions",
                            ["index", "faiss class", "parameters", "build (s)", "memory (MiB)", "bytes/vector", "p50 (ms)",
                             "p95 (ms)", "speed-up vs flat (p50)",
                             f"batched (queries/s, {threads} thread{'' if threads == 1 else 's'})",
                             f"recall@{settings.k}"], rows))
    if tables:
        tables[-1].notes += [
            "Indexes exactly as `catalog build --index-type` makes them (`make_faiss_index`), with the parameters "
            "read back from each index; flat = exact inner-product search, the naive baseline.",
            f"Latency: {min(settings.latency_queries, settings.queries)} single queries on one thread "
            f"(`set_search_threads(1)`), top {settings.k}; batched: all {settings.queries} queries in one call on "
            f"{threads} thread(s), the same count that builds. "
            f"Recall@{settings.k}: overlap with the flat index's exact top {settings.k}.",
            "Memory: the serialized size of the index (`faiss_to_bytes`): its vectors/codes, lists and graph, which "
            "is what it holds in RAM apart from allocator overhead. It includes the IVF coarse quantiser's centroids.",
            "Vectors: synthetic, clustered in a 64-dimensional subspace (N/100 clusters) plus a little isotropic "
            "noise, L2-normalised; a stand-in for real features, whose recall for IVF/PQ can be lower.",
        ]
    return BenchReport("ann", "Approximate search: flat, IVF, HNSW and PQ indexes", tables, machine,
                       {**asdict(settings), "threads": threads}, results, command)


def run_ann_bench(out_dir: str | os.PathLike, settings: AnnSettings | None = None, *,
                  job: JobControl | None = None, echo: Echo | None = None, command: str = "",
                  partial: Callable[[BenchReport], None] | None = None) -> BenchReport:
    """Flat / IVF / HNSW / PQ (the product's :func:`make_faiss_index` settings) on synthetic vectors.

    Args:
        partial: called with the report so far after every index, so a long run that is stopped
            still leaves its finished measurements.
    """
    from beauty_app.retrieval.index import INDEX_TYPES, faiss_to_bytes, make_faiss_index, set_search_threads
    from beauty_app.evaluation.metrics import recall_at_k

    settings = settings or AnnSettings()
    echo = echo or log.info
    unknown = [t for t in settings.types if t not in INDEX_TYPES]
    if unknown:
        raise UserError(f"Unknown index type {unknown[0]!r}; choose from {', '.join(INDEX_TYPES)}.")
    if not settings.sizes or min(settings.sizes) < settings.k or settings.dim < 2 or settings.queries < 1:
        raise UserError(f"The ANN bench needs catalog sizes of at least k={settings.k}, a dimension of at least 2 "
                        f"and at least one query.")
    types = ["flat"] + [t for t in settings.types if t != "flat"]  # flat gives the exact answers
    started, load_before = time.perf_counter(), load_average()
    threads = settings.threads or os.cpu_count() or 1
    machine = machine_info("cpu (faiss)")
    results: dict[str, dict] = {}
    try:
        for size in settings.sizes:
            echo(f"{size:,} synthetic {settings.dim}-d vectors")
            clusters = max(8, size // 100)
            base = synthetic_vectors(size, settings.dim, seed=settings.seed, clusters=clusters)
            queries = synthetic_vectors(settings.queries, settings.dim, seed=settings.seed, stream=1,
                                        clusters=clusters)
            n_latency = min(settings.latency_queries, settings.queries)
            exact, per_type = None, results.setdefault(str(size), {})
            for kind in types:
                report(job, f"ann {size:,}", types.index(kind), len(types), f"building {kind}")
                set_search_threads(threads)
                t = time.perf_counter()
                index = make_faiss_index(base, kind)
                build_s = time.perf_counter() - t
                memory = len(faiss_to_bytes(index))
                t = time.perf_counter()
                _, ids = index.search(queries, settings.k)
                batched_qps = len(queries) / (time.perf_counter() - t)
                if exact is None:
                    exact = ids
                set_search_threads(1)
                latency = []
                for i in range(n_latency):
                    t = time.perf_counter()
                    index.search(queries[i:i + 1], settings.k)
                    latency.append(time.perf_counter() - t)
                per_type[kind] = {
                    "build_s": build_s, "memory_bytes": memory, "bytes_per_vector": memory / size,
                    "p50_ms": percentile_ms(latency, 50), "p95_ms": percentile_ms(latency, 95),
                    "batched_qps": batched_qps, "recall_at_k": recall_at_k(ids, exact, settings.k),
                    "faiss_class": type(index).__name__, "parameters": _index_parameters(index)}
                del index
                report(job, f"ann {size:,}", types.index(kind) + 1, len(types), f"{kind} done")
                if partial is not None:
                    so_far = _ann_report(settings, results, threads, dict(machine), command)
                    partial(finish_report(so_far, started, load_before))
            del base
    finally:
        set_search_threads(os.cpu_count() or 1)
    return finish_report(_ann_report(settings, results, threads, machine, command), started, load_before)


def parse_sizes(text: str) -> tuple[int, ...]:
    """"100000,500000" or "100k,0.5M" -> (100000, 500000)."""
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        scale = 1
        if part[-1] in "km":
            scale = 1000 if part[-1] == "k" else 1_000_000
            part = part[:-1]
        try:
            sizes.append(int(round(float(part) * scale)))
        except ValueError:
            raise UserError(f"--sizes must be comma-separated counts such as 100000,500000, not {text!r}.") from None
    if not sizes or min(sizes) < 1:
        raise UserError("--sizes must list positive counts.")
    return tuple(sizes)
