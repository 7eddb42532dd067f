"""The `beauty-app` command line: parses arguments, calls the core, maps user errors to exit 2.

One module per command group (catalog, search, dataset, train, bench, demo, gui, selftest). Building
the parser imports no heavy library (torch, faiss, OpenCV, Qt, scikit-learn): each handler imports
what it uses, so `--help` and `--version` answer at once (tests/unit/test_cli.py checks it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .. import __version__
from ..errors import UserError
from . import bench, catalog, dataset, demo, gui, search, train
from .common import EXIT_INTERRUPTED, EXIT_USER_ERROR, VERBOSITY

__all__ = ["EXIT_INTERRUPTED", "EXIT_USER_ERROR", "build_parser", "main", "parse_args"]

#: Command groups in the order `--help` lists them.
COMMAND_GROUPS = (catalog, search, dataset, train, bench, gui, demo)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (cheap: no heavy imports)."""
    parser = argparse.ArgumentParser(prog="beauty-app", parents=[VERBOSITY],
                                     description="BeautyLens: find a beauty product in a catalog from a photo "
                                                 "(MANet + SR-MAC retrieval).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="load the model, search a small demo catalog once, print the result and exit")
    # Not required by argparse so that --self-test can stand alone; main() asks for a COMMAND otherwise.
    subparsers = parser.add_subparsers(dest="command", required=False, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line, with `verbose` and `quiet` always set; usage errors exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # -v/-q may come before or after the sub-command; absent, they are off.
    args.verbose = getattr(args, "verbose", False)
    args.quiet = getattr(args, "quiet", False)
    if (args.command is None) != bool(args.self_test):
        parser.error("--self-test takes no COMMAND" if args.self_test else "the following arguments are required: COMMAND")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of `beauty-app` and `python -m beauty_app`."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.self_test:
        from .selftest import run_self_test

        return run_self_test()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"beauty-app: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("beauty-app: interrupted; finished work is kept (use --resume to continue).", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into `head` and friends: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
