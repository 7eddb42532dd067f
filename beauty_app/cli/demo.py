"""`beauty-app demo [generate]`: the demo (synthetic catalog, index, a sample search) and its data."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import add_command, add_device_option, device_of, folder_or_new, positive_int, print_json, whole_number
from .progress import progress_bar


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `demo` and `demo generate` to the top-level sub-commands."""
    demo = add_command(subparsers, "demo", help="the demo: synthetic catalog, index and a sample search")
    demo.add_argument("--workdir", default=None, type=folder_or_new, help="where demo data and index live (default: user cache)")
    demo.add_argument("--headless", action="store_true", help="print the sample search instead of opening a window")
    demo.add_argument("--products", type=positive_int, default=60)
    demo.add_argument("--model", default=None, help="model spec (default: the shipped demo checkpoint)")
    demo.add_argument("--screenshot", default=None, metavar="PNG",
                      help="save the window after the first search as PNG and quit (timing and docs)")
    add_device_option(demo)
    demo.set_defaults(func=cmd_demo)
    actions = demo.add_subparsers(dest="demo_command", metavar="ACTION")

    generate = add_command(actions, "generate", help="write a synthetic beauty-product catalog, queries and truth")
    generate.add_argument("--out", required=True, type=folder_or_new)
    generate.add_argument("--products", type=positive_int, default=60)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--size", type=whole_number(64, 4096, "a number of pixels"), default=256, help="image side in pixels")
    generate.add_argument("--workers", type=positive_int, default=1)
    generate.add_argument("--json", action="store_true", help="print what was written as JSON")
    generate.set_defaults(func=cmd_demo_generate)


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo: the window opens at once and builds the demo data with a progress bar; headless prints the search."""
    if not args.headless:
        from ..cpu_threads import prefer_sleeping_waits

        prefer_sleeping_waits()  # before torch loads (the imports below): the window's searches stay steady
    from ..demo.runner import prepare_demo
    from ..models.open_set import outside_categories, rule_for
    from ..retrieval.search import SearchSession

    started = time.perf_counter()
    device = device_of(args)
    if not args.headless:
        from ..gui.system_libraries import window_problem

        problem = window_problem()  # said at once, not after the demo data is prepared
        if problem:
            print(f"{problem} Showing the sample search here instead.")
            args.headless = True
    if not args.headless:
        try:
            from ..gui.app import run_gui
            from ..gui.worker import DemoRequest
        except ImportError as exc:  # the window needs PySide6; say so instead of failing
            print(f"The window is not available ({exc}); showing the sample search here instead.")
        else:
            workdir = str(args.workdir) if args.workdir else None
            return run_gui(demo=DemoRequest(workdir, args.products, args.model), device=args.device,
                           screenshot=args.screenshot)
    with progress_bar(not args.quiet) as job:
        setup = prepare_demo(args.workdir, products=args.products, model_spec=args.model, device=device, job=job)
    with SearchSession(setup.index_dir, setup.model_spec, device=device) as session:
        result = session.search_image(setup.sample_query, k=7)
        open_set = rule_for(session.bundle.metadata)
    relevant = _relevant_to(setup.truth_csv, setup.sample_query.stem)
    print(f"\nSample query {setup.sample_query.name} (relevant catalog images: {', '.join(relevant)})")
    if result.analysis.top_classes:
        print("  predicted: " + ", ".join(f"{n} {p:.0%}" for n, p in result.analysis.top_classes))
        if outside_categories(result.analysis.top_classes[0][1], open_set):
            print(f"  not one of the model's categories ({open_set.describe()})")
    for hit in result.hits:
        mark = "*" if hit.id in relevant else " "
        print(f" {mark}{hit.rank}. {hit.score:.3f} {hit.id}  {hit.description[:72]}")
    print(f"(* = the same product; ready in {time.perf_counter() - started:.1f} s)")
    return 0


def _relevant_to(truth_csv: Path, query_id: str) -> list[str]:
    from ..challenge_files import read_truth

    return read_truth(truth_csv).get(query_id, [])


def cmd_demo_generate(args: argparse.Namespace) -> int:
    """Write a synthetic catalog, query photos and a truth file."""
    from ..demo.products import generate_demo

    with progress_bar(not args.quiet) as job:
        dataset = generate_demo(args.out, n_products=args.products, seed=args.seed, image_size=args.size,
                                workers=args.workers,
                                progress=lambda done, total: job.report("generate", done, total))
    if args.json:
        print_json({"root": str(dataset.root), "products": dataset.n_products, "catalog_images": dataset.n_catalog,
                    "queries": dataset.n_queries, "catalog_csv": str(dataset.catalog_csv),
                    "queries_dir": str(dataset.queries_dir), "truth_csv": str(dataset.truth_csv)})
        return 0
    print(f"Wrote {dataset.n_catalog} catalog images of {dataset.n_products} products and {dataset.n_queries} "
          f"query photos to {dataset.root}")
    print(f"  catalog: {dataset.catalog_csv}\n  queries: {dataset.queries_dir}\n  truth:   {dataset.truth_csv}")
    return 0
