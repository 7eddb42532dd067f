"""`beauty-app gui`: open the desktop app (optionally on an index and query photos)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .common import add_command, device_name


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `gui` to the top-level sub-commands."""
    gui = add_command(subparsers, "gui", help="open the desktop app")
    gui.add_argument("--index", default=None, help="index to open (default: the last one)")
    gui.add_argument("--model", default=None, help="model spec (default: the index's own)")
    gui.add_argument("--device", default="auto", type=device_name)
    gui.add_argument("--query", default=None, metavar="IMAGE", help="a photo to search first")
    gui.add_argument("--screenshot", default=None, metavar="PNG",
                     help="save the window after the first search (of --query) as PNG and quit")
    gui.add_argument("images", nargs="*", metavar="IMAGE", help="photos to search (the first is shown)")
    gui.set_defaults(func=cmd_gui)


def cmd_gui(args: argparse.Namespace) -> int:
    """Check the query files, then run the window until it closes."""
    queries = ([args.query] if args.query else []) + list(args.images)
    if args.screenshot and not (queries and args.index):
        raise UserError("--screenshot needs --index DIR and --query IMAGE (the search to show).")
    for query in queries:
        if not Path(query).is_file():
            raise UserError(f"Query image {query} does not exist.")
    from ..gui.app import run_gui

    return run_gui(index=args.index, model=args.model, queries=queries, device=args.device,
                   screenshot=args.screenshot)
