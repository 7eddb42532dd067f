"""Scale: a Perfect-500K-sized catalog index, each phase measured in a fresh process.

:func:`run_scale_bench` stores N synthetic clustered vectors of the real feature dimension (1280,
EfficientNet-Lite0) through :meth:`CatalogIndex.add_items`, exactly as a build stores features,
then measures, each phase in a fresh process so that its peak memory is its own:

* finalising with ``--index-type auto`` (the search structure the memory budget chooses, its
  training, the recall@7 tuning and the checksums): time and peak RSS;
* opening the index and searching it: open time, peak RSS of a searching process, single-query
  latency p50/p95 of :meth:`CatalogIndex.search` (search structure + SQLite rows) on one thread,
  and recall@7 of new queries against exact search;
* the catalog browser's paging: the first page, the last page reached by scrolling (keyset), the
  same page by OFFSET, and filtered pages;
* what users wait for (issue 17): opening the index (its integrity record; no row is read),
  reading the rows' text for the browser's filter (once per open and change), counting a
  filter's matches (a search of that text), and adding `added` (10) images to an index of
  `add_size` (100,000) rows: staging, committing (the touched chunk rehashed) and finalising (the
  structure takes the rows in place), then the first search after it.

The peak memory of a real `catalog build` is measured by :mod:`beauty_app.evaluation.bench.build`.

Run it as ``python -m beauty_app.evaluation.bench.scale --size 500000 --out DIR`` (results in
``DIR/scale.json`` and ``DIR/scale.md``); docs/scale.md has the numbers measured here.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from beauty_app.evaluation.bench.data import synthetic_vectors
from beauty_app.evaluation.bench.report import BenchReport, Table, machine_info, percentile_ms, write_report

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
    add_size: int = 100_000  # the index that `added` rows are added to (at most `size`)
    added: int = 10


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
        from beauty_app.retrieval import index  # noqa: F401 - faiss, numpy, sqlite: counted in the baseline

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
    from beauty_app.retrieval.index import CatalogIndex, ItemRecord

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
    from beauty_app.retrieval.ann import parse_memory
    from beauty_app.retrieval.index import CatalogIndex

    s = ScaleSettings(**settings)
    started = time.perf_counter()
    with CatalogIndex.open(directory, writable=True) as index:
        # whitening=False (there is none) asks for the full pass even when the index was finalised before.
        index.finalize("auto", False, memory_budget=parse_memory(s.memory_budget))
        info = index.info()
        stored = index.settings()
    return {"seconds": time.perf_counter() - started, "info": info, "plan": stored.get("index_plan")}


def _search(directory: str, settings: dict) -> dict:
    from beauty_app.retrieval.ann import ExactNeighbours, recall
    from beauty_app.retrieval.index import CatalogIndex, set_search_threads

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
    from beauty_app.retrieval.index import CatalogIndex

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
    index.prepare_filters()  # read once per open: timed on its own in _filter_counts
    common = timed(lambda: list(index.iter_items("moisturising", limit=page)))
    rare = timed(lambda: list(index.iter_items(f"Product {s.size - 7} ", limit=page)))
    count = timed(index.count)
    filter_count = timed(lambda: index.count_items("moisturising"))
    index.close()
    return {"first_page_ms": first, "last_page_keyset_ms": last_keyset, "jump_middle_ms": jump,
            "last_page_offset_ms": last_offset, "scroll_all_s": scroll_s, "pages": s.size // page,
            "filter_common_first_page_ms": common, "filter_rare_ms": rare, "count_ms": count,
            "filter_count_ms": filter_count}


def _open(directory: str, settings: dict) -> dict:
    """Opening the index (its integrity record is checked; no catalog row is read), five times."""
    from beauty_app.retrieval.index import CatalogIndex

    times = []
    for _ in range(5):
        started = time.perf_counter()
        CatalogIndex.open(directory).close()
        times.append(time.perf_counter() - started)
    return {"first_s": times[0], "median_s": float(np.median(times))}


def _filter_counts(directory: str, settings: dict) -> dict:
    """Counting a filter's matches (the browser's scroll range), rare and common, first and repeated."""
    from beauty_app.retrieval.index import CatalogIndex

    s = ScaleSettings(**settings)
    with CatalogIndex.open(directory) as index:
        started = time.perf_counter()
        index.prepare_filters()  # the rows' text, read once per open (and after each change)
        result = {"prepare_ms": (time.perf_counter() - started) * 1000}
        for name, text in (("rare", f"Product {s.size - 7} "), ("common", "moisturising"), ("short", "50")):
            started = time.perf_counter()
            count = index.count_items(text)
            first = time.perf_counter() - started
            started = time.perf_counter()
            index.count_items(text)
            result[name] = {"text": text, "matches": count, "first_ms": first * 1000,
                            "again_ms": (time.perf_counter() - started) * 1000}
        result["text_index"] = index.store.has_text_index()
    return result


def _add(directory: str, settings: dict) -> dict:
    """Add `added` rows to a finalised index as `catalog add` does, timed step by step; then take them out again."""
    from beauty_app.retrieval.index import CatalogIndex, ItemRecord

    s = ScaleSettings(**settings)
    vectors = synthetic_vectors(s.added, s.dim, seed=s.seed, stream=99, clusters=_clusters(s))
    records = [ItemRecord(f"added{i:03d}", f"catalog/added{i}.jpg", f"Added product {i}", "moisturizer", v)
               for i, v in enumerate(vectors)]
    times = {}
    started = time.perf_counter()
    with CatalogIndex.open(directory, writable=True) as index:
        times["open_s"] = time.perf_counter() - started
        mark = time.perf_counter()
        index.add_items(records, staged=True)
        times["stage_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        index.commit_staged()
        times["commit_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        index.finalize()
        times["finalize_s"] = time.perf_counter() - mark
        times["total_s"] = time.perf_counter() - started
        times["structure"] = index.info()["structure"]
    mark = time.perf_counter()
    with CatalogIndex.open(directory) as index:  # the first search loads the structure and applies the rows
        found = [hits[0].id for hits in index.search(vectors, k=1)]
        times["first_search_after_s"] = time.perf_counter() - mark
    times["found_added"] = sum(a == r.id for a, r in zip(found, records))
    mark = time.perf_counter()
    with CatalogIndex.open(directory, writable=True) as index:  # leave the index as it was for the next run
        index.remove_items([r.id for r in records])
        index.finalize()
    times["remove_s"] = time.perf_counter() - mark
    return times


def _prepare(work: Path, size: int, settings: ScaleSettings, plain: dict, echo, results: dict, key: str,
             name: str = "index") -> Path:
    """A populated index of `size` rows in `work` (reused from an earlier run with the same settings)."""
    directory = work / f"{name}-{size}x{settings.dim}"
    marker = directory / "scale-settings.json"
    wanted = {"size": size, "dim": settings.dim, "seed": settings.seed}
    if settings.reuse and marker.is_file() and \
            {k: v for k, v in json.loads(marker.read_text()).items() if k != "finalized"} == wanted:
        echo(f"reusing the {size:,}-row database in {directory}")
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    echo(f"storing {size:,} synthetic {settings.dim}-d vectors through CatalogIndex.add_items")
    results[key], results[f"{key}_peak_rss_mib"] = in_fresh_process(_populate, str(directory), {**plain, "size": size})
    marker.write_text(json.dumps(wanted))
    return directory


# ---------------------------------------------------------------------------- the bench
def run_scale_bench(out_dir: str | os.PathLike, settings: ScaleSettings | None = None, *, echo=None,
                    command: str = "", **_ignored) -> BenchReport:
    """Build, finalise, search and page a synthetic catalog index of `settings.size` vectors."""
    settings = settings or ScaleSettings()
    echo = echo or log.info
    started = time.perf_counter()
    work = Path(out_dir) / "scale-work"
    plain = asdict(settings)
    results: dict = {}
    directory = _prepare(work, settings.size, settings, plain, echo, results, "populate")
    echo("finalising with --index-type auto")
    results["finalize"], results["finalize_peak_rss_mib"] = in_fresh_process(_finalize, str(directory), plain)
    echo("opening")
    results["open"], _ = in_fresh_process(_open, str(directory), plain)
    echo("opening and searching")
    results["search"], results["search_peak_rss_mib"] = in_fresh_process(_search, str(directory), plain)
    echo("paging the catalog browser")
    results["paging"], _ = in_fresh_process(_paging, str(directory), plain)
    results["filter_counts"], _ = in_fresh_process(_filter_counts, str(directory), plain)
    add_size = min(settings.add_size, settings.size)
    add_dir = _prepare(work, add_size, settings, plain, echo, results, "populate_add", name="add-index")
    with_size = {**plain, "size": add_size}
    if not json.loads((add_dir / "scale-settings.json").read_text()).get("finalized"):
        echo(f"finalising the {add_size:,}-row index")
        in_fresh_process(_finalize, str(add_dir), with_size)
        (add_dir / "scale-settings.json").write_text(json.dumps(
            {"size": add_size, "dim": settings.dim, "seed": settings.seed, "finalized": True}))
    echo(f"adding {settings.added} images to the {add_size:,}-row index")
    results["add"], _ = in_fresh_process(_add, str(add_dir), with_size)
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
                     ["open time (s, the integrity record: no row is read)", search["open_s"]],
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
        ["filter matching one row (first page)", paging["filter_rare_ms"]],
        ["row count", paging["count_ms"]],
        ["counting the matches of a filter matching every row (the browser's scroll range)",
         paging["filter_count_ms"]]])
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
    add, opened, counts = results["add"], results["open"], results["filter_counts"]
    waits = Table("What users wait for (issue 17 targets: open < 0.5 s, add 10 to 100K < 1 s, filter count < 20 ms)",
                  ["measure", "value"], [
                      [f"open the {settings.size:,}-row index (s, median of 5; first)", opened["median_s"]],
                      ["  the first of the 5 opens (s)", opened["first_s"]],
                      [f"add {settings.added} images to a {add_size:,}-row index: total (s)", add["total_s"]],
                      ["  open for writing (s)", add["open_s"]],
                      ["  stage the rows (s)", add["stage_s"]],
                      ["  commit (the touched chunk rehashed) (s)", add["commit_s"]],
                      ["  finalise (the structure takes the rows in place) (s)", add["finalize_s"]],
                      ["  first search after the add (load the structure file, apply the rows) (s)",
                       add["first_search_after_s"]],
                      [f"  added rows found at rank 1 (of {settings.added})", add["found_added"]],
                      [f"read the rows' text for filters, once per open and change (ms; {settings.size:,} rows)",
                       counts["prepare_ms"]],
                      [f"count a rare filter's matches at {settings.size:,} (ms; {counts['rare']['matches']} match)",
                       counts["rare"]["first_ms"]],
                      [f"count a filter matching every row (ms; {counts['common']['matches']:,} matches)",
                       counts["common"]["first_ms"]],
                      [f"count a 2-character filter (ms; {counts['short']['matches']:,} matches)",
                       counts["short"]["first_ms"]]])
    waits.notes.append(f"Structure of the {add_size:,}-row index: {add['structure']}. The added rows are removed "
                       f"again afterwards ({add['remove_s']:.2f} s) so that the next run starts from the same index. "
                       f"Text index (FTS5 trigram) present: {counts['text_index']} (kept, not used by the filter).")
    bench = BenchReport("scale", "Scale: a Perfect-500K-sized catalog index", [main, browse, waits],
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m beauty_app.evaluation.bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=ScaleSettings.size)
    parser.add_argument("--dim", type=int, default=ScaleSettings.dim)
    parser.add_argument("--memory-budget", default=ScaleSettings.memory_budget)
    parser.add_argument("--queries", type=int, default=ScaleSettings.queries)
    parser.add_argument("--out", default="bench_results")
    parser.add_argument("--add-size", type=int, default=ScaleSettings.add_size,
                        help="rows of the index that --added images are added to")
    parser.add_argument("--added", type=int, default=ScaleSettings.added)
    parser.add_argument("--no-reuse", action="store_true", help="store the vectors again even if a database is there")
    args = parser.parse_args(argv)
    settings = ScaleSettings(size=args.size, dim=args.dim, memory_budget=args.memory_budget, queries=args.queries,
                             reuse=not args.no_reuse, add_size=args.add_size, added=args.added)
    bench = run_scale_bench(args.out, settings, echo=lambda m: print(m, file=sys.stderr, flush=True),
                            command="python -m beauty_app.evaluation.bench.scale " + " ".join(argv or sys.argv[1:]))
    json_path, md_path = write_report(bench, args.out)
    print(bench.to_markdown())
    print(f"Written {json_path} and {md_path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
