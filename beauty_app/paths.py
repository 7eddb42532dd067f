"""Where things live: shipped files (resources, model store) and the user's data folders.

Shipped files are found, in this order: under ``sys._MEIPASS`` in a PyInstaller bundle; inside the
installed package (``beauty_app/resources``, ``beauty_app/model_store``: a wheel maps the repository's
top-level folders there, see setup.py) through importlib.resources; at the top of a source checkout or
editable install, where the repository keeps them. ``BEAUTYLENS_RESOURCES`` and
``BEAUTYLENS_MODEL_STORE`` override both.

User data (indexes, logs, settings, demo data) goes to the platform's standard folders via
platformdirs, never next to the code (an installed bundle is read-only).
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from pathlib import Path

from platformdirs import user_cache_path, user_config_path, user_data_path, user_log_path

APP_NAME = "BeautyLens"


def _shipped_dir(name: str) -> Path:
    """The folder of shipped files called `name` (``resources`` or ``model_store``)."""
    bundle_root = getattr(sys, "_MEIPASS", None)
    if bundle_root:  # a PyInstaller bundle unpacks its data files there
        return Path(bundle_root) / name
    packaged = files(__package__ or "beauty_app").joinpath(name)
    # Installed packages live on the file system (pip never installs zipped), where this is a Path.
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name


def resources_dir() -> Path:
    """Icons and the desktop entry."""
    return Path(os.environ.get("BEAUTYLENS_RESOURCES") or _shipped_dir("resources"))


def model_store_dir() -> Path:
    """The shipped models."""
    return Path(os.environ.get("BEAUTYLENS_MODEL_STORE") or _shipped_dir("model_store"))


def demo_checkpoint() -> Path:
    """The shipped demo MANet model (see model_store/README.md for how it was made)."""
    return model_store_dir() / "demo_manet.safetensors"


def cache_dir() -> Path:
    return user_cache_path(APP_NAME, appauthor=False)


def data_dir() -> Path:
    return user_data_path(APP_NAME, appauthor=False)


def config_dir() -> Path:
    return user_config_path(APP_NAME, appauthor=False)


def log_dir() -> Path:
    return user_log_path(APP_NAME, appauthor=False)
