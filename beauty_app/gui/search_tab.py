# Kept in one module (about 580 lines): one tab's layout and handlers; its pieces are apart (widgets/:
# results grid, heatmap view and legend, comparison dialog).
"""The Search tab: drop, open or paste a photo; see its attention maps, prediction and ranked results."""

from __future__ import annotations

import html
import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..imaging import IMAGE_EXTENSIONS
from ..visualize import COLORMAPS
from .settings import Settings
from .widgets.comparison import ComparisonDialog
from .widgets.heatmap_legend import HeatmapLegend
from .widgets.image_view import HeatmapView
from .widgets.qt_images import qimage_to_pil
from .widgets.results import THUMB, ResultGrid
from .worker import (
    AnalysisOutcome,
    AnalyzeRequest,
    BatchOutcome,
    BatchRequest,
    EngineClient,
    ItemsPage,
    ItemsRequest,
    Job,
    Operation,
    SearchOutcome,
    SearchRequest,
    SessionInfo,
)

log = logging.getLogger(__name__)

POOLING_LABELS = {"gap": "GAP", "mac": "MAC", "rmac": "R-MAC", "srmac": "SR-MAC", "ramac": "RA-MAC",
                  "spoc": "SPoC", "gem": "GeM"}
REGIONS_TIP = "Draw the regions whose max-pooled features enter the SR-MAC vector"
SAMPLE_COUNT = 12  # photos in the strip when it is filled from recent queries or the index
MAP_CHOICES = (("Saliency", "saliency"), ("Text", "text"), ("Both", "both"), ("None", "none"))

__all__ = ["ComparisonDialog", "SearchTab"]  # the dialog lives in widgets/comparison.py; imported here too


