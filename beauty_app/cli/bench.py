"""`beauty-app bench ...`: the accuracy tables, training recipes, speed, ANN, build-memory, scale and attention-map
benchmarks.

Options left out are None here and take the defaults of the bench's settings dataclass
(:class:`beauty_app.evaluation.bench.AccuracySettings` and its siblings), so the defaults live in one
place and building the parser imports no bench module (they import torch).
"""

from __future__ import annotations

import argparse
import sys

from .common import (POOLING_CHOICES, add_command, add_device_option, device_name, device_of, folder_or_new,
                     input_side, non_negative_int, positive_int, print_json)

DEFAULT_OUT = "bench_results"
BACKBONE_CHOICES = ["efficientnet_lite0", "resnet50", "vgg16", "tiny"]


def _accuracy_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("accuracy (Tables A1-A3)")
    g.add_argument("--products", type=positive_int, help="products in the training catalog")
    g.add_argument("--eval-products", type=positive_int,
                   help="unseen products in the evaluation catalog (one query photo each)")
    g.add_argument("--iterations", type=positive_int, help="end-to-end iterations per model (paper: 500)")
    g.add_argument("--stage1-iterations", type=non_negative_int, help="at most this many saliency-branch iterations")
    g.add_argument("--train-batch-size", type=positive_int)
    g.add_argument("--input-size", type=input_side, help="training and retrieval input side in pixels")
    g.add_argument("--backbone", choices=BACKBONE_CHOICES)
    g.add_argument("--qe", type=non_negative_int, help="query expansion for the last Table A3 row (0 = leave out)")
    g.add_argument("--train-workers", type=non_negative_int, help="data loading processes while training")
    g.add_argument("--fp32", action="store_true", help="no mixed precision in training and feature extraction")


def _recipes_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training recipes (cross-domain instance retrieval)")
    g.add_argument("--products", type=positive_int, help="products in the training catalog")
    g.add_argument("--eval-products", type=positive_int,
                   help="unseen products in the evaluation catalog (one query photo each; default 300)")
    g.add_argument("--iterations", type=positive_int, help="end-to-end iterations per model (paper: 500)")
    g.add_argument("--stage1-iterations", type=non_negative_int, help="at most this many saliency-branch iterations")
    g.add_argument("--train-batch-size", type=positive_int,
                   help="images per training step (the instance recipe: half as many photo/catalog pairs)")
    g.add_argument("--input-size", type=input_side, help="training and retrieval input side in pixels")
    g.add_argument("--backbone", choices=BACKBONE_CHOICES)
    g.add_argument("--train-workers", type=non_negative_int, help="data loading processes while training")
    g.add_argument("--fp32", action="store_true", help="no mixed precision in training and feature extraction")


def _speed_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("speed (indexing and query latency)")
    g.add_argument("--catalog-size", type=positive_int, help="catalog images to index")
    g.add_argument("--queries", type=positive_int, help="query photos to time")
    g.add_argument("--model", help="model spec (default: the shipped demo MANet, else the ImageNet backbone)")
    g.add_argument("--pooling", choices=POOLING_CHOICES)
    g.add_argument("--batch-size", type=positive_int, help="our indexing batch size")
    g.add_argument("--workers", type=positive_int, help="our decoding processes")
    g.add_argument("--runtime", help="our indexing runtime: auto (default), torch, torch-channels-last, "
                   "torch-compile, onnxruntime, openvino")
    g.add_argument("--compile", action="store_true", help="also time torch.compile (minutes on a small CPU)")


def _pipeline_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("indexing pipeline")
    g.add_argument("--images", type=positive_int, help="catalog images to index")
    g.add_argument("--model", help="model spec (default: a random tiny MANet standing in for a fast GPU)")
    g.add_argument("--batch-size", type=positive_int)
    g.add_argument("--workers", type=positive_int, help="decoding processes")
    g.add_argument("--runtime", help="indexing runtime (default torch)")


