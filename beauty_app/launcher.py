"""The ``beautylens`` command: the desktop app (pip's gui-script and the bundle's windowed executable).

``beautylens [IMAGE...]`` is ``beauty-app gui [IMAGE...]``; an option that stands alone, such as
``--self-test``, ``--version`` or ``--help``, means what it means for ``beauty-app``.
"""

from __future__ import annotations

import os
import sys

# Options of `beauty-app gui` that may come first: `beautylens --index DIR` still opens the window.
GUI_LEADING_OPTIONS = ("--index", "--model", "--device")


def gui_arguments(argv: list[str]) -> list[str]:
    """The ``beauty-app`` arguments that ``beautylens ARGV`` stands for."""
    if argv and argv[0].startswith("-") and argv[0] not in GUI_LEADING_OPTIONS:
        return list(argv)
    return ["gui", *argv]


def ensure_streams() -> None:
    """Give a windowed process (no console: sys.stdout/stderr are None) a sink for prints and logs.

    Without one, the first print or log line would raise; the window logs to a file in the user's
    log folder instead.
    """
    for stream in ("stdout", "stderr"):
        if getattr(sys, stream) is None:
            setattr(sys, stream, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 - lives as long as the app


def gui_main() -> int:
    """Entry point of the ``beautylens`` gui-script."""
    ensure_streams()
    from .cli import main

    return main(gui_arguments(sys.argv[1:]))
