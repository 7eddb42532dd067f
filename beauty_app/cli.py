"""The `beauty-app` command line: parses arguments, calls the core, maps user errors to exit 2."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from . import __version__
from .errors import UserError

log = logging.getLogger("beauty_app")

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


# ---------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def progress_bar(enabled: bool = True):
    """A JobControl whose events drive a tqdm bar on stderr (one bar per stage)."""
    from tqdm import tqdm

    from .jobs import JobControl

    bars: dict[str, tqdm] = {}

    def on_progress(event):
        if not enabled:
            return
        bar = bars.get(event.stage)
        if bar is None:
            for other in bars.values():
                other.close()
            if event.stage == "read catalog":  # bytes of the catalog CSV
                options = {"unit": "B", "unit_scale": True, "unit_divisor": 1024}
            else:
                counts_images = event.stage in ("index", "search", "generate", "mine", "masks", "scan folder")
                options = {"unit": "img" if counts_images else "step"}
            bar = bars[event.stage] = tqdm(total=event.total, desc=event.stage, file=sys.stderr,
                                           dynamic_ncols=True, leave=True, **options)
        bar.total = event.total
        bar.n = event.done
        if event.message:
            bar.set_postfix_str(event.message, refresh=False)
        bar.refresh()

    job = JobControl(on_progress, min_interval_s=0.1)
    try:
        yield job
    finally:
        for bar in bars.values():
            bar.close()


@contextlib.contextmanager
def progress_jsonl(min_interval_s: float = 0.5):
    """A JobControl that prints each progress event as one JSON object on stdout (for scripts and benches)."""
    from .jobs import JobControl

    started = time.perf_counter()

    def on_progress(event):
        print(json.dumps({"event": "progress", "stage": event.stage, "done": event.done, "total": event.total,
                          "message": event.message, "t": round(time.perf_counter() - started, 3)}), flush=True)

    yield JobControl(on_progress, min_interval_s=min_interval_s)


def progress_for(args):
    """The progress reporter --progress/-q asks for: a terminal bar, JSON lines on stdout, or nothing."""
    if getattr(args, "progress", "bar") == "jsonl":
        return progress_jsonl()
    return progress_bar(not args.quiet and getattr(args, "progress", "bar") != "none")


def _device(args):
    """The torch device named by --device (CUDA, then MPS, then CPU for "auto")."""
    from .device import pick_device

    return pick_device(getattr(args, "device", "auto"))


def _print_json(data) -> None:
    print(json.dumps(data, indent=None, ensure_ascii=False))


def _summary_lines(summary) -> list[str]:
    lines = [f"Indexed {summary.indexed} images in {summary.elapsed_s:.1f} s ({summary.rate:.1f} img/s)"
             + (f", {summary.already_done} were already done" if summary.already_done else "")
             + f"; the index holds {summary.info.get('count', 0)} images."]
    lines += [f"Note: {note}" for note in summary.notes]
    if summary.skipped:
        lines.append(f"Skipped {len(summary.skipped)} files:")
        lines += [f"  {item}: {reason}" for item, reason in summary.skipped[:50]]
        if len(summary.skipped) > 50:
            lines.append(f"  ... and {len(summary.skipped) - 50} more (see `catalog info --skipped`)")
    return lines


def _parse_scales(text: str) -> tuple[float, ...]:
    try:
        scales = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"--scales must be comma-separated numbers such as 1,0.707, not {text!r}.") from None
    if not scales or any(s <= 0 for s in scales):
        raise UserError("--scales must be positive numbers.")
    return scales


# ---------------------------------------------------------------------------- commands
def _index_options(args) -> dict:
    """--index-type, --memory-budget, --recall-target and --whiten as build/merge keyword arguments."""
    from .retrieval.ann import parse_memory

    # --whiten alone (0) learns full-dimension whitening; --whiten N also reduces to N dimensions.
    whitening = None if args.whiten is None else (True if args.whiten == 0 else args.whiten)
    if args.recall_target is not None and not 0 < args.recall_target <= 1:
        raise UserError("--recall-target must be above 0 and at most 1, e.g. 0.95.")
    return {"index_type": args.index_type, "whitening": whitening,
            "memory_budget": None if args.memory_budget is None else parse_memory(args.memory_budget),
            "recall_target": args.recall_target}


def _print_build(args, summary, header: bool = True) -> None:
    if args.json:
        _print_json({"indexed": summary.indexed, "already_done": summary.already_done,
                     "skipped": [{"item": i, "reason": r} for i, r in summary.skipped],
                     "elapsed_s": round(summary.elapsed_s, 3), "notes": summary.notes, "index": summary.info})
    else:
        if header:
            print("\n".join(_summary_lines(summary)))
        info = summary.info
        if info.get("structure"):
            recall = info.get("recall_at_7")
            measured = isinstance(recall, float) and not info["structure"].startswith("exact")
            print(f"Search structure: {info['structure']}" + (f", {info['index_size']}" if info.get("index_size") else "")
                  + (f"; recall@7 {recall:.3f} against exact search" if measured else "") + ".")


def cmd_catalog_build(args) -> int:
    from .catalog_io import read_catalog
    from .models.checkpoint import load_model
    from .retrieval.build import build_index
    from .retrieval.extractor import FeatureExtractor

    if (args.out is None) == (args.shard_out is None):
        raise UserError("Give either --out (one index) or --shard-out (this process's shard of a distributed build).")
    if args.shard is not None and args.shard_out is None:
        raise UserError("--shard needs --shard-out.")
    options = _index_options(args)
    distributed = None
    if args.shard_out is not None:
        from .retrieval.shards import distributed_from_environment, parse_shard

        distributed = distributed_from_environment(parse_shard(args.shard) if args.shard else None)
    try:
        device = _device(args)
        if distributed is not None and distributed.world > 1 and device.type == "cuda" and device.index is None:
            import torch

            device = torch.device("cuda", distributed.local_rank % torch.cuda.device_count())  # one GPU per process
        # The model first: a wrong --model or --pooling fails at once, not after reading a large catalog.
        bundle = load_model(args.model, device=device)
        extractor = FeatureExtractor(bundle, args.pooling, batch_size=args.batch_size, use_amp=not args.fp32,
                                     scales=_parse_scales(args.scales), input_size=args.input_size,
                                     decode_workers=args.workers)
        quiet_rank = distributed is not None and distributed.rank != 0
        with (progress_bar(False) if quiet_rank else progress_for(args)) as job:
            catalog = read_catalog(args.catalog, allow_outside_root=args.allow_outside_root, job=job)
        if not catalog.entries:
            raise UserError(f"The catalog {args.catalog} lists no usable images.")
        if distributed is not None:
            return _build_shard(args, catalog, extractor, distributed)
        with progress_for(args) as job:
            summary = build_index(catalog, extractor, args.out, resume=args.resume, job=job, **options)
    finally:
        if distributed is not None:
            distributed.close()
    _print_build(args, summary)
    return 0


def _build_shard(args, catalog, extractor, distributed) -> int:
    """This process's shard of a distributed build; every process checks the others read the same catalog."""
    from .retrieval.shards import build_shard, catalog_fingerprint

    rank, world = distributed.rank, distributed.world
    fingerprints = distributed.gather(catalog_fingerprint(catalog))
    if len(set(fingerprints)) > 1:
        raise UserError("The processes of this build read different catalogs; give every node the same catalog file.")
    with progress_bar(not args.quiet and rank == 0) as job:
        summary = build_shard(catalog, extractor, args.shard_out, rank, world, job=job)
    counts = distributed.gather((summary.indexed, summary.already_done, len(summary.skipped)))
    if args.json:
        _print_json({"shard": summary.info.get("shard"), "indexed": summary.indexed,
                     "already_done": summary.already_done, "elapsed_s": round(summary.elapsed_s, 3),
                     "skipped": [{"item": i, "reason": r} for i, r in summary.skipped], "notes": summary.notes})
    elif rank == 0 or len(counts) == 1:
        indexed, done, skipped = (sum(c[i] for c in counts) for i in range(3))
        print(f"All {world} shards written to {args.shard_out}" if len(counts) > 1 else
              f"Shard {rank} of {world} written to {args.shard_out}")
        print(f"Indexed {indexed} images in {summary.elapsed_s:.1f} s" + (f", {done} were already done" if done else "")
              + (f"; {skipped} files skipped" if skipped else "") + ".")
        print(f"Merge the shards with: beauty-app catalog merge --shards {args.shard_out} --out INDEX_DIR")
    return 0


