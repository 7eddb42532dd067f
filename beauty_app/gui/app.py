"""Starting the desktop app: QApplication, logging to a file, crash dialog, the main window."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import traceback
from functools import partial
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
    """Build the main window and prepare the initial actions (first query, samples).

    The index is not opened here: :class:`Startup` opens it (``index`` or the last one) and warms
    the engine up before the first search; see :func:`run_gui`.
    """
    from PySide6.QtGui import QIcon

    from .main_window import MainWindow
    from .settings import Settings

    window = MainWindow(settings or Settings(), device=device)
    icon = resources_dir() / "icons" / "beautylens.png"
    if icon.is_file():
        window.setWindowIcon(QIcon(str(icon)))
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


def startup_index(window, index: str | Path | None) -> str:
    """The index to open at launch: the one asked for, else the last one used if it still exists."""
    index = index or window.settings.get("last/index", "")
    return str(index) if index and Path(index).exists() else ""


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
            screenshot: str | None = None, demo=None, qt_args=()) -> int:
    """Open the main window and run the Qt event loop; returns the exit status.

    The model and index load, and one warm-up search runs, behind the splash; the window shows when
    the engine is warm. With `demo` (a ``worker.DemoRequest``) the window shows at once and the demo
    catalog is built on the worker with its progress in the window.

    Args:
        screenshot: after the first search, search the same photo nine more times (each once the results
            have painted), save the window as this PNG and quit, printing launch-to-first-result (from
            process start) and the 1st, 2nd and 10th search times.
        qt_args: Qt's own options from the command line, passed to QApplication.
    """
    from .startup import Startup

    app = make_application(qt_args)
    log_path = setup_logging()
    install_crash_dialog(log_path)
    from ..cpu_threads import wait_policy

    log.info("torch's CPU threads wait: %s", wait_policy())
    splash = _splash()
    window = create_window(index, model, queries, presenter_samples, device)
    startup = Startup(window, splash)

    def show_window() -> None:
        if not window.isVisible():
            window.show()
        if splash is not None:
            splash.finish(window)

    startup.ready.connect(show_window)
    if screenshot:
        _quit_after_searches(window, screenshot)
    if demo is not None:
        show_window()
        startup.start_demo(demo)
    else:
        opening = startup_index(window, index)
        if opening:
            startup.open(opening, model or "")
        else:
            startup.finish_now()
    return app.exec()


#: How many searches of the same photo `--screenshot` makes: the first, the second, ..., the tenth.
TIMED_SEARCHES = 10
#: The pause before each repeated search, as a user's next click would leave: the window paints the
#: results first. Without it the second search shared the 2 CPU cores with the first paint of the results
#: grid (fonts, 12 thumbnails, the heatmap; in a real X window the X server too, for more than 150 ms) and
#: took 1.1-2.7x the tenth; after a 1 s pause 0.92-1.00x (measured under Xvfb on a fresh Debian 12).
TIMED_SEARCH_PAUSE_MS = 500


def _quit_after_searches(window, path: str) -> None:
    """Time launch-to-first-result and repeated searches of the same photo, save a screenshot, quit.

    A search that fails ends the run with its message and exit status 1, so a timing script never waits forever.
    """
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ..process_clock import seconds_since_process_start
    from .worker import Operation

    outcomes: list = []
    first_result: list[float | None] = []

    def on_search(outcome) -> None:
        if not first_result:
            first_result.append(seconds_since_process_start())
        outcomes.append(outcome)
        if len(outcomes) < TIMED_SEARCHES:
            QTimer.singleShot(TIMED_SEARCH_PAUSE_MS, window.search_tab.search_again)
            return
        window.search_tab.searchDone.disconnect(on_search)
        QTimer.singleShot(300, grab_and_quit)  # let the results grid paint first

    def on_job_started(job) -> None:
        # The job's own `failed` comes before the window's error dialog (on jobEnded), which nobody closes here.
        if job.operation in (Operation.SEARCH, Operation.PREPARE_DEMO):
            job.failed.connect(partial(on_failed, job))

    def on_failed(job, message: str) -> None:
        print(f"The {job.operation.label} failed: {message}", file=sys.stderr, flush=True)
        QApplication.instance().exit(1)  # every event loop, the dialog's still to come included, ends at once
        window.close()

    def grab_and_quit() -> None:
        window.grab().save(path)
        times = [outcome.elapsed_s for outcome in outcomes]
        print(launch_report(first_result[0], times) + f"; screenshot {path}", flush=True)
        print(stage_report(outcomes), flush=True)
        window.close()
        QApplication.instance().quit()

    window.search_tab.searchDone.connect(on_search)
    window.client.jobStarted.connect(on_job_started)


def stage_report(outcomes: list) -> str:
    """One line: each stage of the 2nd and the last search (``SearchOutcome.stage_seconds``), in ms."""
    if len(outcomes) < 2:
        return ""
    second, last = outcomes[1].stage_seconds, outcomes[-1].stage_seconds
    stages = ", ".join(f"{stage} {second[stage] * 1000:.1f}/{last.get(stage, 0.0) * 1000:.1f}" for stage in second)
    return f"stages of the 2nd/{len(outcomes)}th search (ms): {stages}"


def launch_report(first_result_s: float | None, search_times: list[float]) -> str:
    """One line: launch to first result (from process start) and the 1st / 2nd / last search times."""
    since = "process start" if first_result_s is not None else "process start (unknown on this system)"
    head = (f"window showed the first search {first_result_s:.1f} s after {since}" if first_result_s is not None
            else f"window showed the first search (time since {since})")
    if len(search_times) < 2:
        return head
    first, second, last = search_times[0], search_times[1], search_times[-1]
    return (f"{head}; searches of the same photo: 1st {first * 1000:.0f} ms, 2nd {second * 1000:.0f} ms, "
            f"{len(search_times)}th {last * 1000:.0f} ms (2nd/{len(search_times)}th {second / last:.2f}x, "
            f"1st/{len(search_times)}th {first / last:.2f}x)")


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
