"""The main window: tabs, menus, status bar and presenter mode. Thin: it composes the tabs."""

from __future__ import annotations

import logging

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTabWidget,
)

from .. import __version__
from ..paths import log_dir
from .settings import Settings
from .worker import EngineClient, Job, JobState, OpenRequest, SessionInfo

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """Search, Catalog, Training, Evaluation and Annotation tabs around one engine worker."""

    sessionChanged = Signal(object)  # SessionInfo

    def __init__(self, settings: Settings | None = None, device: str = "auto"):
        super().__init__()
        from .annotate_tab import AnnotateTab
        from .catalog_tab import CatalogTab
        from .eval_tab import EvalTab
        from .search_tab import SearchTab
        from .train_tab import TrainTab

        self.settings = settings or Settings()
        self.client = EngineClient(device, parent=self)
        self.session = SessionInfo()
        self._open_job: Job | None = None
        self.setWindowTitle("BeautyLens")
        self.setAcceptDrops(True)

        self.tabs = QTabWidget()
        self.search_tab = SearchTab(self.client, self.settings, self)
        self.catalog_tab = CatalogTab(self.client, self.settings, self)
        self.train_tab = TrainTab(self.client, self.settings, self)
        self.eval_tab = EvalTab(self.client, self.settings, self)
        self.annotate_tab = AnnotateTab(self.client, self.settings, self)
        for widget, title in ((self.search_tab, "Search"), (self.catalog_tab, "Catalog"), (self.train_tab, "Training"),
                              (self.eval_tab, "Evaluation"), (self.annotate_tab, "Annotate")):
            self.tabs.addTab(widget, title)
        self.setCentralWidget(self.tabs)

        self._build_status_bar()
        self._build_menus()
        self._connect()
        self._restore_geometry()

    # ------------------------------------------------------------------ construction
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.device_label = QLabel("device: -")
        self.model_label = QLabel("model: none")
        self.index_label = QLabel("index: none")
        self.job_label = QLabel("")
        self.job_progress = QProgressBar()
        self.job_progress.setMaximumWidth(220)
        self.job_progress.setVisible(False)
        self.job_cancel = QPushButton("Cancel")
        self.job_cancel.setVisible(False)
        self.job_cancel.clicked.connect(self._cancel_long_jobs)
        # Permanent widgets stay visible while transient messages show on the left.
        for widget in (self.device_label, self.model_label, self.index_label):
            bar.addPermanentWidget(widget)
        bar.addPermanentWidget(self.job_label)
        bar.addPermanentWidget(self.job_progress)
        bar.addPermanentWidget(self.job_cancel)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_image_action = QAction("&Open image...", self, shortcut=QKeySequence.StandardKey.Open,
                                         triggered=self.search_tab.open_image_dialog)
        self.paste_action = QAction("&Paste image", self, shortcut=QKeySequence.StandardKey.Paste,
                                    triggered=self.search_tab.paste_from_clipboard)
        self.open_index_action = QAction("Open &index...", self, shortcut="Ctrl+I", triggered=self.open_index_dialog)
        self.export_action = QAction("&Export view as PNG...", self, shortcut="Ctrl+E",
                                     triggered=self.search_tab.export_view_dialog)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close)
        for action in (self.open_image_action, self.paste_action, self.open_index_action, self.export_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)

        search_menu = self.menuBar().addMenu("&Search")
        self.search_again_action = QAction("Search &again", self, shortcut="Ctrl+Return",
                                           triggered=self.search_tab.search_again)
        self.batch_action = QAction("&Batch search a folder...", self, shortcut="Ctrl+B",
                                    triggered=self.search_tab.batch_dialog)
        self.next_photo_action = QAction("&Next photo of the strip", self, shortcut="PgDown",
                                         triggered=lambda: self.search_tab.step_samples(1))
        self.previous_photo_action = QAction("&Previous photo of the strip", self, shortcut="PgUp",
                                             triggered=lambda: self.search_tab.step_samples(-1))
        for action in (self.search_again_action, self.batch_action, self.next_photo_action,
                       self.previous_photo_action):
            search_menu.addAction(action)

        view_menu = self.menuBar().addMenu("&View")
        self.presenter_action = QAction("&Presenter mode", self, shortcut="F11", checkable=True,
                                        toggled=self.set_presenter_mode)
        view_menu.addAction(self.presenter_action)

        help_menu = self.menuBar().addMenu("&Help")
        self.shortcuts_action = QAction("&Keyboard shortcuts", self, shortcut="F1", triggered=self.show_shortcuts)
        self.log_folder_action = QAction("Open &log folder", self, triggered=self.open_log_folder)
        for action in (self.shortcuts_action, self.log_folder_action):
            help_menu.addAction(action)
        help_menu.addAction(QAction("&About BeautyLens", self, triggered=self._about))

    def _connect(self) -> None:
        self.client.jobStarted.connect(self._on_job_started)
        self.client.jobProgress.connect(self._on_progress)
        self.client.jobEnded.connect(self._on_job_ended)
        self.catalog_tab.indexReady.connect(self.open_index)
        self.eval_tab.openQuery.connect(self._open_query_in_search)
        self.catalog_tab.openItem.connect(self._open_query_in_search)
        self.train_tab.useCheckpoint.connect(self._use_checkpoint)
        self.sessionChanged.connect(self.search_tab.on_session)
        self.sessionChanged.connect(self.catalog_tab.on_session)
        self.sessionChanged.connect(self.eval_tab.on_session)
        self.sessionChanged.connect(self.annotate_tab.on_session)

    def _restore_geometry(self) -> None:
        geometry = self.settings.raw().value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)

    # ------------------------------------------------------------------ actions
    def open_index(self, index_dir: str, model_spec: str = "") -> None:
        """Open an index (and its model, or `model_spec`) on the worker thread."""
        self.statusBar().showMessage(f"Opening index {index_dir} ...")
        job = self._open_job = self.client.submit(OpenRequest(str(index_dir), model_spec or ""))
        # Remembered for the next launch only once it opened: a broken index must not greet the next start.
        job.finished.connect(lambda info: self._remember_index(str(index_dir), model_spec))
        job.finished.connect(self._on_session)
        job.failed.connect(lambda _message: self.statusBar().showMessage(f"Could not open the index {index_dir}."))
        job.cancelled.connect(self.statusBar().clearMessage)

    def _remember_index(self, index_dir: str, model_spec: str) -> None:
        self.settings.set("last/index", index_dir)
        if model_spec:
            self.settings.set("last/model", model_spec)

    def open_index_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a catalog index", self.settings.get("last/index", ""))
        if folder:
            self.open_index(folder)

    def set_presenter_mode(self, enabled: bool) -> None:
        """Full screen, larger type, and the strip of sample photos to click."""
        font = self.font()
        font.setPointSizeF(font.pointSizeF() * (1.4 if enabled else 1 / 1.4))
        self.setFont(font)
        self.search_tab.set_presenter_mode(enabled)
        if enabled:
            self.tabs.setCurrentWidget(self.search_tab)
            self.showFullScreen()
        else:
            self.showNormal()

    def _open_query_in_search(self, path: str, relevant: list | None = None) -> None:
        self.tabs.setCurrentWidget(self.search_tab)
        self.search_tab.search_path(path, relevant)

    def _use_checkpoint(self, checkpoint: str) -> None:
        self.tabs.setCurrentWidget(self.catalog_tab)
        self.catalog_tab.build_with_model(checkpoint)

    def open_log_folder(self) -> str:
        """Open the log folder in the file manager and say where it is (a headless desktop opens nothing)."""
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        opened = QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
        message = f"Log folder: {folder}" if opened else f"Log folder (no file manager opened it): {folder}"
        self.statusBar().showMessage(message, 15000)
        return message

    def shortcut_list(self) -> list[tuple[str, str]]:
        """(keys, what they do) for every shortcut of the window and its tabs, for Help > Keyboard shortcuts."""
        rows = []
        for menu_action in self.menuBar().actions():
            for action in menu_action.menu().actions():
                if not action.shortcut().isEmpty():
                    keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
                    rows.append((keys, action.text().replace("&", "")))
        rows.append(("Drag a box", "Search: crop the query and search the crop"))
        rows += self.annotate_tab.shortcut_list()
        return rows

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{keys}</b></td><td>{what}</td></tr>" for keys, what in self.shortcut_list())
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", f"<table cellspacing=6>{rows}</table>",
                          QMessageBox.StandardButton.Close, self)
        box.setModal(False)
        box.show()
        self._shortcuts_box = box

    def _about(self) -> None:
        QMessageBox.about(self, "About BeautyLens",
                          f"<b>BeautyLens {__version__}</b><p>Cross-domain beauty product retrieval with MANet and "
                          "SR-MAC (Wang et al. 2020).</p>")

    # ------------------------------------------------------------------ engine signals
    def _on_session(self, info: SessionInfo) -> None:
        self.session = info
        self.device_label.setText(f"device: {info.device}")
        self.model_label.setText(f"model: {info.model}")
        count = info.index.get("count", 0)
        self.index_label.setText(f"index: {count:,} images, {info.index.get('pooling')}, "
                                 f"{info.index.get('index_type')}")
        self.statusBar().showMessage("Index ready", 3000)
        self.sessionChanged.emit(info)

    def _cancel_long_jobs(self) -> None:
        for job in self.client.running_jobs():
            if job.operation.long:
                job.cancel()

    def _on_job_ended(self, job: Job) -> None:
        if job.operation.long and not any(other.operation.long for other in self.client.running_jobs()):
            self.job_cancel.setVisible(False)
        if not self.client.running_jobs():
            self.job_progress.setVisible(False)
            self.job_label.setText("")
        if job.state == JobState.FAILED:
            log.warning("%s failed: %s", job.operation.label, job.error)
            QMessageBox.warning(self, f"BeautyLens: {job.operation.label}", job.error)
        elif job.state == JobState.CANCELLED and job.operation.long:
            self.statusBar().showMessage(f"{job.operation.label} cancelled", 5000)

    def _on_job_started(self, job: Job) -> None:
        if job.operation.long:
            self.job_cancel.setVisible(True)
        else:
            self.job_label.setText(f"{job.operation.label}...")

    def _on_progress(self, job: Job, event) -> None:
        self.job_progress.setVisible(True)
        if event.total:
            self.job_progress.setRange(0, event.total)
            self.job_progress.setValue(min(event.done, event.total))
        else:
            self.job_progress.setRange(0, 0)
        parts = [event.stage]
        if event.rate:
            parts.append(f"{event.rate:.1f}/s")
        if event.eta_s is not None:
            parts.append(f"ETA {event.eta_s:.0f} s")
        self.job_label.setText("  ".join(parts))

    # ------------------------------------------------------------------ drag and drop, closing
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.tabs.setCurrentWidget(self.search_tab)
        self.search_tab.handle_drop(event.mimeData())
        event.acceptProposedAction()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.settings.set("window/geometry", self.saveGeometry())
        self.shutdown()
        self.settings.sync()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """The one way the window stops its work: every tab ends its jobs, pools, processes and timers, then
        the worker thread is stopped and waited for."""
        for tab in (self.search_tab, self.catalog_tab, self.train_tab, self.eval_tab, self.annotate_tab):
            tab.shutdown()
        if not self.client.stop():
            log.warning("the worker thread did not stop in time")
