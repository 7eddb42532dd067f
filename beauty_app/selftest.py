"""The checks of `beauty-app --self-test`: does an installation (a checkout, a wheel or a bundle) work?

They load the shipped model, generate a small demo catalog, index it, run one search and report
the ranking line by line. The command (:mod:`beauty_app.cli.selftest`) runs them in a temporary
folder under the user's cache directory and removes it: an installed bundle is read-only.
"""

from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path

from .paths import config_dir, data_dir, demo_checkpoint, log_dir, model_store_dir, resources_dir

log = logging.getLogger(__name__)

# Small enough to finish in seconds on a 2-core CPU, large enough that the search has to rank.
SELF_TEST_PRODUCTS = 16
SELF_TEST_K = 5


class SelfTestFailure(Exception):
    """A check of the self-test did not hold; the message says which."""


def _library_line() -> str:
    import numpy
    import torch

    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}",
             "CUDA build" if torch.version.cuda else "CPU build", f"numpy {numpy.__version__}"]
    for module in ("faiss", "timm", "torchvision", "PySide6"):
        try:
            version = getattr(__import__(module), "__version__", "?")
        except Exception as exc:  # noqa: BLE001 - a missing optional part is reported, not fatal here
            version = f"unavailable ({exc.__class__.__name__})"
        parts.append(f"{module} {version}")
    return ", ".join(parts)


def _check_shipped_files() -> list[str]:
    """The files a bundle must carry; returns report lines, raises when one is missing."""
    wanted = {"icon": resources_dir() / "icons" / "beautylens.png",
              "desktop entry": resources_dir() / "beautylens.desktop",
              "demo model": demo_checkpoint()}
    missing = [f"{what} ({path})" for what, path in wanted.items() if not path.is_file()]
    if missing:
        raise SelfTestFailure(f"Shipped files are missing: {', '.join(missing)}.")
    return [f"  resources:   {resources_dir()}", f"  model store: {model_store_dir()}"]


def _check_hits(result, truth: list[str]) -> None:
    hits = result.hits
    if len(hits) != SELF_TEST_K:
        raise SelfTestFailure(f"The search returned {len(hits)} hits instead of {SELF_TEST_K}.")
    scores = [hit.score for hit in hits]
    if not all(math.isfinite(s) for s in scores) or scores != sorted(scores, reverse=True):
        raise SelfTestFailure(f"The search scores are not finite and descending: {scores}.")
    if len({hit.id for hit in hits}) != len(hits):
        raise SelfTestFailure("The search returned the same catalog id twice.")
    if not truth:
        raise SelfTestFailure(f"The demo truth file lists no relevant image for {result.query}.")


def run_checks(workdir: str | Path, echo: Callable[[str], None] = print) -> None:
    """Run every check in order, reporting through `echo`, and work in `workdir` (an empty folder).

    Raises:
        SelfTestFailure: a check did not hold (the message says which); other exceptions are
            failures of the installation itself.
    """
    workdir = Path(workdir)
    echo(f"  libraries:   {_library_line()}")
    for line in _check_shipped_files():
        echo(line)
    echo(f"  user data:   {data_dir()}\n  settings:    {config_dir()}\n  logs:        {log_dir()}\n"
         f"  work folder: {workdir}")
    _search_demo(workdir, echo)


def _search_demo(workdir: Path, echo: Callable[[str], None]) -> None:
    from .challenge_files import read_truth
    from .demo.runner import prepare_demo
    from .device import pick_device
    from .models.checkpoint import load_model
    from .models.presets import default_model_spec
    from .retrieval.search import SearchSession

    device = pick_device("auto")
    spec, _ = default_model_spec()
    step = time.perf_counter()
    bundle = load_model(spec, device=device)
    echo(f"Model: {bundle.describe()} on {device}, loaded in {time.perf_counter() - step:.1f} s from {spec}")

    step = time.perf_counter()
    setup = prepare_demo(workdir, products=SELF_TEST_PRODUCTS, model_spec=spec, device=device,
                         echo=lambda line: echo(f"  {line}"))
    n_catalog = sum(1 for _ in (setup.data_root / "catalog").iterdir())
    echo(f"Demo catalog: {n_catalog} images of {SELF_TEST_PRODUCTS} products, indexed in "
         f"{time.perf_counter() - step:.1f} s")

    step = time.perf_counter()
    with SearchSession(setup.index_dir, setup.model_spec, device=device, bundle=bundle) as session:
        result = session.search_image(setup.sample_query, k=SELF_TEST_K)
    truth = read_truth(setup.truth_csv).get(setup.sample_query.stem, [])
    _check_hits(result, truth)
    echo(f"Search for {setup.sample_query.name} in {time.perf_counter() - step:.2f} s "
         f"(relevant: {', '.join(truth)}; * = the same product):")
    for hit in result.hits:
        mark = "*" if hit.id in truth else " "
        echo(f"  {mark}{hit.rank}. {hit.score:.4f}  {hit.id}  {hit.description[:60]}")
