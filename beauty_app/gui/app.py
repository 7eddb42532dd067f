"""Starting the desktop app: QApplication, logging to a file, crash dialog, the main window."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import traceback
from pathlib import Path

from ..paths import log_dir, resources_dir

log = logging.getLogger(__name__)


def setup_logging() -> Path:
    """Log to a rotating file in the user's log folder (and route Qt's messages there too)."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    folder = log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "beautylens.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root = logging.getLogger()
    # The file gets INFO; handlers already there (the terminal's) keep the level they showed before.
    for existing in root.handlers:
        existing.setLevel(max(existing.level, root.level))
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
              QtMsgType.QtFatalMsg: logging.CRITICAL}

    def qt_message(kind, _context, message):
        logging.getLogger("qt").log(levels.get(kind, logging.INFO), message)

    qInstallMessageHandler(qt_message)
    return path


def install_crash_dialog(log_path: Path) -> None:
    """Uncaught exceptions on the GUI thread go to the log and a dialog, never a silent exit."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    def hook(kind, value, tb):
        details = "".join(traceback.format_exception(kind, value, tb))
        logging.getLogger("crash").error("uncaught exception:\n%s", details)
        if QApplication.instance() is not None:
            box = QMessageBox(QMessageBox.Icon.Critical, "BeautyLens: unexpected error",
                              f"{kind.__name__}: {value}\n\nThe app keeps running; details are in {log_path}.")
            box.setDetailedText(details)
            box.exec()

    sys.excepthook = hook


def create_window(index: str | Path | None = None, model: str | None = None, queries=(), presenter_samples=None,
                  device: str = "auto", settings=None):
    """Build the main window and queue the initial actions (open index, first query, samples)."""
    from PySide6.QtGui import QIcon

    from PySide6.QtCore import QTimer

    from .main_window import MainWindow
    from .settings import Settings

    window = MainWindow(settings or Settings(), device=device)
    icon = resources_dir() / "icons" / "beautylens.png"
    if icon.is_file():
        window.setWindowIcon(QIcon(str(icon)))
    index = index or window.settings.get("last/index", "")
    if index and Path(index).exists():
        # Opened once the event loop runs, so the window shows first.
        QTimer.singleShot(0, lambda: window.open_index(str(index), model or ""))
    if presenter_samples:
        folder = Path(presenter_samples)
        samples = sorted(p for p in folder.iterdir() if p.is_file())[:12] if folder.is_dir() else []
        window.search_tab.set_samples(samples)
    queries = list(queries or [])
    if queries:
        window.search_tab.source = str(queries[0])  # searched as soon as the session is open
        if len(queries) > 1:  # the others wait in the strip, to step through (Page Down / a click)
            window.search_tab.set_samples(queries)
    return window


def make_application(qt_args=()):
    """The QApplication, given Qt's own command-line options (``-platform``, ``-style``, ...) as typed.

    Named for the desktop entry (``beautylens.desktop``), so Wayland and task bars match the window to it.
    """
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "beautylens", *qt_args])
    app.setApplicationName("BeautyLens")
    app.setOrganizationName("BeautyLens")
    QGuiApplication.setDesktopFileName("beautylens")
    return app


def run_gui(index=None, model=None, queries=(), presenter_samples=None, device: str = "auto",
            screenshot: str | None = None, started: float | None = None, qt_args=()) -> int:
    """Open the main window and run the Qt event loop; returns the exit status.

    Args:
        screenshot: save the window as this PNG after the first search and quit (for docs and for
            measuring how long the demo takes to show a real result).
        started: perf_counter() of the command's start, to report that time with `screenshot`.
        qt_args: Qt's own options from the command line, passed to QApplication.
    """
    app = make_application(qt_args)
    log_path = setup_logging()
    install_crash_dialog(log_path)
    splash = _splash()
    window = create_window(index, model, queries, presenter_samples, device)
    window.show()
    if splash is not None:
        splash.finish(window)
    if screenshot:
        _quit_after_first_search(window, screenshot, started)
    return app.exec()


def _quit_after_first_search(window, path: str, started: float | None) -> None:
    import time

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def save(outcome) -> None:
        def grab_and_quit():
            window.grab().save(path)
            if started is not None:
                print(f"window showed the first search {time.perf_counter() - started:.1f} s after start; "
                      f"screenshot {path}")
            window.close()
            QApplication.instance().quit()

        QTimer.singleShot(300, grab_and_quit)  # let the results grid paint first

    window.search_tab.searchDone.connect(save)


def _splash():
    """A start-up splash while the core libraries load (a few seconds on a cold start)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QPixmap
    from PySide6.QtWidgets import QApplication, QSplashScreen

    pixmap = QPixmap(420, 160)
    pixmap.fill(QColor(250, 246, 248))
    splash = QSplashScreen(pixmap)
    splash.showMessage("BeautyLens\n\nloading the retrieval engine...",
                       Qt.AlignmentFlag.AlignCenter, QColor(90, 40, 80))
    splash.show()
    QApplication.processEvents()
    return splash
