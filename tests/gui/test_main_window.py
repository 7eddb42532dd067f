"""The whole window: a file dropped on it is searched, the status bar tells the session, it closes cleanly."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from beauty_app.gui.main_window import MainWindow


def _drop_files(widget, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    # As a real drag does: the window must accept the drag entering before it gets the drop.
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    assert QApplication.sendEvent(widget, enter) and enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    assert QApplication.sendEvent(widget, drop)


def test_drop_on_the_window_searches_and_status_bar_shows_the_session(qtbot, settings, built_index, demo_data):
    window = MainWindow(settings, device="cpu")
    qtbot.addWidget(window)
    window.show()
    window.open_index(str(built_index))
    qtbot.waitUntil(lambda: window.search_tab.session.model != "", timeout=60000)
    assert "images" in window.index_label.text() and "cpu" in window.device_label.text()
    window.tabs.setCurrentWidget(window.catalog_tab)
    with qtbot.waitSignal(window.search_tab.searchDone, timeout=60000):
        _drop_files(window, [sorted(demo_data.queries_dir.iterdir())[0]])
    assert window.tabs.currentWidget() is window.search_tab
    assert window.search_tab.results.count() > 0
    assert settings.get("last/index") == str(built_index)
    window.close()
    assert not window.client.thread.isRunning()
    assert settings.raw().value("window/geometry") is not None


def test_presenter_mode_enlarges_type_and_shows_samples(qtbot, settings, demo_data):
    window = MainWindow(settings, device="cpu")
    qtbot.addWidget(window)
    window.search_tab.set_samples(sorted(demo_data.queries_dir.iterdir())[:4])
    size = window.font().pointSizeF()
    window.presenter_action.setChecked(True)
    assert window.font().pointSizeF() > size and window.search_tab.samples.isVisible()
    assert window.search_tab.samples.count() == 4
    window.presenter_action.setChecked(False)
    assert abs(window.font().pointSizeF() - size) < 0.01
    window.close()