def _ann_args(p: argparse.ArgumentParser, queries_flag: str = "--queries") -> None:
    g = p.add_argument_group("approximate search")
    g.add_argument("--sizes", help="catalog sizes, e.g. 100000,500000")
    g.add_argument("--dim", type=positive_int, help="vector dimension (EfficientNet-Lite0: 1280)")
    g.add_argument(queries_flag, dest="ann_queries", type=positive_int, help="queries for recall and batched throughput")
    g.add_argument("--latency-queries", type=positive_int, help="queries timed one at a time")
    g.add_argument("--types", help="index types to compare, e.g. flat,ivf,hnsw,pq (flat is always included)")
    g.add_argument("--threads", type=positive_int, help="faiss threads for building and batched search "
                   "(default: all cores)")


def _build_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a real catalog build")
    g.add_argument("--images", type=positive_int, help="catalog images to index")
    g.add_argument("--data", help="a folder made by `demo generate` to take the images from "
                   "(default: generate them under --out/build-work, kept for the next run)")
    g.add_argument("--model", help="model spec (default: the shipped demo MANet, else the ImageNet backbone)")
    g.add_argument("--pooling", choices=POOLING_CHOICES)
    g.add_argument("--batch-size", type=positive_int)
    g.add_argument("--workers", type=positive_int, help="decoding threads (and generating processes)")
    g.add_argument("--interval", type=float, help="seconds between memory samples")
    g.add_argument("--keep-index", action="store_true", help="keep the built index in --out/build-work/index")


def _scale_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a Perfect-500K-sized index")
    g.add_argument("--size", type=positive_int, help="catalog rows (default 500,000)")
    g.add_argument("--add-size", type=positive_int, help="rows of the index that --added images are added to (default 100,000)")
    g.add_argument("--added", type=positive_int, help="images added (default 10)")
    g.add_argument("--dim", type=positive_int, help="vector dimension (EfficientNet-Lite0: 1280)")
    g.add_argument("--memory-budget", help="search structure budget (default 1GiB)")
    g.add_argument("--queries", dest="scale_queries", type=positive_int, help="single queries timed (default 200)")
    g.add_argument("--no-reuse", action="store_true", help="store the vectors again even if a database is there")


