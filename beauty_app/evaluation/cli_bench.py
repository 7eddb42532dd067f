"""`beauty-app bench ...`: the accuracy tables, speed, ANN and build-memory benchmarks from the command line."""

from __future__ import annotations

import sys

from .bench import AccuracySettings, AnnSettings, SpeedSettings

DEFAULT_OUT = "bench_results"


def _accuracy_args(p) -> None:
    d = AccuracySettings()
    g = p.add_argument_group("accuracy (Tables A1-A3)")
    g.add_argument("--products", type=int, default=d.products, help="products in the training catalog")
    g.add_argument("--eval-products", type=int, default=d.eval_products,
                   help="unseen products in the evaluation catalog (one query photo each)")
    g.add_argument("--iterations", type=int, default=d.iterations, help="end-to-end iterations per model (paper: 500)")
    g.add_argument("--stage1-iterations", type=int, default=d.stage1_iterations,
                   help="at most this many saliency-branch iterations")
    g.add_argument("--train-batch-size", type=int, default=d.batch_size)
    g.add_argument("--input-size", type=int, default=d.input_size, help="training and retrieval input side in pixels")
    g.add_argument("--backbone", default=d.backbone, choices=["efficientnet_lite0", "resnet50", "vgg16", "tiny"])
    g.add_argument("--qe", type=int, default=d.qe, help="query expansion for the last Table A3 row (0 = leave out)")
    g.add_argument("--train-workers", type=int, default=d.workers, help="data loading processes while training")
    g.add_argument("--fp32", action="store_true", help="no mixed precision in training and feature extraction")


def _speed_args(p) -> None:
    d = SpeedSettings()
    g = p.add_argument_group("speed (indexing and query latency)")
    g.add_argument("--catalog-size", type=int, default=d.catalog_size, help="catalog images to index")
    g.add_argument("--queries", type=int, default=d.queries, help="query photos to time")
    g.add_argument("--model", default=None, help="model spec (default: the shipped demo MANet, else the ImageNet backbone)")
    g.add_argument("--pooling", default=None, choices=["gap", "mac", "spoc", "gem", "rmac", "ramac", "srmac"])
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="our indexing batch size")
    g.add_argument("--workers", type=int, default=d.workers, help="our decoding threads")


def _ann_args(p, queries_flag: str = "--queries") -> None:
    d = AnnSettings()
    g = p.add_argument_group("approximate search")
    g.add_argument("--sizes", default=",".join(str(s) for s in d.sizes), help="catalog sizes, e.g. 100000,500000")
    g.add_argument("--dim", type=int, default=d.dim, help="vector dimension (EfficientNet-Lite0: 1280)")
    g.add_argument(queries_flag, dest="ann_queries", type=int, default=d.queries,
                   help="queries for recall and batched throughput")
    g.add_argument("--latency-queries", type=int, default=d.latency_queries, help="queries timed one at a time")
    g.add_argument("--types", default=",".join(d.types), help="index types to compare (flat is always included)")
    g.add_argument("--threads", type=int, default=None, help="faiss threads for building and batched search "
                   "(default: all cores)")


def _build_args(p) -> None:
    from .bench import BuildSettings

    d = BuildSettings()
    g = p.add_argument_group("a real catalog build")
    g.add_argument("--images", type=int, default=d.images, help="catalog images to index (default %(default)s)")
    g.add_argument("--data", default=None, help="a folder made by `demo generate` to take the images from "
                   "(default: generate them under --out/build-work, kept for the next run)")
    g.add_argument("--model", default=None, help="model spec (default: the shipped demo MANet, else the ImageNet backbone)")
    g.add_argument("--pooling", default=None, choices=["gap", "mac", "spoc", "gem", "rmac", "ramac", "srmac"])
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--workers", type=int, default=d.workers, help="decoding threads (and generating processes)")
    g.add_argument("--interval", type=float, default=d.interval_s, help="seconds between memory samples")
    g.add_argument("--keep-index", action="store_true", help="keep the built index in --out/build-work/index")


