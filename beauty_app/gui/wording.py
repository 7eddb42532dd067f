"""Messages from the core and the training process, reworded for the window (its buttons, not commands).

The core's user errors name command-line steps (``--resume``, ``catalog build``) because the command line
is where most of them are read; in the app the same advice points at the button that does it.
"""

from __future__ import annotations

import re

# (pattern, replacement), applied in order; the first ones catch whole phrases, the last single commands.
_REWORDINGS = [
    (r"run the same command with --resume to continue", "press Resume to continue"),
    (r"resume with --resume", "press Resume to continue"),
    (r"run `catalog build --resume` to finish it", "finish it with Resume in the Catalog tab"),
    (r"use --resume to finish it", "finish it with Resume"),
    (r"`catalog add` to update it", "Add to index (Catalog tab) to update it"),
    (r"\(`catalog add` reads them\)", "(Add to index reads them)"),
    (r"rebuild it with `catalog build`", "build it again in the Catalog tab"),
    (r"rebuild the index with `catalog build`", "build the index again in the Catalog tab"),
    (r"build one with `catalog build`", "build one in the Catalog tab"),
    (r"create one with \"beauty-app dataset mine\"", "create one with Mine in the Training tab"),
    (r"^beauty-app: (error: )?", ""),
    (r"\(run again with -v for the details and please report it\)", "(details are in the log file)"),
]


def in_app_words(message: str) -> str:
    """`message` with command-line advice replaced by what to do in the window."""
    for pattern, replacement in _REWORDINGS:
        message = re.sub(pattern, replacement, message)
    return message[:1].upper() + message[1:] if message else message
