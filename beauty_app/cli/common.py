"""What every command shares: -v/-q anywhere on the line, the device option, JSON output, scales.

Nothing here imports torch or another heavy library: building the parser must stay cheap, so
that `beauty-app --help` and `--version` answer at once. Handlers import what they use.
"""

from __future__ import annotations

import argparse
import json

from ..errors import UserError

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
    """A sub-command parser that accepts -v/-q like every other."""
    return subparsers.add_parser(name, parents=[VERBOSITY], **kwargs)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")


def device_of(args: argparse.Namespace):
    """The torch device named by --device (CUDA, then MPS, then CPU for "auto")."""
    from ..device import pick_device

    return pick_device(getattr(args, "device", "auto"))


def print_json(data) -> None:
    print(json.dumps(data, indent=None, ensure_ascii=False))


def parse_scales(text: str) -> tuple[float, ...]:
    """--scales "1,0.707" as numbers; anything else is a user error."""
    try:
        scales = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"--scales must be comma-separated numbers such as 1,0.707, not {text!r}.") from None
    if not scales or any(s <= 0 for s in scales):
        raise UserError("--scales must be positive numbers.")
    return scales
