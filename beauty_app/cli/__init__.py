"""The `beauty-app` command line (entry point ``beauty_app.cli:main``); nothing in the core imports it."""

from __future__ import annotations

from .main import build_parser, main, parse_args

__all__ = ["build_parser", "main", "parse_args"]