def cmd_catalog_merge(args) -> int:
    from .retrieval.shards import merge_shards

    with progress_bar(not args.quiet) as job:
        summary = merge_shards(args.shards, args.out, job=job, **_index_options(args))
    if not args.json:
        shards = summary.info.get("merged_shards")
        print(f"Merged {summary.indexed} images from {shards} shards in {summary.elapsed_s:.1f} s"
              + (f", {summary.already_done} were already merged" if summary.already_done else "")
              + f"; the index holds {summary.info.get('count', 0)} images"
              + (f" and lists {len(summary.skipped)} skipped files (see `catalog info --skipped`)."
                 if summary.skipped else "."))
    _print_build(args, summary, header=args.json)
    return 0


def cmd_catalog_add(args) -> int:
    from .catalog_io import read_catalog
    from .models.checkpoint import load_model
    from .retrieval.build import add_to_index
    from .retrieval.extractor import FeatureExtractor
    from .retrieval.index import CatalogIndex

    with CatalogIndex.open(args.index) as index:
        settings = index.settings()
    bundle = load_model(settings["model_spec"], device=_device(args))
    extractor = FeatureExtractor(bundle, settings["pooling"], batch_size=args.batch_size, use_amp=not args.fp32,
                                 scales=settings.get("scales") or (1.0,), input_size=settings.get("input_size"))
    with progress_bar(not args.quiet) as job:
        catalog = read_catalog(args.catalog, allow_outside_root=args.allow_outside_root, job=job)
        summary = add_to_index(catalog, extractor, args.index, job=job)
    print("\n".join(_summary_lines(summary)))
    return 0


