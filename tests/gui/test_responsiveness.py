"""The window never does the heavy work itself: feature extraction and index work run on the worker
thread, training in a child process. (How long the event loop waits is reported by test_perf.py; it
depends on the machine's load, so no test asserts it.)"""

from __future__ import annotations

import threading

import pytest

from beauty_app.gui.main_window import MainWindow
from beauty_app.retrieval.extractor import FeatureExtractor
from beauty_app.retrieval.index import CatalogIndex

HEAVY_CALLS = ((FeatureExtractor, "pooled_pixels"), (FeatureExtractor, "analyze"), (CatalogIndex, "add_items"),
               (CatalogIndex, "finalize"), (CatalogIndex, "search"))


@pytest.fixture
def heavy_calls(monkeypatch) -> list[tuple[str, str]]:
    """(method, thread name) of every call of the extractor's and index's heavy methods."""
    calls: list[tuple[str, str]] = []
    for cls, name in HEAVY_CALLS:
        original = getattr(cls, name)

        def recorded(self, *args, _original=original, _name=f"{cls.__name__}.{name}", **kwargs):
            calls.append((_name, threading.current_thread().name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, recorded)
    return calls


def test_building_opening_and_searching_run_the_heavy_calls_off_the_gui_thread(qtbot, settings, heavy_calls,
                                                                               tiny_checkpoint, demo_data, tmp_path):
    window = MainWindow(settings, device="cpu")
    qtbot.addWidget(window)
    tab = window.catalog_tab
    tab.catalog_edit.setText(str(demo_data.catalog_csv))
    tab.model_combo.setCurrentText(str(tiny_checkpoint))
    tab.out_edit.setText(str(tmp_path / "idx"))
    with qtbot.waitSignal(tab.buildDone, timeout=120000):
        assert tab.start_build("build")
    # the finished build opens its index in the window; then a photo is searched
    qtbot.waitUntil(lambda: window.search_tab.session.model != "", timeout=120000)
    with qtbot.waitSignal(window.search_tab.searchDone, timeout=120000):
        window.search_tab.search_path(str(sorted(demo_data.queries_dir.iterdir())[0]))

    window.close()  # stops the worker: a window dropped with its thread running would abort the process

    called = {name for name, _thread in heavy_calls}
    assert called == {f"{cls.__name__}.{name}" for cls, name in HEAVY_CALLS}
    gui_thread = threading.main_thread().name
    assert [(name, thread) for name, thread in heavy_calls if thread == gui_thread] == []
