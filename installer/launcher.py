"""Entry script of both bundle executables; the executable's name picks the mode.

``beautylens`` (built without a console on Windows/macOS) opens the window: ``beautylens [IMAGE...]``
is ``beauty-app gui [IMAGE...]``, and options such as ``--self-test`` or ``--version`` pass through.
``beauty-app`` is the command line, exactly as installed by pip. One script for both keeps a single
PyInstaller analysis (torch is slow to analyse) and one shared library folder.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

GUI_NAMES = {"beautylens"}


def _arguments(executable: str, argv: list[str]) -> list[str]:
    if Path(executable).stem.lower() not in GUI_NAMES:
        return argv
    if argv and argv[0].startswith("-") and argv[0] not in ("--index", "--model", "--device"):
        return argv  # --self-test, --version, --help: the same meaning as for beauty-app
    return ["gui", *argv]


def main() -> int:
    # Worker processes of a frozen app re-run this executable; this hands them to multiprocessing.
    multiprocessing.freeze_support()
    # A windowed executable (Windows, macOS) has no console: sys.stdout/stderr are None, and the first
    # print or log line would raise. The window logs to a file in the user's log folder instead.
    for stream in ("stdout", "stderr"):
        if getattr(sys, stream) is None:
            setattr(sys, stream, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 - lives as long as the app
    from beauty_app.cli import main as cli_main

    return cli_main(_arguments(sys.executable, sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
