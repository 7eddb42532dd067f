"""GUI fixtures: an engine client per test (stopped at teardown) and isolated settings."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QTimer


@pytest.fixture
def settings(tmp_path):
    from beauty_app.gui.settings import Settings

    return Settings(tmp_path / "settings.ini")


@pytest.fixture
def client(qtbot):
    from beauty_app.gui.worker import EngineClient

    engine_client = EngineClient("cpu")
    yield engine_client
    assert engine_client.stop(), "the worker thread did not stop"


@pytest.fixture
def open_session(qtbot, client, built_index):
    """The client with `built_index` opened; returns the SessionInfo."""
    with qtbot.waitSignal(client.engine.sessionOpened, timeout=60000) as blocker:
        client.requestOpen.emit(str(built_index), "")
    return blocker.args[0]


class LoopWatch:
    """Records the longest gap between event-loop turns (a 5 ms timer that should fire steadily)."""

    def __init__(self):
        self.longest = 0.0
        self.turns = 0
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)

    def _tick(self):
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now
        self.turns += 1

    def start(self):
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self):
        self.timer.stop()
