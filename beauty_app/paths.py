"""Where things live: shipped files (resources, model store) and the user's data folders.

User data (indexes, logs, settings, demo data) goes to the platform's standard folders via
platformdirs, never next to the code (an installed bundle is read-only).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from platformdirs import user_cache_path, user_config_path, user_data_path, user_log_path

APP_NAME = "BeautyLens"


def _source_root() -> Path:
    # A PyInstaller bundle unpacks data files under sys._MEIPASS; a checkout has them beside the package.
    bundle_root = getattr(sys, "_MEIPASS", None)
    return Path(bundle_root) if bundle_root else Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    return Path(os.environ.get("BEAUTYLENS_RESOURCES", _source_root() / "resources"))


def model_store_dir() -> Path:
    return Path(os.environ.get("BEAUTYLENS_MODEL_STORE", _source_root() / "model_store"))


def demo_checkpoint() -> Path:
    """The shipped demo MANet checkpoint (see model_store/README.md for how it was made)."""
    return model_store_dir() / "demo_manet.safetensors"


def cache_dir() -> Path:
    return user_cache_path(APP_NAME, appauthor=False)


def data_dir() -> Path:
    return user_data_path(APP_NAME, appauthor=False)


def config_dir() -> Path:
    return user_config_path(APP_NAME, appauthor=False)


def log_dir() -> Path:
    return user_log_path(APP_NAME, appauthor=False)
