"""`beauty-app --self-test`: prove that an installation (a checkout, a wheel or a frozen bundle) works.

The checks are :func:`beauty_app.selftest.run_checks`; this runs them in a temporary folder under
the user's cache directory (platformdirs), removes it afterwards, and turns the outcome into a
report and an exit status.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from .. import __version__

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1


def run_self_test(*, echo: Callable[[str], None] = print, keep: bool = False) -> int:
    """Load the model, index a small demo catalog, search it once and print the result.

    Args:
        echo: where report lines go (stdout by default).
        keep: keep the temporary working folder (its path is printed) for inspection.

    Returns:
        0 when every check passed, 1 otherwise (the reason is printed to stderr).
    """
    from ..paths import cache_dir
    from ..selftest import SelfTestFailure, run_checks

    started = time.perf_counter()
    frozen = bool(getattr(sys, "frozen", False))
    echo(f"BeautyLens {__version__} self-test ({'bundle' if frozen else 'Python install'}: {sys.executable})")
    cache_dir().mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="self-test-", dir=cache_dir()))
    try:
        run_checks(workdir, echo)
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
