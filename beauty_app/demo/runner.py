"""`beauty-app demo`: a synthetic catalog, an index built with the demo model, and a sample search.

Everything is made on first use and reused afterwards (the catalog from a fixed seed, the index
as long as it was built with the same model), so a second run starts in seconds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..paths import cache_dir, demo_checkpoint

log = logging.getLogger(__name__)

DEMO_SEED = 0


@dataclass
class DemoSetup:
    data_root: Path
    catalog_csv: Path
    queries_dir: Path
    truth_csv: Path
    index_dir: Path
    model_spec: str
    sample_query: Path


def default_model_spec() -> tuple[str, str]:
    """(model spec, pooling): the shipped MANet with SR-MAC, else the pretrained backbone with RA-MAC."""
    checkpoint = demo_checkpoint()
    if checkpoint.is_file():
        return str(checkpoint), "srmac"
    return "imagenet:efficientnet_lite0", "ramac"


def prepare_demo(workdir: str | Path | None = None, *, products: int = 60, model_spec: str | None = None,
                 device="cpu", job=None, echo=print) -> DemoSetup:
    """Generate the demo catalog and build its index where missing; returns what the demo uses."""
    from ..catalog_io import read_catalog
    from ..demo.products import generate_demo
    from ..models.checkpoint import load_model
    from ..retrieval.build import build_index
    from ..retrieval.extractor import FeatureExtractor
    from ..retrieval.index import CatalogIndex

    workdir = Path(workdir) if workdir else cache_dir() / "demo"
    spec, pooling = (model_spec, None) if model_spec else default_model_spec()
    data_root = workdir / f"data-{products}-seed{DEMO_SEED}"
    if not (data_root / "truth.csv").is_file():
        echo(f"Generating the demo catalog ({products} products) in {data_root} ...")
        generate_demo(data_root, n_products=products, seed=DEMO_SEED)
    bundle = load_model(spec, device=device)
    if pooling is None:
        pooling = "srmac" if bundle.has_saliency else "ramac"
    index_dir = workdir / f"index-{bundle.fingerprint[:12]}-{pooling}-{products}"
    ready = False
    if (index_dir / "catalog.sqlite").is_file():
        with CatalogIndex.open(index_dir) as index:
            ready = index.complete
    if not ready:
        echo(f"Indexing the demo catalog with {bundle.describe()} ({pooling}) ...")
        started = time.perf_counter()
        extractor = FeatureExtractor(bundle, pooling)
        build_index(read_catalog(data_root / "catalog.csv"), extractor, index_dir,
                    resume=(index_dir / "catalog.sqlite").exists(), job=job)
        echo(f"Index ready in {time.perf_counter() - started:.1f} s: {index_dir}")
    queries = sorted((data_root / "queries").iterdir())
    return DemoSetup(data_root, data_root / "catalog.csv", data_root / "queries", data_root / "truth.csv",
                     index_dir, spec, queries[0])


def run_demo(args) -> int:
    """CLI entry: headless prints the sample search; otherwise opens the window on the demo."""
    from ..cli import progress_bar
    from ..device import pick_device
    from ..retrieval.search import SearchSession

    started = time.perf_counter()
    device = pick_device(args.device)
    with progress_bar(not args.quiet) as job:
        setup = prepare_demo(args.workdir, products=args.products, model_spec=args.model, device=device, job=job)
    if not args.headless:
        try:
            from ..gui.app import run_gui
        except ImportError as exc:  # the window needs PySide6; say so instead of failing
            print(f"The window is not available ({exc}); showing the sample search here instead.")
        else:
            return run_gui(index=setup.index_dir, model=setup.model_spec, queries=[setup.sample_query],
                           presenter_samples=setup.queries_dir, device=args.device,
                           screenshot=args.screenshot, started=started)
    with SearchSession(setup.index_dir, setup.model_spec, device=device) as session:
        result = session.search_image(setup.sample_query, k=7)
    truth_line = _truth_for(setup.truth_csv, setup.sample_query.stem)
    print(f"\nSample query {setup.sample_query.name} (relevant catalog images: {', '.join(truth_line)})")
    if result.analysis.top_classes:
        print("  predicted: " + ", ".join(f"{n} {p:.0%}" for n, p in result.analysis.top_classes))
    for hit in result.hits:
        mark = "*" if hit.id in truth_line else " "
        print(f" {mark}{hit.rank}. {hit.score:.3f} {hit.id}  {hit.description[:72]}")
    print(f"(* = the same product; ready in {time.perf_counter() - started:.1f} s)")
    return 0


def _truth_for(truth_csv: Path, query_id: str) -> list[str]:
    from ..challenge_files import read_truth

    return read_truth(truth_csv).get(query_id, [])