class SearchTab(QWidget):
    """Query panel with heatmap controls on the left, ranked results on the right."""

    searchDone = Signal(object)  # SearchOutcome (tests and the presenter strip listen)

    def __init__(self, client: EngineClient, settings: Settings, parent=None):
        super().__init__(parent)
        self.client = client
        self.settings = settings
        self.session = SessionInfo()
        self.current: SearchOutcome | None = None
        self.source = None  # what the next "search again" searches (path or PIL image)
        self.crop: tuple[int, int, int, int] | None = None
        self._dialog: ComparisonDialog | None = None
        self._jobs: list[Job] = []  # this tab's jobs not yet ended (searches, comparisons, batches)
        self.relevant: set[str] = set()  # known correct matches of the current query (from an evaluation)
        self._build()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.open_button = QPushButton("Open...")
        self.open_button.setToolTip("Open a photo (Ctrl+O); you can also drop files or paste with Ctrl+V")
        self.open_button.clicked.connect(self.open_image_dialog)
        self.paste_button = QPushButton("Paste")
        self.paste_button.clicked.connect(self.paste_from_clipboard)
        self.batch_button = QPushButton("Batch folder...")
        self.batch_button.setToolTip("Search every image of a folder and export the ranking (challenge CSV)")
        self.batch_button.clicked.connect(self.batch_dialog)

        self.map_combo = QComboBox()
        for label, value in MAP_CHOICES:
            self.map_combo.addItem(label, value)
        self.map_combo.setToolTip("Which attention map to overlay: saliency (product), text, both, or none")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(self.settings.get("view/opacity", 55, int))
        self.opacity.setToolTip("Heatmap opacity")
        self.opacity.setMinimumWidth(90)
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(list(COLORMAPS))
        self.colormap_combo.setCurrentText(self.settings.get("view/colormap", "turbo"))
        self.opacity_value = QLabel(f"{self.opacity.value()}%")
        self.opacity_value.setMinimumWidth(34)
        self.stretch_check = QCheckBox("Stretch")
        self.stretch_check.setToolTip("Spread a weak map over the whole colour scale (the legend shows its true peak)")
        self.regions_check = QCheckBox("SR-MAC regions")
        self.regions_check.setToolTip(REGIONS_TIP)
        for control in (self.map_combo, self.colormap_combo):
            control.currentIndexChanged.connect(self._apply_view)
        self.opacity.valueChanged.connect(self._apply_view)
        self.regions_check.toggled.connect(self._apply_view)
        self.stretch_check.toggled.connect(self._apply_view)

        self.pooling_combo = QComboBox()
        self.pooling_combo.setToolTip("Rank with another pooling of the same network to compare rankings")
        self.pooling_combo.currentIndexChanged.connect(lambda _: self.search_again())
        self.qe_check = QCheckBox("Query expansion")
        self.qe_check.setToolTip("Re-query with the query averaged with its top results (alpha-QE)")
        self.qe_spin = QSpinBox()
        self.qe_spin.setRange(1, 20)
        self.qe_spin.setValue(3)
        self.qe_check.toggled.connect(lambda _: self.search_again())
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 100)
        self.k_spin.setValue(self.settings.get("search/k", 12, int))
        self.k_spin.setPrefix("top ")
        self.again_button = QPushButton("Search again")
        self.again_button.setToolTip("Search the current query again (Ctrl+Return)")
        self.again_button.clicked.connect(self.search_again)
        self.reset_crop_button = QPushButton("Reset crop")
        self.reset_crop_button.setToolTip("Drag a box on the query to crop it; this searches the whole photo again")
        self.reset_crop_button.clicked.connect(self.reset_crop)
        self.export_button = QPushButton("Export PNG...")
        self.export_button.clicked.connect(self.export_view_dialog)

        # Two rows: what to search (and how to rank), then how to show it.
        toolbar = QHBoxLayout()
        for widget in (self.open_button, self.paste_button, self.batch_button, QLabel("Pooling:"), self.pooling_combo,
                       self.qe_check, self.qe_spin, self.k_spin, self.again_button, self.reset_crop_button):
            toolbar.addWidget(widget)
        toolbar.addStretch(1)
        view_bar = QHBoxLayout()
        for widget in (QLabel("Heatmap:"), self.map_combo, QLabel("Opacity:"), self.opacity, self.opacity_value,
                       self.stretch_check, QLabel("Colours:"), self.colormap_combo, self.regions_check):
            view_bar.addWidget(widget)
        view_bar.addStretch(1)
        view_bar.addWidget(self.export_button)

        self.query_view = HeatmapView(placeholder="Drop a photo of a beauty product here,\nor open / paste one.\n"
                                                  "Drag a box on the photo to crop it.", crop_enabled=True)
        self.query_view.cropSelected.connect(self._on_crop)
        self.legend = HeatmapLegend(self.query_view)
        self.prediction_box = QWidget()
        prediction_layout = QGridLayout(self.prediction_box)
        prediction_layout.setContentsMargins(0, 0, 0, 0)
        self.prediction_labels, self.prediction_bars = [], []
        for row in range(3):
            label, bar = QLabel(""), QProgressBar()
            bar.setRange(0, 1000)
            bar.setTextVisible(False)
            bar.setMaximumHeight(12)
            self.prediction_labels.append(label)
            self.prediction_bars.append(bar)
            prediction_layout.addWidget(label, row, 0)
            prediction_layout.addWidget(bar, row, 1)
        self.status_label = QLabel("Open a catalog index to search (Catalog tab, or File > Open index).")
        self.status_label.setWordWrap(True)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.query_view, 1)
        left_layout.addWidget(self.legend)
        self.prediction_title = QLabel("<b>Predicted category</b>")
        left_layout.addWidget(self.prediction_title)
        left_layout.addWidget(self.prediction_box)
        self.open_set_label = QLabel()
        self.open_set_label.setWordWrap(True)
        self.open_set_label.setVisible(False)
        left_layout.addWidget(self.open_set_label)
        left_layout.addWidget(self.status_label)

        self.results = ResultGrid()
        self.results.hitActivated.connect(self.compare_with)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        self.results_title = QLabel("<b>Results</b> (click one to compare it with the query)")
        right_layout.addWidget(self.results_title)
        right_layout.addWidget(self.results, 1)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)

        self.samples = QListWidget()
        self.samples.setViewMode(QListView.ViewMode.IconMode)
        self.samples.setFlow(QListView.Flow.LeftToRight)
        self.samples.setWrapping(False)
        self.samples.setIconSize(QSize(96, 96))
        self.samples.setMaximumHeight(130)
        self.samples.setToolTip("Sample photos: click one to search it")
        self.samples.itemClicked.connect(lambda item: self.search_path(item.data(Qt.ItemDataRole.UserRole)))
        self.samples.setVisible(False)

        splitter.setSizes([560, 840])
        layout = QVBoxLayout(self)
        layout.addLayout(toolbar)
        layout.addLayout(view_bar)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.samples)
        self._set_enabled(False)

    # ------------------------------------------------------------------ public slots
    def on_session(self, info: SessionInfo) -> None:
        self.session = info
        self.pooling_combo.blockSignals(True)
        self.pooling_combo.clear()
        for name in info.poolings:
            self.pooling_combo.addItem(POOLING_LABELS.get(name, name), name)
        self.pooling_combo.blockSignals(False)
        self._set_enabled(True)
        # Off-the-shelf backbones have no categories, and no learned maps to show.
        self.prediction_title.setVisible(bool(info.classes))
        self.prediction_box.setVisible(bool(info.classes))
        self.open_set_label.setVisible(False)
        self._gate_regions(info.index.get("pooling"))
        self.status_label.setText(f"Index of {info.index.get('count', 0):,} catalog images ready. Drop a photo.")
        if self.source is not None:
            self.search_again()

    def shutdown(self) -> None:
        """Stop this tab's work (the window is closing): cancel its jobs, close the comparison dialog."""
        for job in self._jobs:
            job.cancel()
        if self._dialog is not None:
            self._dialog.close()
            self._dialog = None

    def set_samples(self, paths, captions: dict[str, str] | None = None) -> None:
        """Fill the strip of photos to step through (presenter samples, several opened photos, a batch)."""
        self.samples.clear()
        captions = captions or {}
        for path in paths:
            pixmap = QPixmap(str(path))
            icon = QIcon(pixmap.scaled(192, 192, Qt.AspectRatioMode.KeepAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)) if not pixmap.isNull() else QIcon()
            item = QListWidgetItem(icon, captions.get(str(path), Path(path).stem))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            self.samples.addItem(item)
        self.samples.setVisible(self.samples.count() > 0)

    def fill_samples_if_empty(self) -> None:
        """Presenter mode without the demo: the recent queries, else the open index's first images."""
        if self.samples.count():
            return
        recent = [path for path in self.recent_queries() if Path(path).is_file()]
        if recent:
            self.set_samples(recent)
        elif self.session.model:
            job = self._submit(ItemsRequest("", 0, SAMPLE_COUNT))
            job.finished.connect(self._on_index_samples)

    def recent_queries(self) -> list[str]:
        value = self.settings.get("search/recent", "")
        return [path for path in value.split("\n") if path]

    def step_samples(self, step: int) -> bool:
        """Search the next (+1) or previous (-1) photo of the strip; False at either end or when empty."""
        count = self.samples.count()
        if not count:
            return False
        row = self.samples.currentRow()
        row = 0 if row < 0 and step > 0 else row + step
        if not 0 <= row < count:
            return False
        self.samples.setCurrentRow(row)
        self.search_path(self.samples.item(row).data(Qt.ItemDataRole.UserRole))
        return True

    def set_presenter_mode(self, enabled: bool) -> None:
        if enabled:
            self.fill_samples_if_empty()
        self.samples.setVisible(enabled or self.samples.count() > 0)
        self.samples.setIconSize(QSize(140, 140) if enabled else QSize(96, 96))
        self.samples.setMaximumHeight(200 if enabled else 136)

    def search_path(self, path: str, relevant=None) -> None:
        """Search a photo file; `relevant` (ids known to be correct, from an evaluation) are shown in green."""
        self.crop = None
        self.source = str(path)
        self.relevant = set(relevant or ())
        self.settings.set("search/last_dir", str(Path(path).parent))
        self._remember_query(str(path))
        self._select_sample(str(path))
        self.search_again()

    def _remember_query(self, path: str) -> None:
        recent = [path] + [other for other in self.recent_queries() if other != path]
        self.settings.set("search/recent", "\n".join(recent[:SAMPLE_COUNT]))

    def _select_sample(self, path: str) -> None:
        for row in range(self.samples.count()):
            if self.samples.item(row).data(Qt.ItemDataRole.UserRole) == path:
                self.samples.blockSignals(True)
                self.samples.setCurrentRow(row)
                self.samples.blockSignals(False)
                return

    def _on_index_samples(self, page: ItemsPage) -> None:
        paths = [row["path"] for row in page.rows if row.get("path") and Path(row["path"]).is_file()]
        if paths and not self.samples.count():
            self.set_samples(paths)

    def search_image(self, image) -> None:
        """Search an already decoded PIL image (pasted from the clipboard)."""
        self.crop = None
        self.source = image
        self.relevant = set()
        self.search_again()

    def next_search(self) -> SearchRequest | None:
        """The search :meth:`search_again` would make now (None without a photo); the warm-up makes it first."""
        if self.source is None:
            return None
        ratio = self.results.devicePixelRatioF()
        return SearchRequest(self.source, k=self.k_spin.value(),
                             query_expansion=self.qe_spin.value() if self.qe_check.isChecked() else 0,
                             pooling=self.pooling_combo.currentData(), crop=self.crop,
                             thumbnail_side=round(THUMB * ratio) if ratio > 1 else 0)

    def search_again(self) -> None:
        if self.source is None:
            return
        if not self.session.model:
            self._show_without_index()
            return
        request = self.next_search()
        self.status_label.setText("Searching...")
        job = self._submit(request)
        job.finished.connect(self._on_search_finished)
        self.again_button.setEnabled(False)

    def reset_crop(self) -> None:
        if self.crop is not None:
            self.crop = None
            self.search_again()

    def open_image_dialog(self) -> None:
        patterns = " ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS))
        path, _ = QFileDialog.getOpenFileName(self, "Open a photo", self.settings.get("search/last_dir", ""),
                                              f"Images ({patterns})")
        if path:
            self.search_path(path)

    def paste_from_clipboard(self) -> None:
        clipboard = QGuiApplication.clipboard()
        mime = clipboard.mimeData()
        if mime is not None and mime.hasUrls():
            self.handle_drop(mime)
            return
        image = clipboard.image()
        if image.isNull():
            QMessageBox.information(self, "Paste", "The clipboard holds no image.")
            return
        self.search_image(qimage_to_pil(image))

    def handle_drop(self, mime) -> None:
        """Files: search the first image (the rest go to the sample strip); a folder: batch search it."""
        if mime.hasUrls():
            paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
            folders = [p for p in paths if p.is_dir()]
            images = [p for p in paths if p.is_file()]
            if folders:
                self.batch_dialog(str(folders[0]))
                return
            if images:
                if len(images) > 1:
                    self.set_samples(images)
                self.search_path(str(images[0]))
                return
        if mime.hasImage():
            self.search_image(qimage_to_pil(mime.imageData()))

    def batch_dialog(self, folder: str | None = None) -> None:
        """Search every image of a folder and write the ranking in the challenge's submission format."""
        if not self.session.model:
            QMessageBox.information(self, "Batch search", "Open a catalog index first.")
            return
        folder = folder or QFileDialog.getExistingDirectory(self, "Folder of query photos",
                                                            self.settings.get("search/last_dir", ""))
        if not folder:
            return
        default = str(Path(folder) / "ranking.csv")
        out, _ = QFileDialog.getSaveFileName(self, "Save the ranking as", default, "CSV (*.csv)")
        if out:
            self.batch_search(folder, out)

    def batch_search(self, folder: str, out_csv: str) -> Job:
        """Search every image of `folder` and write the ranking to `out_csv` (the challenge's format)."""
        self.status_label.setText(f"Batch search of {folder} ...")
        job = self._submit(BatchRequest(folder, out_csv, k=7,
                                        query_expansion=self.qe_spin.value() if self.qe_check.isChecked() else 0))
        job.finished.connect(self._on_batch_finished)
        return job

    def export_view_dialog(self) -> None:
        if self.current is None:
            QMessageBox.information(self, "Export", "Search a photo first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export the view as PNG", "beautylens-view.png", "PNG (*.png)")
        if path:
            self.export_view(path)

    def export_view(self, path: str) -> bool:
        """Save the current view (query with heatmap, prediction and results) as a PNG."""
        return self.grab().save(path, "PNG")

    def compare_with(self, hit) -> None:
        """Open "why this match" on `hit`, with previous / next over the current results."""
        if self.current is None or hit is None:
            return
        if self._dialog is not None:
            self._dialog.close()
        hits = self.current.result.hits
        position = next((i for i, h in enumerate(hits) if h.id == hit.id), 0)
        request = self.current.request
        self._dialog = ComparisonDialog(self, self.client, self.current.image, self.current.result.analysis, hits,
                                        position, self._view_options(), pooling=request.pooling,
                                        query_expansion=request.query_expansion)
        self._dialog.show()

    # ------------------------------------------------------------------ engine results
    def _on_search_finished(self, outcome: SearchOutcome) -> None:
        self.current = outcome
        analysis = outcome.result.analysis
        self.query_view.set_content(np.asarray(outcome.image), analysis.saliency, analysis.text, analysis.regions)
        self._apply_view()
        self._show_prediction(analysis)
        self._gate_regions(outcome.request.pooling or self.session.index.get("pooling"))
        relevant = self.relevant if outcome.request.source == self.source else set()
        self.results.show_hits(outcome.result.hits, outcome.thumbnails, relevant)
        pooling = POOLING_LABELS.get(outcome.request.pooling or "", outcome.request.pooling or "")
        crop = " (cropped)" if outcome.request.crop else ""
        qe = f", QE {outcome.request.query_expansion}" if outcome.request.query_expansion else ""
        self.results_title.setText(f"<b>Results</b> — {pooling}{qe}{crop}, {outcome.elapsed_s * 1000:.0f} ms "
                                   f"(click one to compare it with the query)")
        name = Path(str(outcome.request.source)).name if isinstance(outcome.request.source, str) else "pasted image"
        found = ""
        if relevant:
            correct = len(self.results.relevant_rows())
            found = f"; {correct} of the {len(relevant)} known correct matches shown (green)"
        self.status_label.setText(f"{name}: {len(outcome.result.hits)} results in {outcome.elapsed_s * 1000:.0f} ms"
                                  f"{found}")
        self.searchDone.emit(outcome)

    def _show_without_index(self) -> None:
        """No index yet: show the photo, and its maps from the default model, and say what searching needs."""
        source = self.source
        if isinstance(source, str):
            from PIL import Image

            try:
                with Image.open(source) as image:
                    self.query_view.set_content(np.asarray(image.convert("RGB")))
            except OSError:
                pass  # the worker's analysis below says what is wrong with the file
            job = self._submit(AnalyzeRequest(source))
            job.finished.connect(self._on_query_analysis)
            self.status_label.setText("Computing the attention maps... Open a catalog index to search "
                                      "(Catalog tab, or File > Open index).")
        else:
            self.query_view.set_content(np.asarray(source.convert("RGB")))
            self.status_label.setText("Open a catalog index to search (Catalog tab, or File > Open index).")

    def _on_query_analysis(self, outcome: AnalysisOutcome) -> None:
        if outcome.request.path != self.source or self.session.model:
            return  # another photo since, or an index opened meanwhile (its search shows the maps)
        analysis = outcome.analysis
        self.query_view.set_content(np.asarray(outcome.image), analysis.saliency, analysis.text, analysis.regions)
        self._apply_view()
        self._show_prediction(analysis)
        self.status_label.setText(f"{Path(self.source).name}: its attention maps from the default model. Open a "
                                  "catalog index to search (Catalog tab, or File > Open index).")

    def _show_prediction(self, analysis) -> None:
        for row in range(3):
            if row < len(analysis.top_classes):
                name, probability = analysis.top_classes[row]
                self.prediction_labels[row].setText(f"{name}  {probability:.0%}")
                self.prediction_bars[row].setValue(int(probability * 1000))
            else:
                self.prediction_labels[row].setText("")
                self.prediction_bars[row].setValue(0)
        self._show_open_set(analysis.top_classes)

    def _on_batch_finished(self, outcome: BatchOutcome) -> None:
        out_csv, results = outcome.out_csv, outcome.results
        failed = [r for r in results if r.error]
        message = f"Searched {len(results) - len(failed)} photos; ranking written to {out_csv}."
        if failed:
            message += f" {len(failed)} files could not be read (e.g. {Path(failed[0].query).name}: {failed[0].error})."
        searched = [r for r in results if not r.error]
        if searched:
            # The batch's photos go to the strip, each captioned with its best match; the first is shown.
            captions = {r.query: f"{Path(r.query).stem} → {r.hits[0].id}" if r.hits else Path(r.query).stem
                        for r in searched}
            self.set_samples([r.query for r in searched], captions)
            message += " Its photos are in the strip below with their best match: click one (or Page Down) to see its results."
        self.status_label.setText(message)

    def _submit(self, request) -> Job:
        job = self.client.submit(request)
        self._jobs.append(job)
        job.failed.connect(self._on_failed)
        for ended in (job.finished, job.failed, job.cancelled):
            ended.connect(self._forget_ended_jobs)
        return job

    def _forget_ended_jobs(self, *_args) -> None:
        self._jobs = [job for job in self._jobs if not job.done]
        searching = any(job.operation is Operation.SEARCH for job in self._jobs)
        self.again_button.setEnabled(not searching and self.session.model != "")

    def _on_failed(self, message: str) -> None:
        self.status_label.setText(message)

    def _on_crop(self, left: int, top: int, right: int, bottom: int) -> None:
        if self.current is None:
            return
        # Crops compose: a box drawn on a cropped view is relative to that crop.
        offset_x, offset_y = (self.crop[0], self.crop[1]) if self.crop else (0, 0)
        self.crop = (left + offset_x, top + offset_y, right + offset_x, bottom + offset_y)
        self.search_again()

    def _show_open_set(self, top_classes) -> None:
        """Say "not one of the model's categories" when the top class is below the model's threshold."""
        from ..models.open_set import outside_categories

        rule = self.session.open_set
        if rule is None or not top_classes:
            self.open_set_label.setVisible(False)
            return
        name, probability = top_classes[0]
        if outside_categories(probability, rule):
            self.open_set_label.setText(
                f"<b>Not one of the model's categories.</b> Its best guess, {html.escape(name)}, has only "
                f"{probability:.0%} ({rule.describe()}).")
            self.open_set_label.setStyleSheet("color: #a04000;")
        else:
            self.open_set_label.setText(f"Top class {html.escape(name)} at {probability:.0%} ({rule.describe()}).")
            self.open_set_label.setStyleSheet("")
        self.open_set_label.setVisible(True)

    def _gate_regions(self, pooling: str | None) -> None:
        """SR-MAC regions exist only for SR-MAC rankings: elsewhere the box is off and says why."""
        srmac = pooling == "srmac"
        self.regions_check.setEnabled(srmac)
        self.regions_check.setToolTip(REGIONS_TIP if srmac else
                                      f"Regions are part of SR-MAC pooling only; this ranking uses "
                                      f"{POOLING_LABELS.get(pooling or '', pooling)}.")
        self._apply_view()

    # ------------------------------------------------------------------ view options
    def _view_options(self) -> dict:
        return {"which": self.map_combo.currentData(), "opacity": self.opacity.value() / 100.0,
                "colormap": self.colormap_combo.currentText(),
                "show_regions": self.regions_check.isChecked() and self.regions_check.isEnabled(),
                "stretch": self.stretch_check.isChecked()}

    def _apply_view(self, *_args) -> None:
        options = self._view_options()
        self.opacity_value.setText(f"{self.opacity.value()}%")
        self.query_view.set_view(**options)
        self.settings.set("view/opacity", self.opacity.value())
        self.settings.set("view/colormap", options["colormap"])

    def _set_enabled(self, enabled: bool) -> None:
        for widget in (self.again_button, self.batch_button, self.pooling_combo, self.qe_check, self.export_button):
            widget.setEnabled(enabled)
