"""The demo's data: a synthetic catalog and an index built with the demo model (`beauty-app demo`).

Everything is made on first use and reused afterwards (the catalog from a fixed seed, the index
as long as it was built with the same model), so a second run starts in seconds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..jobs import report
from ..models.presets import default_model_spec
from ..paths import cache_dir

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


def prepare_demo(workdir: str | Path | None = None, *, products: int = 60, model_spec: str | None = None,
                 device="cpu", job=None, echo=print) -> DemoSetup:
    """Generate the demo catalog and build its index where missing; returns what the demo uses."""
    from ..demo.products import generate_demo
    from ..retrieval.index import CatalogIndex
    from ..retrieval.session import build_catalog, new_extractor

    workdir = Path(workdir) if workdir else cache_dir() / "demo"
    spec, pooling = (model_spec, None) if model_spec else default_model_spec()
    data_root = workdir / f"data-{products}-seed{DEMO_SEED}"
    if not (data_root / "truth.csv").is_file():
        echo(f"Generating the demo catalog ({products} products) in {data_root} ...")
        generate_demo(data_root, n_products=products, seed=DEMO_SEED,
                      progress=lambda done, total: report(job, "generating the demo catalog", done, total))
    extractor = new_extractor(spec, pooling, device=device)
    bundle, pooling = extractor.bundle, extractor.pooling
    index_dir = workdir / f"index-{bundle.fingerprint[:12]}-{pooling}-{products}"
    ready = False
    if (index_dir / "catalog.sqlite").is_file():
        with CatalogIndex.open(index_dir) as index:
            ready = index.complete
    if not ready:
        echo(f"Indexing the demo catalog with {bundle.describe()} ({pooling}) ...")
        started = time.perf_counter()
        build_catalog(data_root / "catalog.csv", index_dir, extractor,
                      resume=(index_dir / "catalog.sqlite").exists(), job=job)
        echo(f"Index ready in {time.perf_counter() - started:.1f} s: {index_dir}")
    queries = sorted((data_root / "queries").iterdir())
    return DemoSetup(data_root, data_root / "catalog.csv", data_root / "queries", data_root / "truth.csv",
                     index_dir, spec, queries[0])
