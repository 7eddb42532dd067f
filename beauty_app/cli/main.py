"""The `beauty-app` command line: parses arguments, calls the core, maps user errors to exit 2.

One module per command group (catalog, search, dataset, train, bench, demo, gui, selftest). Building
the parser imports no heavy library (torch, faiss, OpenCV, Qt, scikit-learn): each handler imports
what it uses, so `--help` and `--version` answer at once (tests/unit/test_cli.py checks it).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys

from .. import __version__
from ..errors import UserError
from . import bench, catalog, dataset, demo, gui, search, train
from .common import EXIT_INTERRUPTED, EXIT_USER_ERROR, VERBOSITY, OneLineParser

__all__ = ["EXIT_INTERRUPTED", "EXIT_USER_ERROR", "build_parser", "main", "parse_args", "user_sentence"]

#: A defect of ours (not something the user can fix); its one line asks for -v and a report.
EXIT_INTERNAL_ERROR = 1

#: Command groups in the order `--help` lists them.
COMMAND_GROUPS = (catalog, search, dataset, train, bench, gui, demo)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (cheap: no heavy imports)."""
    parser = OneLineParser(prog="beauty-app", parents=[VERBOSITY],
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
    except KeyboardInterrupt:
        print("beauty-app: interrupted; finished work is kept (use --resume to continue).", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into `head` and friends: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place an error becomes the user's sentence
        sentence = user_sentence(exc)
        if sentence is None:  # a defect of ours: -v shows the traceback a bug report needs
            if args.verbose:
                raise
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            print(f"beauty-app: internal error: {type(exc).__name__}: {first_line} (run again with -v for the "
                  f"details and please report it).", file=sys.stderr)
            return EXIT_INTERNAL_ERROR
        logging.getLogger(__name__).debug("user error", exc_info=True)
        print(f"beauty-app: error: {sentence}", file=sys.stderr)
        return EXIT_USER_ERROR


#: Why the system refused a file operation, in words a user can act on.
_OS_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space and run the command again",
    errno.EDQUOT: "the disk quota is used up; free some space and run the command again",
    errno.EROFS: "the folder is on a read-only disk; choose a writable folder",
    errno.EACCES: "permission denied; choose a folder you can write to or fix its permissions",
    errno.EPERM: "the operation is not permitted; check the file's permissions",
    errno.EISDIR: "it is a folder where a file was expected",
    errno.ENOTDIR: "a part of the path is a file where a folder was expected",
    errno.ENOENT: "it does not exist",
    errno.EEXIST: "it already exists",
}


def user_sentence(exc: BaseException) -> str | None:
    """One sentence for an error a user can cause or fix, or None for a defect (which keeps its traceback).

    User errors raised by the core already are sentences. Errors from the system (a full or
    read-only disk, permissions, a file where a folder should be), from SQLite ("database or disk
    is full") and from faiss's file writer are worded here, in one place, for every command.
    """
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "there is not enough memory for this; close other programs or use smaller settings."
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f' "{exc.filename}"' if exc.filename else ""
        advice = _OS_ADVICE.get(exc.errno) or (exc.strerror or "the system refused it").lower()
        return f"cannot use{where}: {advice}."
    import sqlite3  # the standard library's; cheap

    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if "full" in text:
            return "the disk is full (the index database could not be written); free some space and run again."
        if "readonly" in text or "read-only" in text:
            return "the index is on a read-only disk or folder; writing to it is not possible."
        return f"the index database cannot be used ({text}); rebuild it with `catalog build`."
    if isinstance(exc, RuntimeError) and "faiss" in str(exc).lower():
        first = next((line for line in str(exc).splitlines() if "error" in line.lower()), str(exc).splitlines()[0])
        if any(word in first.lower() for word in ("write", "fwrite", "ferror", "no space", "could not open")):
            return ("the search structure could not be written (the disk may be full or read-only); "
                    "free some space or choose a writable folder.")
        return f"the search structure cannot be used ({first.strip()[:160]}); rebuild it with `catalog build`."
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
