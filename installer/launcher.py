"""Entry script of both bundle executables; the executable's name picks the mode.

``beautylens`` (built without a console on Windows/macOS) opens the window: ``beautylens [IMAGE...]``
is ``beauty-app gui [IMAGE...]``, and options such as ``--self-test`` or ``--version`` pass through.
``beauty-app`` is the command line, exactly as installed by pip. One script for both keeps a single
PyInstaller analysis (torch is slow to analyse) and one shared library folder.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

GUI_NAMES = {"beautylens"}


def _arguments(executable: str, argv: list[str]) -> list[str]:
    if Path(executable).stem.lower() not in GUI_NAMES:
        return argv
    from beauty_app.launcher import gui_arguments  # the same mapping as pip's `beautylens` gui-script

    return gui_arguments(argv)


def main() -> int:
    # Worker processes of a frozen app re-run this executable; this hands them to multiprocessing.
    multiprocessing.freeze_support()
    # A windowed executable (Windows, macOS) has no console: sys.stdout/stderr are None.
    from beauty_app.launcher import ensure_streams

    ensure_streams()
    from beauty_app.cli import main as cli_main

    return cli_main(_arguments(sys.executable, sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
