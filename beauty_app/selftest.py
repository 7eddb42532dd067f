"""`beauty-app --self-test`: prove that an installation (a checkout, a wheel or a frozen bundle) works.

It loads the shipped model, generates a small demo catalog, indexes it, runs one search and prints
the ranking. Everything it writes goes to a temporary folder under the user's cache directory
(platformdirs) and is removed afterwards: an installed bundle is read-only and must stay untouched.
"""

from __future__ import annotations

import logging
import math
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .paths import cache_dir, config_dir, data_dir, demo_checkpoint, log_dir, model_store_dir, resources_dir

log = logging.getLogger(__name__)

# Small enough to finish in seconds on a 2-core CPU, large enough that the search has to rank.
SELF_TEST_PRODUCTS = 16
SELF_TEST_K = 5

EXIT_OK = 0
EXIT_FAILED = 1


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


def run_self_test(*, echo: Callable[[str], None] = print, keep: bool = False) -> int:
    """Load the model, index a small demo catalog, search it once and print the result.

    Args:
        echo: where report lines go (stdout by default).
        keep: keep the temporary working folder (its path is printed) for inspection.

    Returns:
        0 when every check passed, 1 otherwise (the reason is printed to stderr).
    """
    started = time.perf_counter()
    frozen = bool(getattr(sys, "frozen", False))
    echo(f"BeautyLens {__version__} self-test ({'bundle' if frozen else 'Python install'}: {sys.executable})")
    cache_dir().mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="self-test-", dir=cache_dir()))
    try:
        echo(f"  libraries:   {_library_line()}")
        for line in _check_shipped_files():
            echo(line)
        echo(f"  user data:   {data_dir()}\n  settings:    {config_dir()}\n  logs:        {log_dir()}\n"
             f"  work folder: {workdir}")
        _search_demo(workdir, echo)
    except Exception as exc:  # noqa: BLE001 - any failure ends the self-test with a reason, not a crash
        log.debug("self-test failed", exc_info=True)
        print(f"Self-test FAILED after {time.perf_counter() - started:.1f} s: {exc}", file=sys.stderr)
        if not isinstance(exc, SelfTestFailure):
            traceback.print_exc(file=sys.stderr)
        return EXIT_FAILED
    finally:
        if keep:
            echo(f"  (kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    echo(f"Self-test passed in {time.perf_counter() - started:.1f} s.")
    return EXIT_OK


def _search_demo(workdir: Path, echo: Callable[[str], None]) -> None:
    from .challenge_files import read_truth
    from .demo.runner import default_model_spec, prepare_demo
    from .device import pick_device
    from .models.checkpoint import load_model
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