def _common(p, device: bool = True) -> None:
    p.add_argument("--out", default=DEFAULT_OUT, help="folder for <name>.json, <name>.md and cached work "
                   "(default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    if device:
        p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")


def add_bench_command(subparsers) -> None:
    """Register `bench accuracy|speed|ann|build|all` on the CLI's subparsers."""
    bench = subparsers.add_parser("bench", help="benchmarks: the paper's accuracy tables, speed, ANN indexes")
    sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")

    p = sub.add_parser("accuracy", help="Tables A1-A3 (classification accuracy, pooling and pipeline MAP@7) "
                       "on generated demo data")
    _accuracy_args(p)
    _common(p)
    p.set_defaults(func=cmd_bench, benches=("accuracy",))

    p = sub.add_parser("speed", help="catalog indexing images/s and query latency, against a naive baseline")
    _speed_args(p)
    _common(p)
    p.set_defaults(func=cmd_bench, benches=("speed",))

    p = sub.add_parser("ann", help="flat / IVF / HNSW / PQ: latency, recall@7 and memory on synthetic vectors")
    _ann_args(p)
    _common(p, device=False)
    p.set_defaults(func=cmd_bench, benches=("ann",))

    p = sub.add_parser("build", help="peak and sampled memory of a real `catalog build` of generated demo images "
                       "(default 100,000)")
    _build_args(p)
    _common(p)
    p.set_defaults(func=cmd_bench, benches=("build",))

    p = sub.add_parser("all", help="accuracy, speed and ann one after another")
    _accuracy_args(p)
    _speed_args(p)
    _ann_args(p, queries_flag="--ann-queries")
    _common(p)
    p.set_defaults(func=cmd_bench, benches=("accuracy", "speed", "ann"))


def _settings(args, name: str):
    from .bench import parse_sizes

    if name == "accuracy":
        return AccuracySettings(
            products=args.products, eval_products=args.eval_products, seed=args.seed, iterations=args.iterations,
            stage1_iterations=args.stage1_iterations, batch_size=args.train_batch_size, input_size=args.input_size,
            backbone=args.backbone, qe=args.qe, workers=args.train_workers, device=args.device, amp=not args.fp32)
    if name == "build":
        from .bench import BuildSettings

        return BuildSettings(images=args.images, data=args.data, model=args.model, pooling=args.pooling,
                             batch_size=args.batch_size, workers=args.workers, device=args.device,
                             interval_s=args.interval, seed=args.seed, keep_index=args.keep_index)
    if name == "speed":
        return SpeedSettings(catalog_size=args.catalog_size, queries=args.queries, device=args.device,
                             model=args.model, pooling=args.pooling, batch_size=args.batch_size,
                             workers=args.workers, seed=args.seed)
    types = tuple(t.strip() for t in args.types.split(",") if t.strip())
    return AnnSettings(sizes=parse_sizes(args.sizes), dim=args.dim, queries=args.ann_queries,
                       latency_queries=args.latency_queries, types=types, seed=args.seed,
                       threads=args.threads)


def cmd_bench(args) -> int:
    from ..cli import progress_bar
    from . import bench
    from .bench import run_build_bench

    runners = {"accuracy": bench.run_accuracy_bench, "speed": bench.run_speed_bench, "ann": bench.run_ann_bench,
               "build": run_build_bench}
    command = bench.command_line()

    def echo(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    for name in args.benches:
        # The ANN bench can run for many minutes at 500K vectors: keep its finished rows on disk as it goes.
        extra = {"partial": lambda report: bench.write_report(report, args.out)} if name == "ann" else {}
        with progress_bar(not args.quiet) as job:
            result = runners[name](args.out, _settings(args, name), job=job, echo=echo, command=command, **extra)
        json_path, md_path = bench.write_report(result, args.out)
        print(result.to_markdown())
        print(f"Written {json_path} and {md_path}", flush=True)
    return 0
