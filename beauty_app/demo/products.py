"""The synthetic demo dataset: an offline stand-in for Perfect-500K, written by :func:`generate_demo`.

Each product is a kind (lipstick, tube, jar, ...) plus its own proportions, colours and printed
label (:mod:`.names`, drawn by :mod:`.drawing`). The catalog domain shows it on a white e-commerce
background (1-3 views, each with a Perfect-500K style title); the query domain shows it as a
"real photo": cluttered background, rotation, perspective, re-lighting, occlusion, blur, sensor
noise and JPEG artefacts (:mod:`.photos`). This module lays out the files: catalog CSV, images,
query photos, challenge-format truth, optional masks.

All randomness comes from ``numpy.random.Generator`` streams seeded by ``(seed, stream, index)``,
so the same arguments give byte-identical files, with or without worker processes.
"""

from __future__ import annotations


import csv
import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path


import numpy as np
from PIL import Image


from beauty_app.demo.names import KINDS, describe, make_products
from beauty_app.demo.photos import query_photo_jpeg, render_catalog_image
from beauty_app.errors import UserError


log = logging.getLogger(__name__)


@dataclass
class DemoDataset:
    """Where ``generate_demo`` put the files, and how many of each it wrote."""

    root: Path
    catalog_csv: Path
    queries_dir: Path
    truth_csv: Path
    masks_dir: Path | None
    n_products: int
    n_catalog: int
    n_queries: int


def _render_job(job: tuple) -> None:
    """Render and write one file; top-level so that worker processes can run it."""
    what, idx, product, view, size, seed, path, mask_path = job
    if what == "c":
        img, mask = render_catalog_image(product, view, size, np.random.default_rng([seed, 1, idx]))
        img.save(path, "JPEG", quality=92)
        if mask_path is not None:
            Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path, "PNG")
    else:  # the photo's JPEG bytes are written as they are, not re-encoded
        data, _ = query_photo_jpeg(product, size, np.random.default_rng([seed, 2, idx]))
        Path(path).write_bytes(data)


def _run_jobs(jobs: list[tuple], workers: int, progress: Callable[[int, int], None] | None) -> None:
    if workers > 1:
        # spawn, not fork: the caller may hold torch threads or a Qt application. A pool that cannot
        # start (e.g. the main script is stdin) breaks instead of hanging, and output does not depend
        # on where a job ran, so we then simply render everything here.
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                for done, _ in enumerate(pool.map(_render_job, jobs, chunksize=8), 1):
                    if progress:
                        progress(done, len(jobs))
            return
        except BrokenProcessPool:
            log.warning("demo: worker processes failed to start; rendering in this process instead")
    for done, job in enumerate(jobs, 1):
        _render_job(job)
        if progress:
            progress(done, len(jobs))


def generate_demo(out_dir: str | Path, *, n_products: int = 60, views_per_product: tuple[int, int] = (1, 3),
                  query_fraction: float = 0.5, queries_per_product: int = 1, image_size: int = 256,
                  seed: int = 0, kinds: Sequence[str] | None = None, save_masks: bool = False,
                  workers: int = 1, progress: Callable[[int, int], None] | None = None) -> DemoDataset:
    """Write a synthetic catalog, query photos and challenge-format truth under ``out_dir``.

    Catalog ids ("c000000") are shuffled so they do not reveal which views belong together.
    Products without queries stay in the catalog as distractors. Files of the same names are
    overwritten. The same arguments give byte-identical files for any number of ``workers``.

    Raises:
        UserError: when an argument is out of range, a kind is unknown or ``out_dir`` cannot be made.
    """
    lo, hi = views_per_product
    kinds = tuple(kinds) if kinds else KINDS
    if n_products < 1 or not 1 <= lo <= hi or queries_per_product < 0 or not 0.0 <= query_fraction <= 1.0:
        raise UserError("The demo needs at least one product, 1 <= min views <= max views "
                        "and a query fraction between 0 and 1.")
    if image_size < 64:
        raise UserError(f"The demo image size must be at least 64 pixels, not {image_size}.")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise UserError(f"Unknown product kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}.")

    root = Path(out_dir)
    cat_dir, q_dir = root / "catalog", root / "queries"
    masks_dir = root / "masks" if save_masks else None
    try:
        for d in filter(None, (cat_dir, q_dir, masks_dir)):
            d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"Cannot create the demo folder {root}: {exc.strerror or exc}.") from exc

    products = make_products(n_products, seed, kinds)
    rng = np.random.default_rng([seed, 3])
    n_views = rng.integers(lo, hi + 1, size=n_products)
    shots = [(pi, v) for pi in range(n_products) for v in range(int(n_views[pi]))]
    shots = [shots[k] for k in rng.permutation(len(shots))]
    n_asked = round(query_fraction * n_products)
    asked = sorted(int(i) for i in rng.choice(n_products, size=n_asked, replace=False))
    queries = [pi for pi in asked for _ in range(queries_per_product)]
    queries = [queries[k] for k in rng.permutation(len(queries))]

    jobs, rows, views_of = [], [], {}
    for k, (pi, v) in enumerate(shots):
        cid, p = f"c{k:06d}", products[pi]
        views_of.setdefault(pi, []).append(cid)
        rows.append((cid, f"catalog/{cid}.jpg", describe(p, v, np.random.default_rng([seed, 4, k])), p.kind))
        jobs.append(("c", k, p, v, image_size, seed, str(cat_dir / f"{cid}.jpg"),
                     str(masks_dir / f"{cid}.png") if masks_dir else None))
    for k, pi in enumerate(queries):
        jobs.append(("q", k, products[pi], 0, image_size, seed, str(q_dir / f"q{k:06d}.jpg"), None))

    _run_jobs(jobs, workers, progress)

    catalog_csv, truth_csv = root / "catalog.csv", root / "truth.csv"
    with catalog_csv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("id", "path", "description", "category"))
        writer.writerows(rows)
    with truth_csv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("Validation Image ID", "Training Image ID"))
        writer.writerows([f"q{k:06d}", *sorted(views_of[pi])] for k, pi in enumerate(queries))
    log.info("demo: %d products, %d catalog images, %d queries in %s",
             n_products, len(shots), len(queries), root)
    return DemoDataset(root=root, catalog_csv=catalog_csv, queries_dir=q_dir, truth_csv=truth_csv,
                       masks_dir=masks_dir, n_products=n_products, n_catalog=len(shots),
                       n_queries=len(queries))