def cmd_catalog_remove(args) -> int:
    from .retrieval.build import remove_from_index

    removed = remove_from_index(args.index, args.ids)
    print(f"Removed {removed} of {len(args.ids)} ids from {args.index}.")
    return 0


def cmd_catalog_info(args) -> int:
    from .retrieval.index import CatalogIndex

    with CatalogIndex.open(args.index) as index:
        info = index.info()
        skipped = index.skipped()
    if args.json:
        _print_json({**info, "skipped_items": [{"item": i, "reason": r} for i, r in skipped]})
        return 0
    for key, value in info.items():
        print(f"{key:>12}: {value}")
    if args.skipped:
        for item, reason in skipped:
            print(f"  skipped {item}: {reason}")
    return 0


def cmd_search(args) -> int:
    from .retrieval.search import SearchSession

    with SearchSession(args.index, args.model, device=_device(args)) as session:
        results = []
        for image in args.images:
            result = session.search_image(image, k=args.k, query_expansion=args.qe)
            results.append(result)
            if args.json:
                _print_json(result.as_dict())
                continue
            print(f"Query {image}")
            if result.analysis and result.analysis.top_classes:
                guesses = ", ".join(f"{name} {p:.0%}" for name, p in result.analysis.top_classes)
                print(f"  predicted: {guesses}")
            for hit in result.hits:
                print(f"  {hit.rank:>2}. {hit.score:.4f}  {hit.id}  {hit.description[:70]}  ({hit.path})")
    return 0