def _common(p: argparse.ArgumentParser, device: bool = True) -> None:
    p.add_argument("--out", default=DEFAULT_OUT, type=folder_or_new, help="folder for <name>.json, <name>.md and cached work "
                   "(default %(default)s)")
    p.add_argument("--seed", type=int)
    if device:
        p.add_argument("--device", type=device_name, help="auto (the default: CUDA, then MPS, then CPU), cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print the reports as one JSON object instead of the tables")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `bench accuracy|recipes|speed|pipeline|ann|build|scale|maps|startup|all` to the top-level sub-commands."""
    bench = add_command(subparsers, "bench", help="benchmarks: the paper's accuracy tables, speed, ANN indexes")
    sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")

    p = add_command(sub, "accuracy", help="Tables A1-A3 (classification accuracy, pooling and pipeline MAP@7) "
                       "on generated demo data")
    _accuracy_args(p)
    _common(p)
    p.set_defaults(func=cmd_bench, benches=("accuracy",))

    p = add_command(sub, "recipes", help="cross-domain instance retrieval (MAP@7 +- s.e., paired differences): "
                       "off-the-shelf, fine-tuned, MANet on the paper recipe and on the instance recipe")
    _recipes_args(p)
    _common(p)
    p.set_defaults(func=cmd_bench, benches=("recipes",))

    p = add_command(sub, "speed", help="catalog indexing images/s and query latency, against a naive baseline")
    _speed_args(p)
    _common(p)
    p.set_defaults(func=cmd_bench, benches=("speed",))

    p = add_command(sub, "pipeline", help="indexing around the network: main-process ms/image outside it, "
                       "decode scaling from 1 to 2 processes, GPU busy share on CUDA")
    _pipeline_args(p)
    _common(p)
    p.set_defaults(func=cmd_bench, benches=("pipeline",))

    p = add_command(sub, "ann", help="flat / IVF / HNSW / PQ: latency, recall@7 and memory on synthetic vectors")
    _ann_args(p)
    _common(p, device=False)
    p.set_defaults(func=cmd_bench, benches=("ann",))

    p = add_command(sub, "build", help="peak and sampled memory of a real `catalog build` of generated demo images "
                       "(default 100,000)")
    _build_args(p)
    _common(p)
    p.set_defaults(func=cmd_bench, benches=("build",))

    p = add_command(sub, "maps", help="do the saliency and text maps look at the product and its text? "
                       "Scores on real photos against product boxes and OCR text boxes, with a contact sheet")
    p.add_argument("--photos", required=True, help="folder of photos (the queries of a real-photo set)")
    p.add_argument("--boxes", help="CSV of product boxes photo,x0,y0,x1,y1 in relative coordinates "
                   "(e.g. tests/data/real_photo_boxes.csv); without it only the text map is scored")
    p.add_argument("--model", help="model spec (default: the shipped demo MANet, else the ImageNet backbone)")
    p.add_argument("--out", default=f"{DEFAULT_OUT}/maps", help="folder for maps.json, maps_per_photo.csv and "
                   "maps_sheet.png (default %(default)s)")
    p.add_argument("--figure", type=lambda value: [name.strip() for name in value.split(",") if name.strip()],
                   default=[], metavar="PHOTO[,PHOTO...]",
                   help="also draw these photos (file names) with both maps into maps_figure.png, e.g. for a README")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_device_option(p)
    p.set_defaults(func=cmd_bench_maps)

    p = add_command(sub, "scale", help="a 500,000-row index of synthetic vectors: finalise, open, search, browse, "
                       "filter counts, and adding 10 images to a 100,000-row index")
    _scale_args(p)
    _common(p, device=False)
    p.set_defaults(func=cmd_bench, benches=("scale",))

    p = add_command(sub, "startup", help="wall time of `python -m beauty_app --version` and `--help` in fresh "
                       "processes (median, p90) with the load average")
    p.add_argument("--runs", type=positive_int, default=10, help="runs of each command (default 10)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_bench_startup)

    p = add_command(sub, "all", help="accuracy, speed and ann one after another")
    _accuracy_args(p)
    _speed_args(p)
    _ann_args(p, queries_flag="--ann-queries")
    _common(p)
    p.set_defaults(func=cmd_bench, benches=("accuracy", "speed", "ann"))


def _given(**values):
    """The options given on the command line (None = left out: the settings' default applies)."""
    return {name: value for name, value in values.items() if value is not None}


def _settings(args: argparse.Namespace, name: str):
    """The settings of bench `name` from the options given."""
    common = {"seed": args.seed}
    if name == "accuracy":
        from ..evaluation.bench import AccuracySettings

        return AccuracySettings(**_given(
            products=args.products, eval_products=args.eval_products, iterations=args.iterations,
            stage1_iterations=args.stage1_iterations, batch_size=args.train_batch_size, input_size=args.input_size,
            backbone=args.backbone, qe=args.qe, workers=args.train_workers, device=args.device,
            amp=False if args.fp32 else None, **common))
    if name == "recipes":
        from ..evaluation.bench import RecipeSettings

        return RecipeSettings(**_given(
            products=args.products, eval_products=args.eval_products, iterations=args.iterations,
            stage1_iterations=args.stage1_iterations, batch_size=args.train_batch_size, input_size=args.input_size,
            backbone=args.backbone, workers=args.train_workers, device=args.device,
            amp=False if args.fp32 else None, **common))
    if name == "build":
        from ..evaluation.bench import BuildSettings

        return BuildSettings(**_given(
            images=args.images, data=args.data, model=args.model, pooling=args.pooling, batch_size=args.batch_size,
            workers=args.workers, device=args.device, interval_s=args.interval,
            keep_index=args.keep_index or None, **common))
    if name == "scale":
        from ..evaluation.bench.scale import ScaleSettings

        return ScaleSettings(**_given(
            size=args.size, add_size=args.add_size, added=args.added, dim=args.dim, memory_budget=args.memory_budget,
            queries=args.scale_queries, reuse=False if args.no_reuse else None, **common))
    if name == "speed":
        from ..evaluation.bench import SpeedSettings

        return SpeedSettings(**_given(
            catalog_size=args.catalog_size, queries=args.queries, device=args.device, model=args.model,
            pooling=args.pooling, batch_size=args.batch_size, workers=args.workers, runtime=args.runtime,
            compile=args.compile or None, **common))
    if name == "pipeline":
        from ..evaluation.bench import PipelineSettings

        return PipelineSettings(**_given(images=args.images, device=args.device, model=args.model,
                                         batch_size=args.batch_size, workers=args.workers, runtime=args.runtime,
                                         **common))
    from ..evaluation.bench import AnnSettings, parse_sizes

    types = None if args.types is None else tuple(t.strip() for t in args.types.split(",") if t.strip())
    return AnnSettings(**_given(
        sizes=None if args.sizes is None else parse_sizes(args.sizes), dim=args.dim, queries=args.ann_queries,
        latency_queries=args.latency_queries, types=types, threads=args.threads, **common))


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benches asked for; each writes <name>.json and <name>.md to --out and prints its tables."""
    from ..evaluation import bench
    from ..evaluation.bench import run_build_bench, run_pipeline_bench
    from .progress import progress_bar

    runners = {"accuracy": bench.run_accuracy_bench, "recipes": bench.run_recipes_bench, "speed": bench.run_speed_bench,
               "ann": bench.run_ann_bench, "build": run_build_bench, "pipeline": run_pipeline_bench}
    if "scale" in args.benches:
        from ..evaluation.bench.scale import run_scale_bench

        runners["scale"] = run_scale_bench
    command = bench.command_line()

    def echo(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    reports = {}
    for name in args.benches:
        # The ANN bench can run for many minutes at 500K vectors: keep its finished rows on disk as it goes.
        extra = {"partial": lambda report: bench.write_report(report, args.out)} if name == "ann" else {}
        with progress_bar(not args.quiet) as job:
            result = runners[name](args.out, _settings(args, name), job=job, echo=echo, command=command, **extra)
        json_path, md_path = bench.write_report(result, args.out)
        if args.json:
            reports[name] = {**result.as_dict(), "files": {"json": str(json_path), "markdown": str(md_path)}}
            continue
        print(result.to_markdown())
        print(f"Written {json_path} and {md_path}", flush=True)
    if args.json:
        print_json({"benches": reports})
    return 0


def cmd_bench_maps(args: argparse.Namespace) -> int:
    """Score the app's attention maps on real photos; prints the table and writes it with a contact sheet."""
    from ..evaluation.attention_maps import format_summary, read_boxes, run_maps_bench
    from ..models.presets import default_model_spec
    from ..retrieval.search import query_files_in
    from ..retrieval.session import new_extractor
    from .progress import progress_bar

    photos = query_files_in(args.photos)
    boxes = read_boxes(args.boxes) if args.boxes else None
    extractor = new_extractor(args.model or default_model_spec()[0], device=device_of(args))
    bundle = extractor.bundle
    with progress_bar(not args.quiet) as job:
        result = run_maps_bench(extractor, photos, boxes, args.out, job=job, figure_photos=args.figure)
    if args.json:
        print_json({"model": str(bundle.spec), "summary": result.summary, "text_detector": result.text_detector,
                    "files": {label: str(path) for label, path in result.files.items()}})
        return 0
    print(f"model: {bundle.spec} ({bundle.describe()})")
    print(format_summary(result.summary))
    print(f"text detector: {result.text_detector}")
    for label, path in result.files.items():
        print(f"{label}: {path}")
    return 0


def cmd_bench_startup(args: argparse.Namespace) -> int:
    """Time the command line's start in fresh processes and print median/p90 with the load average."""
    from ..evaluation.bench.startup import format_startup, run_startup_bench

    result = run_startup_bench(args.runs)
    if args.json:
        print_json(result)
    else:
        print(format_startup(result))
    return 0
