"""Sane bounds for numbers that come from arguments and files, checked before anything is allocated.

A crafted checkpoint, index or command line can name any number; these bounds keep what the app
allocates for them finite and small. Nothing here imports torch, so the command line checks its
arguments with them at parse time.
"""

from __future__ import annotations

#: Network input side in pixels: below it the backbones' feature maps vanish; above it one image's
#: activations alone take gigabytes.
MIN_INPUT_SIZE = 32
MAX_INPUT_SIZE = 2048
#: Extraction scales multiply the input side.
MAX_SCALE = 4.0
#: Classes a checkpoint may have (the challenge has 44; the classifier is num_classes x features).
MAX_CLASSES = 100_000
#: Results a search may ask for per query.
MAX_RESULTS = 100_000


def input_size_problem(value: object) -> str | None:
    """Why `value` is not a usable input side, or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be a whole number of pixels, not {value!r}"
    if not MIN_INPUT_SIZE <= value <= MAX_INPUT_SIZE:
        return f"must be from {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE} pixels, not {value}"
    return None