def cmd_eval(args) -> int:
    from .catalog_io import write_ranking
    from .evaluation.evaluate import evaluate
    from .retrieval.search import SearchSession

    with SearchSession(args.index, args.model, device=_device(args)) as session, progress_bar(not args.quiet) as job:
        report = evaluate(session, args.queries, args.truth, k=args.k, denominator=args.denominator,
                          query_expansion=args.qe, job=job)
    if args.ranking_out:
        write_ranking(args.ranking_out, report.rankings)
    if args.json:
        _print_json(report.as_dict())
        return 0
    result = report.result
    print(f"MAP@{result.k} = {result.value:.4f} over {len(result.per_query)} queries "
          f"(denominator: {result.denominator}; {report.elapsed_s:.1f} s)")
    if result.missing_queries:
        print(f"{len(result.missing_queries)} queries had no ranking (AP 0): {', '.join(result.missing_queries[:10])}")
    for query, reason in report.failures:
        print(f"  could not read query {query}: {reason}")
    print("Worst queries:")
    for query, ap in report.worst(args.worst):
        print(f"  {query}: AP {ap:.3f}")
    if args.ranking_out:
        print(f"Ranking written to {args.ranking_out}")
    return 0


def cmd_score(args) -> int:
    from .catalog_io import read_ranking, read_truth
    from .evaluation.metrics import mean_average_precision

    truth = read_truth(args.truth)
    ranking = read_ranking(args.ranking)
    result = mean_average_precision(ranking, truth, k=args.k, denominator=args.denominator)
    if args.json:
        _print_json({"map": result.value, "k": result.k, "denominator": result.denominator,
                     "queries": len(result.per_query), "missing_queries": result.missing_queries,
                     "per_query": result.per_query})
    else:
        print(f"MAP@{result.k} = {result.value:.4f} over {len(result.per_query)} queries "
              f"(denominator: {result.denominator})")
        if result.missing_queries:
            print(f"{len(result.missing_queries)} truth queries have no ranking row and count as AP 0.")
    return 0


def cmd_demo_generate(args) -> int:
    from .demo.products import generate_demo

    with progress_bar(not args.quiet) as job:
        dataset = generate_demo(args.out, n_products=args.products, seed=args.seed, image_size=args.size,
                                workers=args.workers,
                                progress=lambda done, total: job.report("generate", done, total))
    print(f"Wrote {dataset.n_catalog} catalog images of {dataset.n_products} products and {dataset.n_queries} "
          f"query photos to {dataset.root}")
    print(f"  catalog: {dataset.catalog_csv}\n  queries: {dataset.queries_dir}\n  truth:   {dataset.truth_csv}")
    return 0


def cmd_gui(args) -> int:
    import time

    from .gui.app import run_gui

    started = time.perf_counter()
    queries = ([args.query] if args.query else []) + list(args.images)
    if args.screenshot and not (queries and args.index):
        raise UserError("--screenshot needs --index DIR and --query IMAGE (the search to show).")
    for query in queries:
        if not Path(query).is_file():
            raise UserError(f"Query image {query} does not exist.")
    return run_gui(index=args.index, model=args.model, queries=queries, device=args.device,
                   screenshot=args.screenshot, started=started)


def cmd_demo(args) -> int:
    from .demo.runner import run_demo

    return run_demo(args)


