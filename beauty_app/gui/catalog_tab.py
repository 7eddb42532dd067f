# Kept in one module (about 580 lines): one tab's build form and handlers; the browser model and the
# progress panel are apart (widgets/catalog_items.py, widgets/catalog_progress.py).
"""The Catalog tab: build, resume or update an index, see what it holds, and browse its rows."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .file_filters import checkpoint_filter
from .settings import Settings
from .widgets.catalog_items import CatalogItemsModel
from .widgets.catalog_progress import JobProgress, format_duration
from .worker import BuildRequest, EngineClient, ItemsPage, ItemsRequest, Job, SessionInfo

log = logging.getLogger(__name__)

DB_NAME = "catalog.sqlite"  # what marks a folder as an index (retrieval.index.DB_NAME; that module needs faiss)
MODEL_PRESETS = ("imagenet:efficientnet_lite0", "imagenet:resnet50", "imagenet:vgg16")

POOLINGS = (
    ("srmac", "SR-MAC: regional max pooling weighted by the saliency map (the paper's method)"),
    ("rmac", "R-MAC: regional max pooling over a fixed grid of regions"),
    ("ramac", "RA-MAC: R-MAC keeping the regions with the strongest activations"),
    ("mac", "MAC: global max pooling"),
    ("gem", "GeM: generalised mean pooling (p = 3)"),
    ("spoc", "SPoC: centre-weighted sum pooling"),
    ("gap", "GAP: global average pooling"),
)
INDEX_TYPES = (
    ("auto", "Exact search for small catalogs; for large ones the most accurate approximate index that fits "
             "in 1 GiB, tuned to find 95% of the exact top 7"),
    ("flat", "Exact search; best for catalogs up to a few hundred thousand images"),
    ("ivf", "Inverted lists: approximate, faster on large catalogs"),
    ("hnsw", "Graph index: approximate, fast, uses more memory"),
    ("pq", "Product quantisation: approximate, compact for very large catalogs"),
)
STAGES = {"finalize": "Building the search index...", "read catalog": "Reading the catalog...",
          "scan folder": "Looking for images in the folder..."}



def model_presets() -> list[str]:
    """The model choices offered for a new index: the shipped MANet first (the paper's method), then backbones."""
    from ..paths import demo_checkpoint

    shipped = demo_checkpoint()
    return ([str(shipped)] if shipped.is_file() else []) + list(MODEL_PRESETS)


def unique_folder(parent: Path, name: str) -> Path:
    """``parent/name``, or ``parent/name-2``, ``-3``... when that already exists."""
    candidate = parent / name
    number = 2
    while candidate.exists():
        candidate = parent / f"{name}-{number}"
        number += 1
    return candidate


def _path_row(edit: QLineEdit, *buttons: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    for button in buttons:
        layout.addWidget(button)
    return row


class CatalogTab(QWidget):
    """Index building form with progress, the current index's summary, and a lazy catalog browser."""

    indexReady = Signal(str, str)  # index_dir, model_spec: a build or update finished; open it
    buildDone = Signal(object)  # BuildSummary (tests and the status bar may listen)
    openItem = Signal(str)  # a catalog image (double-clicked in the browser) to search with

    def __init__(self, client: EngineClient, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.client = client
        self.settings = settings
        self.session = SessionInfo()
        self._job: Job | None = None  # the build this tab asked for, until it ends
        self._items_job: Job | None = None  # the catalog page asked for
        self._last_event = None
        self._skipped_dir: str | None = None  # the index whose skipped files the table lists
        self._build_ui()
        self._restore_settings()
        self._connect()
        self._update_buttons()

    # ------------------------------------------------------------------ construction
    def _build_ui(self) -> None:
        self.catalog_edit = QLineEdit()
        self.catalog_edit.setPlaceholderText("A catalog CSV (id, path, description, category) or a folder of images")
        self.catalog_csv_button = QPushButton("CSV...")
        self.catalog_csv_button.setToolTip("Choose a catalog CSV file")
        self.catalog_folder_button = QPushButton("Folder...")
        self.catalog_folder_button.setToolTip("Choose a folder of catalog images (ids are the file names)")

        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)
        self.model_combo.addItems(model_presets())
        self.model_combo.setToolTip("A MANet model (.safetensors or .pt): the shipped demo model or one you trained; or an "
                                    "ImageNet backbone without attention (imagenet:NAME)")
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(24)
        self.model_button = QPushButton("Browse...")
        self.model_button.setToolTip("Choose a MANet model (.safetensors or .pt)")

        self.pooling_combo = QComboBox()
        for name, tip in POOLINGS:
            self.pooling_combo.addItem(name, name)
            self.pooling_combo.setItemData(self.pooling_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.pooling_combo.setToolTip("How the feature map becomes one vector per image; SR-MAC is the paper's")

        self.index_type_combo = QComboBox()
        for name, tip in INDEX_TYPES:
            self.index_type_combo.addItem(name, name)
            self.index_type_combo.setItemData(self.index_type_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.index_type_combo.setToolTip("faiss index: flat is exact; the others trade accuracy for speed")

        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("A new, empty folder for the index")
        self.out_button = QPushButton("Choose...")

        form = QFormLayout()
        form.addRow("Catalog:", _path_row(self.catalog_edit, self.catalog_csv_button, self.catalog_folder_button))
        form.addRow("Model:", _path_row(self.model_combo, self.model_button))
        form.addRow("Pooling:", self.pooling_combo)
        form.addRow("Index type:", self.index_type_combo)
        form.addRow("Output folder:", _path_row(self.out_edit, self.out_button))

        self.build_button = QPushButton("&Build")
        self.build_button.setToolTip("Featurise every catalog image into a new index in the output folder")
        self.add_button = QPushButton("&Add to current index")
        self.add_button.setToolTip("Add new or changed catalog images to the open index (same model and pooling)")
        self.resume_button = QPushButton("&Resume")
        self.resume_button.setToolTip("Finish an interrupted build in the output folder without redoing done images")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current batch; the work done so far is kept (Esc)")
        buttons = QHBoxLayout()
        for button in (self.build_button, self.add_button, self.resume_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addStretch(1)

        self.progress = JobProgress("images", STAGES)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        build_box = QGroupBox("Build an index")
        build_layout = QVBoxLayout(build_box)
        build_layout.addLayout(form)
        build_layout.addLayout(buttons)
        build_layout.addWidget(self.progress)
        build_layout.addWidget(self.message)

        self.summary_labels: dict[str, QLabel] = {}
        summary_box = QGroupBox("Current index")
        summary_form = QFormLayout(summary_box)
        for key, title in (("directory", "Folder"), ("count", "Images"), ("skipped", "Skipped"),
                           ("model_spec", "Model"), ("pooling", "Pooling"), ("dim", "Dimension"),
                           ("index_type", "Index type"), ("structure", "Search structure"),
                           ("recall_at_7", "Recall@7"), ("whitening", "Whitening"), ("created", "Created")):
            label = QLabel("-")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(key in ("directory", "model_spec"))
            self.summary_labels[key] = label
            summary_form.addRow(f"{title}:", label)

        self.skipped_box = QGroupBox("Skipped files")
        self.skipped_note = QLabel("Files that could not be indexed appear here after a build.")
        self.skipped_note.setWordWrap(True)
        self.skipped_table = QTableWidget(0, 2)
        self.skipped_table.setHorizontalHeaderLabels(["Item", "Reason"])
        self.skipped_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.skipped_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.skipped_table.verticalHeader().setVisible(False)
        self.skipped_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.skipped_table.horizontalHeader().setStretchLastSection(True)
        skipped_layout = QVBoxLayout(self.skipped_box)
        skipped_layout.addWidget(self.skipped_note)
        skipped_layout.addWidget(self.skipped_table)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(build_box)
        left_layout.addWidget(summary_box)
        left_layout.addWidget(self.skipped_box, 1)

        # browser
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by id, description or category (Ctrl+F)")
        self.filter_edit.setClearButtonEnabled(True)
        self.browse_count = QLabel("Open or build an index to browse it.")
        side = max(32, int(self.fontMetrics().height() * 2.5))
        self.items_model = CatalogItemsModel(thumbnail_side=side, parent=self)
        self.items_view = QTableView()
        self.items_view.setModel(self.items_model)
        self.items_view.setIconSize(self.items_model.thumbnail_size())
        self.items_view.verticalHeader().setDefaultSectionSize(side + 6)
        self.items_view.verticalHeader().setVisible(False)
        self.items_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.items_view.setWordWrap(False)
        self.items_view.setAlternatingRowColors(True)
        header = self.items_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.resizeSection(0, side + self.fontMetrics().horizontalAdvance("c000000000") + 16)
        header.resizeSection(1, self.fontMetrics().horizontalAdvance("x" * 48))
        header.resizeSection(2, self.fontMetrics().horizontalAdvance("x" * 14))
        self.items_view.setToolTip("Double-click an item to search the catalog with its image")
        self.items_view.doubleClicked.connect(self._open_item)
        self.filter_timer = QTimer(self)
        self.filter_timer.setSingleShot(True)
        self.filter_timer.setInterval(300)  # debounce: one query per pause in typing, not per key

        browse_box = QGroupBox("Browse catalog")
        browse_layout = QVBoxLayout(browse_box)
        filter_row = QHBoxLayout()
        filter_row.addWidget(self.filter_edit, 1)
        filter_row.addWidget(self.browse_count)
        browse_layout.addLayout(filter_row)
        browse_layout.addWidget(self.items_view, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(browse_box)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        QShortcut(QKeySequence.StandardKey.Find, self, self._focus_filter,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.cancel,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)

    def _restore_settings(self) -> None:
        self.catalog_edit.setText(self.settings.get("catalog/last_source", ""))
        model = self.settings.get("catalog/last_model", "")
        if model:
            self.model_combo.setCurrentText(model)
        for combo, key in ((self.pooling_combo, "catalog/last_pooling"), (self.index_type_combo, "catalog/last_index_type")):
            found = combo.findData(self.settings.get(key, ""))
            if found >= 0:
                combo.setCurrentIndex(found)
        self.out_edit.setText(self.settings.get("catalog/last_out", ""))

    def _connect(self) -> None:
        self.catalog_csv_button.clicked.connect(self.choose_catalog_csv)
        self.catalog_folder_button.clicked.connect(self.choose_catalog_folder)
        self.model_button.clicked.connect(self.choose_model)
        self.out_button.clicked.connect(self.choose_output)
        self.build_button.clicked.connect(lambda: self.start_build("build"))
        self.add_button.clicked.connect(lambda: self.start_build("add"))
        self.resume_button.clicked.connect(lambda: self.start_build("resume"))
        self.cancel_button.clicked.connect(self.cancel)
        for edit in (self.catalog_edit, self.out_edit):
            edit.textChanged.connect(self._update_buttons)
        self.catalog_edit.editingFinished.connect(self._suggest_output)
        self.model_combo.currentTextChanged.connect(self._update_buttons)
        self.filter_edit.textChanged.connect(lambda _text: self.filter_timer.start())
        self.filter_timer.timeout.connect(self._apply_filter)
        self.items_model.fetchRequested.connect(self._fetch_items)
        self.items_model.pageLoaded.connect(self._on_page_loaded)

    # ------------------------------------------------------------------ choosers
    def _start_dir(self, key: str) -> str:
        value = self.settings.get(key, "")
        return str(Path(value).parent) if value else ""

    def choose_catalog_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a catalog CSV", self._start_dir("catalog/last_source"),
                                              "Catalog CSV (*.csv);;All files (*)")
        if path:
            self.catalog_edit.setText(path)
            self._suggest_output()

    def choose_catalog_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of catalog images",
                                                self._start_dir("catalog/last_source"))
        if path:
            self.catalog_edit.setText(path)
            self._suggest_output()

    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a MANet checkpoint", self._start_dir("catalog/last_model"),
                                              checkpoint_filter())
        if path:
            self.model_combo.setCurrentText(path)

    def choose_output(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose the index folder", self._start_dir("catalog/last_out"))
        if path:
            self.out_edit.setText(path)

    def _suggest_output(self) -> None:
        """Propose ``<catalog>-index`` beside the catalog when no output folder is set yet."""
        catalog = self.catalog_edit.text().strip()
        if catalog and not self.out_edit.text().strip():
            source = Path(catalog)
            self.out_edit.setText(str(unique_folder(source.parent, f"{source.stem or 'catalog'}-index")))

    def _focus_filter(self) -> None:
        self.filter_edit.setFocus()
        self.filter_edit.selectAll()

    # ------------------------------------------------------------------ building
    @property
    def busy(self) -> bool:
        """True from the moment this tab asks for a build until the worker reports its end."""
        return self._job is not None

    def model_spec(self) -> str:
        return self.model_combo.currentText().strip()

    def _out_has_index(self) -> bool:
        out = self.out_edit.text().strip()
        return bool(out) and (Path(out) / DB_NAME).is_file()

    def _update_buttons(self) -> None:
        ready = not self.busy and bool(self.catalog_edit.text().strip()) and bool(self.model_spec())
        has_out = bool(self.out_edit.text().strip())
        existing = self._out_has_index()
        self.build_button.setEnabled(ready and has_out and not existing)
        self.build_button.setToolTip(
            "The output folder already holds an index: Resume it, or choose another folder." if existing else
            "Featurise every catalog image into a new index in the output folder")
        self.resume_button.setEnabled(ready and existing)
        self.add_button.setEnabled(not self.busy and bool(self.catalog_edit.text().strip())
                                   and bool(self.session.index.get("directory")))
        self.cancel_button.setEnabled(self.busy)
        for widget in (self.catalog_edit, self.catalog_csv_button, self.catalog_folder_button, self.model_combo,
                       self.model_button, self.pooling_combo, self.index_type_combo, self.out_edit, self.out_button):
            widget.setEnabled(not self.busy)

    def start_build(self, mode: str = "build") -> bool:
        """Ask the worker to build (``"build"``), finish (``"resume"``) or update (``"add"``) an index.

        Returns:
            True when a request was sent; False when the form is incomplete or a build is running.
        """
        if self.busy:
            return False
        catalog = self.catalog_edit.text().strip()
        if not catalog:
            self._say("Choose a catalog CSV or a folder of images first.")
            return False
        if mode == "add":
            index = self.session.index
            if not index.get("directory"):
                self._say("Open or build an index first; Add updates the open index.")
                return False
            # an update must use the index's own model and pooling, whatever the form says
            request = BuildRequest(catalog, self.session.model_spec or index.get("model_spec"), index["directory"],
                                   pooling=index.get("pooling") or "srmac", index_type=index.get("index_type") or "flat",
                                   add=True)
        else:
            out = self.out_edit.text().strip()
            if not self.model_spec() or not out:
                self._say("Choose a model and an output folder first.")
                return False
            request = BuildRequest(catalog, self.model_spec(), out, pooling=self.pooling_combo.currentData(),
                                   index_type=self.index_type_combo.currentData(), resume=mode == "resume")
            self.settings.set("catalog/last_model", request.model_spec)
            self.settings.set("catalog/last_pooling", request.pooling)
            self.settings.set("catalog/last_index_type", request.index_type)
            self.settings.set("catalog/last_out", out)
        self.settings.set("catalog/last_source", catalog)
        self._last_event = None
        self._job = self.client.submit(request)
        self._job.progress.connect(self._on_progress)
        self._job.finished.connect(self._on_build_finished)
        self._job.cancelled.connect(self._on_cancelled)
        self._job.failed.connect(self._on_failed)
        self._update_buttons()
        verb = {"build": "Building", "resume": "Resuming", "add": "Updating"}[mode]
        self._say(f"{verb} {request.out_dir} with {request.model_spec} ({request.pooling})...")
        self.progress.start("Loading the model...")
        log.info("%s index %s from %s", verb.lower(), request.out_dir, catalog)
        return True

    def build_with_model(self, checkpoint_path: str) -> bool:
        """Use a freshly trained checkpoint: index the current catalog into a new folder and open it.

        The new folder sits next to the last index (or the catalog) and is named after the checkpoint.
        Returns True when the build started.
        """
        self.model_combo.setCurrentText(str(checkpoint_path))
        catalog = self.catalog_edit.text().strip()
        if self.busy:
            self._say("A build is running; wait for it or cancel it, then Build with the new model.")
            return False
        if not catalog:
            self._say("Choose the catalog to index with the new model, then press Build.")
            return False
        last = self.out_edit.text().strip() or self.session.index.get("directory") or ""
        parent = Path(last).parent if last else Path(catalog).parent
        self.out_edit.setText(str(unique_folder(parent, f"index-{Path(checkpoint_path).stem}")))
        return self.start_build("build")

    def cancel(self) -> None:
        """Ask the worker to stop the build at its next batch (the finished batches are kept)."""
        if self.busy:
            self._job.cancel()  # also when still queued: then it never starts
            self.cancel_button.setEnabled(False)
            self.progress.label.setText("Cancelling after the current batch...")

    def _on_progress(self, event) -> None:
        if event.stage in ("read catalog", "scan folder", "index", "finalize"):
            self._last_event = event
            self.progress.update_event(event)

    def _finish_job(self) -> BuildRequest | None:
        job, self._job = self._job, None
        self._update_buttons()
        return job.request if job is not None else None

    def _on_build_finished(self, summary) -> None:
        request = self._finish_job()
        if request is None:
            return
        rate = f", {summary.rate:.1f} img/s" if summary.indexed else ""
        resumed = f", {summary.already_done:,} already done" if summary.already_done else ""
        text = (f"{summary.indexed:,} indexed{resumed}, {len(summary.skipped):,} skipped "
                f"in {format_duration(summary.elapsed_s) or '0:00'}{rate}")
        self.progress.finish(f"Done: {text}")
        self._say(f"Index ready in {request.out_dir}.")
        if summary.info:
            self.show_index_info(summary.info)
        self.show_skipped(summary.skipped, f"{len(summary.skipped):,} skipped in the last "
                                           f"{'update' if request.add else 'build'}.")
        self._skipped_dir = str(request.out_dir)
        self.buildDone.emit(summary)
        self.indexReady.emit(str(request.out_dir), request.model_spec)

    def _on_cancelled(self) -> None:
        request = self._finish_job()
        if request is None:
            return
        done = self._last_event.done if self._last_event is not None and self._last_event.stage == "index" else 0
        if request.add:
            self._say("Update cancelled; the index is unchanged. Add again to continue where it stopped.")
        else:
            self._say("Build cancelled; press Resume to continue where it stopped.")
        self.progress.finish(f"Cancelled after {done:,} images", complete=False)

    def _on_failed(self, message: str) -> None:
        if self._finish_job() is not None:
            self.progress.finish("Failed", complete=False)
            self._say(message)

    def _say(self, text: str) -> None:
        self.message.setText(text)

    # ------------------------------------------------------------------ current index
    def on_session(self, info: SessionInfo) -> None:
        """An index and model were opened: show the summary and browse the new catalog."""
        self.session = info
        self.show_index_info(info.index)
        directory = info.index.get("directory")
        if directory and (self._skipped_dir is None or Path(directory) != Path(self._skipped_dir)):
            count = len(info.skipped)
            self.show_skipped(info.skipped, f"{count:,} files were skipped when this index was built."
                              if count else "No files were skipped in this index.")
            self._skipped_dir = directory
        self._update_buttons()
        self.filter_timer.stop()
        self.items_model.reset(self.filter_edit.text().strip(), active=bool(directory))
        self._on_page_loaded(0)

    def show_index_info(self, info: dict) -> None:
        """Fill the summary panel from ``CatalogIndex.info()``."""
        for key, label in self.summary_labels.items():
            value = info.get(key)
            if key == "whitening":
                text = "yes (PCA)" if value else "no"
            elif key == "recall_at_7":
                # measured at build time against exact search, on catalog vectors held out of training
                if value is None:
                    text = "-"
                elif str(info.get("structure") or "").startswith("exact"):
                    text = "1 (exact search)"
                else:
                    text = f"{value:.3f} against exact search"
            elif key == "structure" and value and info.get("index_size"):
                text = f"{value} ({info['index_size']})"
            elif key == "dim" and info.get("search_dim") and info.get("search_dim") != value:
                text = f"{value} (searched as {info['search_dim']})"
            elif isinstance(value, int) and not isinstance(value, bool):
                text = f"{value:,}"
            else:
                text = "-" if value in (None, "") else str(value)
            label.setText(text)

    def show_skipped(self, skipped: list[tuple[str, str]], note: str) -> None:
        self.skipped_box.setTitle(f"Skipped files ({len(skipped):,})" if skipped else "Skipped files")
        self.skipped_note.setText(note)
        self.skipped_table.setRowCount(len(skipped))
        for row, (item, reason) in enumerate(skipped):
            for column, text in enumerate((item, reason)):
                cell = QTableWidgetItem(str(text))
                cell.setToolTip(str(text))
                self.skipped_table.setItem(row, column, cell)

    # ------------------------------------------------------------------ browser
    def _apply_filter(self) -> None:
        if self.filter_edit.text().strip() != self.items_model.filter_text:
            self.items_model.reset(self.filter_edit.text().strip())
            self._on_page_loaded(0)

    def _fetch_items(self, filter_text: str, offset: int, limit: int) -> None:
        self._items_job = self.client.submit(ItemsRequest(filter_text, offset, limit))
        self._items_job.finished.connect(self._on_items_listed)
        self._items_job.failed.connect(self._on_items_failed)

    def _on_items_listed(self, page: ItemsPage) -> None:
        self.items_model.add_page(page.filter_text, page.offset, page.rows, page.total)
        self._fit_id_column(page.rows)

    def _fit_id_column(self, rows: list[dict]) -> None:
        """Widen the Id column to the longest id seen (never narrower; at most half the view)."""
        metrics = self.items_view.fontMetrics()
        longest = max((metrics.horizontalAdvance(str(row.get("id", ""))) for row in rows), default=0)
        wanted = self.items_model.thumbnail_size().width() + longest + 24  # icon, its gap and the cell margins
        wanted = min(wanted, max(320, self.items_view.viewport().width() // 2))
        if wanted > self.items_view.columnWidth(0):
            self.items_view.setColumnWidth(0, wanted)

    def _open_item(self, index) -> None:
        row = self.items_model.row_data(index.row())
        if row and row.get("path"):
            self.openItem.emit(str(row["path"]))

    def _on_items_failed(self, _message: str) -> None:
        self.items_model.fetch_failed()

    def _on_page_loaded(self, _total: int = 0) -> None:
        total = self.items_model.total
        if not self.session.index.get("directory"):
            self.browse_count.setText("Open or build an index to browse it.")
        elif total is None:
            self.browse_count.setText("Loading...")
        else:
            what = "match" if self.items_model.filter_text else "in the catalog"
            self.browse_count.setText(f"{total:,} items {what}")

    def shutdown(self) -> None:
        """Stop this tab's work (the window is closing): cancel its build, end the thumbnail pool."""
        self.filter_timer.stop()
        self.cancel()
        self.items_model.shutdown()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(event)
