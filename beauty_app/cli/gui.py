"""`beauty-app gui`: open the desktop app (optionally on an index and query photos)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .common import add_command, device_name

#: Qt's own command-line options (QApplication reads them): option -> whether it takes a value.
QT_OPTIONS = {"-platform": True, "-platformpluginpath": True, "-platformtheme": True, "-style": True,
              "-stylesheet": True, "-geometry": True, "-display": True, "-qwindowgeometry": True,
              "-qwindowtitle": True, "-qwindowicon": True, "-plugin": True, "-reverse": False}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `gui` to the top-level sub-commands."""
    gui = add_command(subparsers, "gui", help="open the desktop app")
    gui.add_argument("--index", default=None, help="index to open (default: the last one)")
    gui.add_argument("--model", default=None, help="model spec (default: the index's own)")
    gui.add_argument("--device", default="auto", type=device_name)
    gui.add_argument("--query", default=None, metavar="IMAGE", help="a photo to search first")
    gui.add_argument("--screenshot", default=None, metavar="PNG",
                     help="save the window after the first search (of --query) as PNG and quit")
    gui.add_argument("images", nargs="*", metavar="IMAGE",
                     help="photos to search: the first is shown, the others wait in the strip below")
    add_qt_options(gui)
    gui.set_defaults(func=cmd_gui)


def add_qt_options(parser: argparse.ArgumentParser) -> None:
    """Qt's own options (``-platform offscreen``, ``-style Fusion``, ...), handed to QApplication as given."""
    group = parser.add_argument_group("Qt options (passed to Qt)")
    for option, takes_value in QT_OPTIONS.items():
        if takes_value:
            group.add_argument(option, dest="qt_args", action=_QtOption, metavar=option.lstrip("-").upper(),
                               default=[])
        else:
            group.add_argument(option, dest="qt_args", action=_QtOption, nargs=0, default=[])


class _QtOption(argparse.Action):
    """Collects Qt options in the order given, as QApplication expects them in argv."""

    def __call__(self, parser, namespace, values, option_string=None):
        collected = list(getattr(namespace, self.dest, None) or [])
        collected.append(option_string)
        if isinstance(values, str):
            collected.append(values)
        setattr(namespace, self.dest, collected)


def check_window_can_open(qt_args=()) -> None:
    """Raise a one-sentence UserError naming the system packages the window lacks (Linux, X11)."""
    from ..gui.system_libraries import window_problem

    problem = window_problem(qt_args)
    if problem:
        raise UserError(problem)


def cmd_gui(args: argparse.Namespace) -> int:
    """Check the query files, then run the window until it closes."""
    queries = ([args.query] if args.query else []) + list(args.images)
    if args.screenshot and not (queries and args.index):
        raise UserError("--screenshot needs --index DIR and --query IMAGE (the search to show).")
    for query in queries:
        if not Path(query).is_file():
            raise UserError(f"Query image {query} does not exist.")
    check_window_can_open(args.qt_args)
    from ..cpu_threads import prefer_sleeping_waits

    prefer_sleeping_waits()  # before torch loads (gui.app's start-up imports it): steady searches on a busy CPU
    from ..gui.app import run_gui

    return run_gui(index=args.index, model=args.model, queries=queries, device=args.device,
                   screenshot=args.screenshot, qt_args=args.qt_args)
