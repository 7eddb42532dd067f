"""GUI fixtures: an engine client per test (stopped at teardown) and isolated settings."""

from __future__ import annotations

import pytest


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
