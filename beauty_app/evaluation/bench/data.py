"""The data benches run on: generated demo catalogs (cached by their settings) and synthetic vectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from beauty_app.evaluation.bench.report import Echo
from beauty_app.jobs import JobControl, report


def _settings_match(path: Path, settings: dict) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")) == settings
    except (OSError, ValueError):
        return False


def _write_settings(path: Path, settings: dict) -> None:
    path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def cached_demo_data(folder: Path, settings: dict, echo: Echo, job: JobControl | None, **kwargs):
    """A generated demo catalog in `folder`, reused when it was made with the same settings."""
    from beauty_app.demo.products import DemoDataset, generate_demo

    marker = folder / "bench-settings.json"
    if _settings_match(marker, settings) and (folder / "truth.csv").is_file():
        return DemoDataset(folder, folder / "catalog.csv", folder / "queries", folder / "truth.csv", None,
                           settings["n_products"], -1, -1)  # counts unknown without reading; not needed
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished or foreign folder: stale files would mix in
    echo(f"generating {settings['n_products']} demo products in {folder}")
    stage = f"generate {folder.name}"
    dataset = generate_demo(folder, progress=lambda done, total: report(job, stage, done, total), **kwargs)
    _write_settings(marker, settings)
    return dataset


def synthetic_vectors(n: int, dim: int, *, seed: int = 0, stream: int = 0, clusters: int | None = None,
                      latent: int = 64) -> np.ndarray:
    """Clustered L2-normalised float32 vectors, a stand-in for CNN retrieval features.

    Points are drawn around cluster centres in a `latent`-dimensional space, mapped to `dim`
    dimensions by a fixed random orthonormal map, given a little isotropic noise and normalised:
    a strongly decaying spectrum like real descriptors, unlike isotropic noise. The centres and the
    map depend only on (seed, dim, clusters); `stream` draws other points (queries) from them.
    """
    latent = min(latent, dim)
    clusters = clusters or max(8, n // 100)
    shape_rng = np.random.default_rng([seed, dim, clusters])
    basis = np.linalg.qr(shape_rng.standard_normal((dim, latent)))[0].T.astype(np.float32)
    centres = shape_rng.standard_normal((clusters, latent)).astype(np.float32)
    rng = np.random.default_rng([seed, dim, clusters, stream + 1])
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 50_000):  # chunks bound the temporary memory at 500K x 1280
        m = min(50_000, n - start)
        z = centres[rng.integers(0, clusters, m)] + 0.5 * rng.standard_normal((m, latent), dtype=np.float32)
        block = z @ basis + 0.02 * rng.standard_normal((m, dim), dtype=np.float32)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def cross_domain_data(settings, work: Path, echo: Echo, job: JobControl | None):
    """The accuracy and recipes benches' data: a training catalog mined into categories, and a catalog
    of other (unseen) products with one query photo each to retrieve from.

    Folder names carry the settings (products, seed, image size), so cached models and indexes, which
    name their data by path, never meet data made with other settings. `settings` needs products,
    eval_products, seed, image_size and min_images.

    Returns:
        (eval_data, eval_dir, mined): the evaluation DemoDataset, its folder and the MinedDataset.
    """
    from beauty_app.training.mining import MinedDataset, mine_dataset

    train_dir = work / f"train-{settings.products}p-seed{settings.seed}-{settings.image_size}px"
    train_data = cached_demo_data(train_dir, {"n_products": settings.products, "seed": settings.seed,
                                              "image_size": settings.image_size}, echo, job,
                                  n_products=settings.products, seed=settings.seed, image_size=settings.image_size)
    # Another seed gives other products; not seed + 1000, which made the shipped demo model's training catalog.
    eval_seed = settings.seed + 7919
    eval_dir = work / f"eval-{settings.eval_products}p-seed{eval_seed}-{settings.image_size}px"
    eval_data = cached_demo_data(eval_dir, {"n_products": settings.eval_products, "seed": eval_seed,
                                            "image_size": settings.image_size, "query_fraction": 1.0},
                                 echo, job, n_products=settings.eval_products, seed=eval_seed,
                                 image_size=settings.image_size, query_fraction=1.0)
    mined_dir = train_dir / f"mined-min{settings.min_images}"
    if (mined_dir / "stats.json").is_file():
        mined = MinedDataset.load(mined_dir)
    else:
        echo("mining the training catalog's descriptions into categories")
        mined = mine_dataset(train_data.catalog_csv, mined_dir, keywords="default", min_images=settings.min_images,
                             seed=settings.seed, workers=2, job=job)
    return eval_data, eval_dir, mined
