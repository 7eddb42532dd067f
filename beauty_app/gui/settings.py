"""Remembered settings (last index, model, paths, window geometry, view options) in the user's config dir."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from ..paths import config_dir


class Settings:
    """A thin typed wrapper over an INI-format QSettings file (tests point it at a temporary dir)."""

    def __init__(self, path: str | Path | None = None):
        path = Path(path) if path else config_dir() / "settings.ini"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._qsettings = QSettings(str(path), QSettings.Format.IniFormat)

    def get(self, key: str, default=None, type_=str):
        value = self._qsettings.value(key, default)
        if value is None:
            return default
        if type_ is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        try:
            return type_(value)
        except (TypeError, ValueError):
            return default

    def set(self, key: str, value) -> None:
        self._qsettings.setValue(key, value)

    def raw(self) -> QSettings:
        return self._qsettings

    def sync(self) -> None:
        self._qsettings.sync()