# ---------------------------------------------------------------------------- parser
def _add_index_options(p) -> None:
    p.add_argument("--index-type", default="auto", choices=["auto", "flat", "ivf", "hnsw", "pq"],
                   help="auto (default): exact search for small catalogs, else the most accurate IVF index that "
                        "fits --memory-budget, tuned to --recall-target; flat = always exact")
    p.add_argument("--memory-budget", default=None, metavar="SIZE",
                   help="memory the search structure may take with --index-type auto, e.g. 1GiB or 800M "
                        "(default 1GiB)")
    p.add_argument("--recall-target", type=float, default=None, metavar="R",
                   help="recall@7 against exact search that auto tunes for (default 0.95)")
    p.add_argument("--whiten", type=int, nargs="?", const=0, default=None, metavar="DIM",
                   help="learn PCA whitening on the catalog (optionally reduced to DIM dimensions)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beauty-app", description="BeautyLens: find a beauty product in a "
                                     "catalog from a photo (MANet + SR-MAC retrieval).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    parser.add_argument("--self-test", action="store_true",
                        help="load the model, search a small demo catalog once, print the result and exit")
    # Not required by argparse so that --self-test can stand alone; main() asks for a COMMAND otherwise.
    sub = parser.add_subparsers(dest="command", required=False, metavar="COMMAND")

    def common(p, device=True):
        if device:
            p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    catalog = sub.add_parser("catalog", help="build and maintain a catalog index")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")

    build = catalog_sub.add_parser("build", help="featurise a catalog CSV or image folder into an index")
    build.add_argument("--catalog", required=True, help="CSV with id,path,description[,category] or an image folder")
    build.add_argument("--model", required=True, help="checkpoint path or imagenet:<backbone>")
    build.add_argument("--pooling", default="srmac", choices=["gap", "mac", "spoc", "gem", "rmac", "ramac", "srmac"])
    build.add_argument("--out", default=None, help="index directory to create")
    _add_index_options(build)
    build.add_argument("--scales", default="1", help="multi-scale extraction factors, e.g. 1,0.707,1.414")
    build.add_argument("--input-size", type=int, default=None, help="network input side (default: the model's)")
    build.add_argument("--batch-size", type=int, default=16)
    build.add_argument("--workers", type=int, default=2, help="parallel image decoders")
    build.add_argument("--fp32", action="store_true", help="disable bf16/fp16 autocast")
    build.add_argument("--resume", action="store_true", help="finish an interrupted build in --out")
    build.add_argument("--allow-outside-root", action="store_true",
                       help="let catalog CSV paths point outside the CSV's folder")
    build.add_argument("--json", action="store_true", help="print the summary as JSON")
    build.add_argument("--progress", default="bar", choices=["bar", "jsonl", "none"],
                       help="terminal bar (default), one JSON object per progress step on stdout, or nothing")
    build.add_argument("--shard-out", default=None, metavar="DIR",
                       help="write this process's shard of a distributed build into DIR (under torchrun: one "
                            "process per GPU or node, each takes every WORLD-th catalog row); then `catalog merge`")
    build.add_argument("--shard", default=None, metavar="RANK/WORLD",
                       help="with --shard-out and without torchrun: write shard RANK of WORLD (e.g. 0/4)")
    common(build)
    build.set_defaults(func=cmd_catalog_build)

    merge = catalog_sub.add_parser("merge", help="merge the shards of a distributed build into one index")
    merge.add_argument("--shards", required=True, nargs="+", metavar="DIR",
                       help="shard folders, or folders holding shard-* folders (the --shard-out of each node)")
    merge.add_argument("--out", required=True, help="index directory to create (run again to finish an interrupted merge)")
    _add_index_options(merge)
    merge.add_argument("--json", action="store_true", help="print the summary as JSON")
    merge.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    merge.set_defaults(func=cmd_catalog_merge)

    add = catalog_sub.add_parser("add", help="add new or changed images of a catalog to an index")
    add.add_argument("--index", required=True)
    add.add_argument("--catalog", required=True)
    add.add_argument("--batch-size", type=int, default=16)
    add.add_argument("--fp32", action="store_true")
    add.add_argument("--allow-outside-root", action="store_true")
    common(add)
    add.set_defaults(func=cmd_catalog_add)

    remove = catalog_sub.add_parser("remove", help="remove catalog ids from an index")
    remove.add_argument("--index", required=True)
    remove.add_argument("ids", nargs="+", metavar="ID")
    remove.set_defaults(func=cmd_catalog_remove)

    info = catalog_sub.add_parser("info", help="describe an index")
    info.add_argument("--index", required=True)
    info.add_argument("--skipped", action="store_true", help="list skipped files with reasons")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_catalog_info)

    search = sub.add_parser("search", help="rank catalog images for query photos")
    search.add_argument("--index", required=True)
    search.add_argument("images", nargs="+", metavar="IMAGE")
    search.add_argument("-k", type=int, default=7, help="results per query (default 7)")
    search.add_argument("--qe", type=int, default=0, metavar="N", help="query expansion with the top N results")
    search.add_argument("--model", default=None, help="model spec (default: the index's own)")
    search.add_argument("--json", action="store_true", help="one JSON object per query")
    common(search)
    search.set_defaults(func=cmd_search)

    evaluate = sub.add_parser("eval", help="MAP@k of an index on a folder of queries with a truth CSV")
    evaluate.add_argument("--index", required=True)
    evaluate.add_argument("--queries", required=True, help="folder of query images (id = file stem)")
    evaluate.add_argument("--truth", required=True, help="challenge ground-truth CSV")
    evaluate.add_argument("-k", type=int, default=7)
    evaluate.add_argument("--denominator", default="nrel", choices=["nrel", "min", "hits"])
    evaluate.add_argument("--qe", type=int, default=0, metavar="N")
    evaluate.add_argument("--model", default=None)
    evaluate.add_argument("--ranking-out", default=None, help="write the ranking in the submission format")
    evaluate.add_argument("--worst", type=int, default=5, help="how many worst queries to list")
    evaluate.add_argument("--json", action="store_true")
    common(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    score = sub.add_parser("score", help="MAP@k of a ranking file against a truth file")
    score.add_argument("--truth", required=True)
    score.add_argument("--ranking", required=True)
    score.add_argument("-k", type=int, default=7)
    score.add_argument("--denominator", default="nrel", choices=["nrel", "min", "hits"],
                       help="nrel: the paper's (all relevant images); min: min(k, Nrel); hits: hits in the top k")
    score.add_argument("--json", action="store_true")
    score.set_defaults(func=cmd_score)

    from .training.cli_dataset import add_dataset_commands
    from .training.cli_train import add_train_command
    from .evaluation.cli_bench import add_bench_command

    add_dataset_commands(sub)
    add_train_command(sub)
    add_bench_command(sub)

    gui = sub.add_parser("gui", help="open the desktop app")
    gui.add_argument("--index", default=None, help="index to open (default: the last one)")
    gui.add_argument("--model", default=None, help="model spec (default: the index's own)")
    gui.add_argument("--device", default="auto")
    gui.add_argument("--query", default=None, metavar="IMAGE", help="a photo to search first")
    gui.add_argument("--screenshot", default=None, metavar="PNG",
                     help="save the window after the first search (of --query) as PNG and quit")
    gui.add_argument("images", nargs="*", metavar="IMAGE", help="photos to search (the first is shown)")
    gui.set_defaults(func=cmd_gui)

    demo = sub.add_parser("demo", help="the demo: synthetic catalog, index and a sample search")
    demo.add_argument("--workdir", default=None, help="where demo data and index live (default: user cache)")
    demo.add_argument("--headless", action="store_true", help="print the sample search instead of opening a window")
    demo.add_argument("--products", type=int, default=60)
    demo.add_argument("--model", default=None, help="model spec (default: the shipped demo checkpoint)")
    demo.add_argument("--screenshot", default=None, metavar="PNG",
                      help="save the window after the first search as PNG and quit (timing and docs)")
    common(demo)
    demo.set_defaults(func=cmd_demo)
    demo_sub = demo.add_subparsers(dest="demo_command", metavar="ACTION")
    generate = demo_sub.add_parser("generate", help="write a synthetic beauty-product catalog, queries and truth")
    generate.add_argument("--out", required=True)
    generate.add_argument("--products", type=int, default=60)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--size", type=int, default=256, help="image side in pixels")
    generate.add_argument("--workers", type=int, default=1)
    generate.add_argument("-q", "--quiet", action="store_true")
    generate.set_defaults(func=cmd_demo_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `beauty-app` and `python -m beauty_app`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.command is None) != bool(args.self_test):
        parser.error("--self-test takes no COMMAND" if args.self_test else "the following arguments are required: COMMAND")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.self_test:
        from .selftest import run_self_test

        return run_self_test()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"beauty-app: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("beauty-app: interrupted; finished work is kept (use --resume to continue).", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into `head` and friends: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
