"""What every command shares: -v/-q anywhere on the line, the device option, JSON output, scales.

Nothing here imports torch or another heavy library: building the parser must stay cheap, so
that `beauty-app --help` and `--version` answer at once. Handlers import what they use.
"""

from __future__ import annotations

import argparse
import json
import os
import re

from ..errors import UserError
from ..limits import MAX_INPUT_SIZE, MAX_RESULTS, MAX_SCALE, MIN_INPUT_SIZE

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

POOLING_CHOICES = ["gap", "mac", "spoc", "gem", "rmac", "ramac", "srmac"]


def _verbosity_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a sub-command's parser must not reset a -v/-q given before the sub-command.
    parent.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log details to stderr")
    parent.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or messages")
    return parent


#: -v/-q, accepted before and after every sub-command (main() fills in False when absent).
VERBOSITY = _verbosity_parent()


def add_command(subparsers: argparse._SubParsersAction, name: str, **kwargs) -> argparse.ArgumentParser:
    """A sub-command parser that accepts -v/-q like every other (and reports usage errors in one line)."""
    return subparsers.add_parser(name, parents=[VERBOSITY], **kwargs)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr, like every other user error."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------------------------------
# Argument types: a bad value is refused while the line is parsed, before any work starts.


def whole_number(minimum: int | None = None, maximum: int | None = None, what: str = "a whole number"):
    """An argparse type for an int in [minimum, maximum]; refuses (never clamps) anything else."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None
        if minimum is not None and value < minimum or maximum is not None and value > maximum:
            bounds = (f"from {minimum:,} to {maximum:,}" if maximum is not None and minimum is not None
                      else f"at least {minimum:,}" if minimum is not None else f"at most {maximum:,}")
            raise argparse.ArgumentTypeError(f"must be {bounds}, not {value:,}")
        return value

    return parse


#: Sizes and counts: a batch, a number of decoders, results per query.
positive_int = whole_number(1)
non_negative_int = whole_number(0)
results_count = whole_number(1, MAX_RESULTS)
input_side = whole_number(MIN_INPUT_SIZE, MAX_INPUT_SIZE, "a number of pixels")

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")


def device_name(text: str) -> str:
    """--device: auto, cpu, cuda, cuda:N or mps (whether it is there is checked when it is used)."""
    if not _DEVICE.match(text.strip().lower()):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda, cuda:N or mps, not {text!r}")
    return text.strip().lower()


def folder_or_new(text: str) -> str:
    """An --out that must be a folder: an existing folder or a path that does not exist yet."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a file; name a folder or a new path")
    return text


def scales_list(text: str) -> tuple[float, ...]:
    """--scales as an argparse type (see :func:`parse_scales`)."""
    try:
        return parse_scales(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", type=device_name,
                        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")


def device_of(args: argparse.Namespace):
    """The torch device named by --device (CUDA, then MPS, then CPU for "auto"); one that is not there is a user error."""
    import torch

    from ..device import pick_device

    device = pick_device(getattr(args, "device", "auto"))
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("MPS (Apple GPU) was requested but is not available here; use --device cpu or auto.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"There is no CUDA GPU {device.index} (this machine has {torch.cuda.device_count()}); "
                        f"use --device cuda:0 or auto.")
    return device


def _jsonable(value):
    """Paths, numpy scalars and arrays as plain JSON values (reports carry them)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    for method in ("tolist", "item"):  # numpy arrays and scalars, without importing numpy here
        if hasattr(value, method):
            return getattr(value, method)()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def print_json(data) -> None:
    """Print `data` as one JSON object on one line of stdout (what every `--json` prints)."""
    print(json.dumps(data, indent=None, ensure_ascii=False, default=_jsonable), flush=True)


def parse_scales(text: str) -> tuple[float, ...]:
    """--scales "1,0.707" as numbers; anything else is a user error."""
    if isinstance(text, tuple):  # already parsed by the argparse type
        return text
    try:
        scales = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"--scales must be comma-separated numbers such as 1,0.707, not {text!r}.") from None
    # `not 0 < s` also refuses NaN; the upper bound refuses infinity and sizes no machine can hold.
    if not scales or not all(0 < s <= MAX_SCALE for s in scales):
        raise UserError(f"--scales must be numbers above 0 and at most {MAX_SCALE:g}, such as 1,0.707.")
    return scales
