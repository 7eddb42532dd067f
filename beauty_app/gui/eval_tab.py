# Kept in one module (about 600 lines): one tab's form, runs table and handlers; the plot is apart
# (widgets/eval_plot.py).
"""The Evaluation tab: MAP@k of the open index on a query folder and truth CSV, runs side by side."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Qt, Signal
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
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..challenge_files import read_truth
from ..fileio import write_csv
from ..errors import UserError
from ..imaging import IMAGE_EXTENSIONS
from .settings import Settings
from .widgets.catalog_progress import JobProgress, format_duration
from .widgets.eval_plot import ApBarPlot, ap_colour
from .worker import EngineClient, EvalRequest, Job, SessionInfo

log = logging.getLogger(__name__)

DENOMINATORS = (
    ("nrel", "Divide by the number of relevant catalog images (the paper's AP)"),
    ("min", "Divide by min(k, relevant images), as Kaggle's apk does"),
    ("hits", "Divide by the relevant images found in the top k (some 2018 challenge entries)"),
)
RUN_COLUMNS = ("Label", "MAP@k", "Queries", "Failures", "Seconds")
QUERY_ID_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


def model_short_name(spec: str) -> str:
    """``imagenet:resnet50`` -> ``resnet50``; ``/x/manet-best.pt`` -> ``manet-best``."""
    if not spec:
        return "model"
    if ":" in spec and not Path(spec).suffix:
        return spec.split(":", 1)[1] or spec
    return Path(spec).stem or spec


def query_files(folder: str | Path) -> dict[str, str]:
    """Query id (file stem) -> image path for the images directly in `folder`, as the evaluation reads them."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    return {path.stem: str(path) for path in files}


@dataclass
class EvalRun:
    """One finished evaluation, with what is needed to show and export it."""

    label: str
    request: EvalRequest
    report: object  # evaluation.evaluate.EvalReport
    query_paths: dict[str, str]  # query id -> image file
    truth: dict[str, list[str]] = field(default_factory=dict)
    model_spec: str = ""
    pooling: str = ""

    @property
    def map(self) -> float:
        return float(self.report.result.value)

    @property
    def per_query(self) -> dict[str, float]:
        return self.report.result.per_query

    def worst_first(self) -> list[tuple[str, float]]:
        return sorted(self.per_query.items(), key=lambda item: (item[1], item[0]))

    def failure_reasons(self) -> dict[str, str]:
        return dict(self.report.failures)


@dataclass
class _Pending:
    request: EvalRequest
    query_paths: dict[str, str]
    model_spec: str
    pooling: str


class _SortItem(QTableWidgetItem):
    """A cell that sorts by the number (or text) in SORT_ROLE instead of its display text."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if mine is None or theirs is None:
            return super().__lt__(other)
        return (mine, self.text()) < (theirs, other.text())


def _cell(text: str, sort_value=None, tooltip: str = "") -> QTableWidgetItem:
    item = _SortItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if sort_value is not None:
        item.setData(SORT_ROLE, sort_value)
    if tooltip:
        item.setToolTip(tooltip)
    return item


def _path_row(edit: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return row


class EvalTab(QWidget):
    """Evaluation form, a table of runs, the selected run's per-query AP (worst first) and its chart."""

    openQuery = Signal(str, list)  # a query image path to show in the Search tab, its known correct ids
    runFinished = Signal(object)  # EvalRun

    def __init__(self, client: EngineClient, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.client = client
        self.settings = settings
        self.session = SessionInfo()
        self.runs: list[EvalRun] = []
        self._pending: _Pending | None = None
        self._job: Job | None = None  # the evaluation running for _pending
        self._label_edited = False
        self._build_ui()
        self._restore_settings()
        self._connect()
        self._update_label()
        self._update_buttons()

    # ------------------------------------------------------------------ construction
    def _build_ui(self) -> None:
        self.queries_edit = QLineEdit()
        self.queries_edit.setPlaceholderText("Folder of query photos (file name = query id)")
        self.queries_button = QPushButton("Browse...")
        self.truth_edit = QLineEdit()
        self.truth_edit.setPlaceholderText("Truth CSV: query id, relevant catalog ids...")
        self.truth_button = QPushButton("Browse...")
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 100)
        self.k_spin.setValue(7)
        self.k_spin.setToolTip("Cut-off rank: MAP@k scores the top k results of every query (the challenge uses 7)")
        self.denominator_combo = QComboBox()
        for name, tip in DENOMINATORS:
            self.denominator_combo.addItem(name, name)
            self.denominator_combo.setItemData(self.denominator_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.denominator_combo.setToolTip("What AP divides by; the variants agree when a query has one relevant image")
        self.qe_spin = QSpinBox()
        self.qe_spin.setRange(0, 20)
        self.qe_spin.setToolTip("Query expansion: average the query with its top n results and search again (0 = off)")
        self.label_edit = QLineEdit()
        self.label_edit.setToolTip("The name of this run in the runs table; clear it to get the automatic name")

        options = QWidget()
        options_layout = QHBoxLayout(options)
        options_layout.setContentsMargins(0, 0, 0, 0)
        for text, widget in (("k:", self.k_spin), ("AP denominator:", self.denominator_combo),
                             ("Query expansion:", self.qe_spin)):
            options_layout.addWidget(QLabel(text))
            options_layout.addWidget(widget)
        options_layout.addStretch(1)

        form = QFormLayout()
        form.addRow("Queries:", _path_row(self.queries_edit, self.queries_button))
        form.addRow("Truth CSV:", _path_row(self.truth_edit, self.truth_button))
        form.addRow("", options)
        form.addRow("Run label:", self.label_edit)

        self.run_button = QPushButton("&Run")
        self.run_button.setToolTip("Search every query of the truth file in the open index and score MAP@k (Ctrl+R)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the evaluation after the current batch (Esc)")
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        self.progress = JobProgress("queries")
        self.message = QLabel("Open an index, choose the queries and their truth file, then Run.")
        self.message.setWordWrap(True)

        setup_box = QGroupBox("Evaluation set")
        setup_layout = QVBoxLayout(setup_box)
        setup_layout.addLayout(form)
        setup_layout.addLayout(buttons)
        setup_layout.addWidget(self.progress)
        setup_layout.addWidget(self.message)
        setup_layout.addStretch(1)

        self.runs_table = QTableWidget(0, len(RUN_COLUMNS))
        self.runs_table.setHorizontalHeaderLabels(RUN_COLUMNS)
        self.runs_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.runs_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.runs_table.verticalHeader().setVisible(False)
        header = self.runs_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(RUN_COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.export_button = QPushButton("&Export CSV...")
        self.export_button.setToolTip("Save the selected run's per-query AP and rankings as a CSV file")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected run from the table")
        runs_buttons = QHBoxLayout()
        runs_buttons.addStretch(1)
        runs_buttons.addWidget(self.remove_button)
        runs_buttons.addWidget(self.export_button)
        runs_box = QGroupBox("Runs")
        runs_layout = QVBoxLayout(runs_box)
        runs_layout.addWidget(self.runs_table)
        runs_layout.addLayout(runs_buttons)

        self.query_table = QTableWidget(0, 0)
        self.query_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.query_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.query_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.query_table.verticalHeader().setVisible(False)
        self.query_table.setWordWrap(False)
        self.query_table.horizontalHeader().setStretchLastSection(True)
        self.query_table.setToolTip("Double-click (or Enter) opens the query in the Search tab")
        self.query_box = QGroupBox("Per-query AP, worst first")
        query_layout = QVBoxLayout(self.query_box)
        hint = QLabel("Double-click a query to open it in the Search tab.")
        query_layout.addWidget(hint)
        query_layout.addWidget(self.query_table)

        self.plot = ApBarPlot()
        self.plot.setMinimumHeight(self.fontMetrics().height() * 10)
        plot_box = QGroupBox("AP per query")
        plot_layout = QVBoxLayout(plot_box)
        plot_layout.addWidget(self.plot)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(setup_box)
        top.addWidget(runs_box)
        top.setStretchFactor(0, 1)
        top.setStretchFactor(1, 1)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.query_box)
        bottom.addWidget(plot_box)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        outer = QSplitter(Qt.Orientation.Vertical)
        outer.addWidget(top)
        outer.addWidget(bottom)
        outer.setStretchFactor(0, 2)
        outer.setStretchFactor(1, 3)
        for splitter in (top, bottom, outer):
            splitter.setChildrenCollapsible(False)
        # proportions, not pixels: QSplitter scales these to the space it gets
        top.setSizes([3000, 2000])
        bottom.setSizes([3000, 2000])
        outer.setSizes([2000, 3000])
        layout = QVBoxLayout(self)
        layout.addWidget(outer)

        QShortcut(QKeySequence("Ctrl+R"), self, self.run, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.cancel,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)

    def _restore_settings(self) -> None:
        self.queries_edit.setText(self.settings.get("eval/queries", ""))
        self.truth_edit.setText(self.settings.get("eval/truth", ""))
        self.k_spin.setValue(self.settings.get("eval/k", 7, int))
        found = self.denominator_combo.findData(self.settings.get("eval/denominator", "nrel"))
        self.denominator_combo.setCurrentIndex(max(found, 0))
        self.qe_spin.setValue(self.settings.get("eval/qe", 0, int))

    def _connect(self) -> None:
        self.queries_button.clicked.connect(self.choose_queries)
        self.truth_button.clicked.connect(self.choose_truth)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self.export_dialog)
        self.remove_button.clicked.connect(self.remove_selected_run)
        self.qe_spin.valueChanged.connect(self._update_label)
        self.label_edit.textEdited.connect(self._on_label_edited)
        for edit in (self.queries_edit, self.truth_edit):
            edit.textChanged.connect(self._update_buttons)
        self.runs_table.itemSelectionChanged.connect(self._on_run_selected)
        self.query_table.activated.connect(lambda index: self.open_query_row(index.row()))

    # ------------------------------------------------------------------ choosers and labels
    def choose_queries(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the folder of query photos", self.queries_edit.text())
        if folder:
            self.queries_edit.setText(folder)

    def choose_truth(self) -> None:
        start = str(Path(self.truth_edit.text()).parent) if self.truth_edit.text() else self.queries_edit.text()
        path, _ = QFileDialog.getOpenFileName(self, "Choose the truth CSV", start, "CSV files (*.csv);;All files (*)")
        if path:
            self.truth_edit.setText(path)

    def default_label(self) -> str:
        pooling = self.session.index.get("pooling") or "?"
        model = model_short_name(self.session.index.get("model_spec") or self.session.model_spec)
        return f"{pooling} {model} QE={self.qe_spin.value()}"

    def _on_label_edited(self, text: str) -> None:
        self._label_edited = bool(text.strip())

    def _update_label(self) -> None:
        if not self._label_edited:
            self.label_edit.setText(self.default_label())

    def _unique_label(self, label: str) -> str:
        taken = {run.label for run in self.runs}
        if self._pending is not None:
            taken.add(self._pending.request.label)
        candidate, number = label, 2
        while candidate in taken:
            candidate = f"{label} #{number}"
            number += 1
        return candidate

    def on_session(self, info: SessionInfo) -> None:
        """A new index or model is open: later runs use it; earlier runs stay for comparison."""
        self.session = info
        self._update_label()
        self._update_buttons()

    # ------------------------------------------------------------------ running
    @property
    def busy(self) -> bool:
        return self._pending is not None

    def _update_buttons(self) -> None:
        has_session = bool(self.session.index.get("directory"))
        ready = has_session and bool(self.queries_edit.text().strip()) and bool(self.truth_edit.text().strip())
        self.run_button.setEnabled(ready and not self.busy)
        self.run_button.setToolTip("Search every query of the truth file in the open index and score MAP@k (Ctrl+R)"
                                   if has_session else "Open an index first (Catalog tab or File > Open index)")
        self.cancel_button.setEnabled(self.busy)
        selected = self.selected_run() is not None
        self.export_button.setEnabled(selected)
        self.remove_button.setEnabled(selected)

    def run(self) -> bool:
        """Start an evaluation of the open index; returns False (with a message) when it cannot start."""
        if self.busy:
            return False
        if not self.session.index.get("directory"):
            self._say("Open an index first (Catalog tab, or File > Open index).")
            return False
        queries, truth = self.queries_edit.text().strip(), self.truth_edit.text().strip()
        if not queries or not truth:
            self._say("Choose the query folder and the truth CSV first.")
            return False
        try:
            paths = query_files(queries)
        except OSError:
            self._say(f"The query folder {queries} cannot be read.")
            return False
        if not paths:
            self._say(f"The query folder {queries} holds no images.")
            return False
        label = self._unique_label(self.label_edit.text().strip() or self.default_label())
        request = EvalRequest(queries, truth, k=self.k_spin.value(), denominator=self.denominator_combo.currentData(),
                              query_expansion=self.qe_spin.value(), label=label)
        for key, value in (("eval/queries", queries), ("eval/truth", truth), ("eval/k", request.k),
                           ("eval/denominator", request.denominator), ("eval/qe", request.query_expansion)):
            self.settings.set(key, value)
        self._pending = _Pending(request, paths, self.session.index.get("model_spec") or self.session.model_spec,
                                 self.session.index.get("pooling") or "")
        self._update_buttons()
        self.progress.start("Waiting for the engine...")
        self._say(f"Running \"{label}\" on {len(paths):,} query images...")
        self._job = self.client.submit(request)
        self._job.progress.connect(self._on_progress)
        self._job.finished.connect(self._on_eval_finished)
        self._job.cancelled.connect(self._on_cancelled)
        self._job.failed.connect(self._on_failed)
        return True

    def shutdown(self) -> None:
        """Stop this tab's work (the window is closing): cancel a running evaluation."""
        self.cancel()

    def cancel(self) -> None:
        """Stop the evaluation at its next batch (also when it is still waiting for the worker)."""
        if self.busy:
            self._job.cancel()  # also when still queued: then it never starts
            self.cancel_button.setEnabled(False)
            self.progress.label.setText("Cancelling...")

    def _on_progress(self, event) -> None:
        if event.stage == "search":
            self.progress.update_event(event)

    def _on_eval_finished(self, report) -> None:
        pending, self._pending, self._job = self._pending, None, None
        label = pending.request.label
        try:
            truth = read_truth(pending.request.truth)
        except UserError:
            truth = {}  # the file changed since the run; the table just lacks the relevant ids
        run = EvalRun(label, pending.request, report, pending.query_paths, truth, pending.model_spec, pending.pooling)
        self.runs.append(run)
        self._add_run_row(run)
        self.runs_table.selectRow(len(self.runs) - 1)
        self.progress.finish(f"MAP@{report.result.k} = {run.map:.4f} in {format_duration(report.elapsed_s) or '0:00'}")
        failures = f"; {len(report.failures)} queries could not be read" if report.failures else ""
        missing = len(report.result.missing_queries) - len(report.failures)
        missing_text = f"; {missing} truth queries have no image and score 0" if missing > 0 else ""
        self._say(f"\"{label}\": MAP@{report.result.k} {run.map:.4f} over {len(run.per_query):,} queries"
                  f"{failures}{missing_text}.")
        self._update_buttons()
        self.runFinished.emit(run)

    def _stop(self, message: str, status: str) -> None:
        self._pending = None
        self._job = None
        self.progress.finish(status, complete=False)
        self._say(message)
        self._update_buttons()

    def _on_cancelled(self) -> None:
        self._stop("Evaluation cancelled.", "Cancelled")

    def _on_failed(self, message: str) -> None:
        self._stop(message, "Failed")

    def _say(self, text: str) -> None:
        self.message.setText(text)

    # ------------------------------------------------------------------ runs and per-query views
    def _add_run_row(self, run: EvalRun) -> None:
        row = self.runs_table.rowCount()
        self.runs_table.insertRow(row)
        report, request = run.report, run.request
        details = (f"{run.model_spec} ({run.pooling}), k={report.result.k}, denominator {report.result.denominator}, "
                   f"QE={request.query_expansion}\nqueries: {request.queries}\ntruth: {request.truth}")
        failures = "\n".join(f"{query}: {reason}" for query, reason in report.failures[:20])
        cells = (_cell(run.label, run.label.lower(), details),
                 _cell(f"{run.map:.4f}", run.map, f"MAP@{report.result.k} ({report.result.denominator})"),
                 _cell(f"{len(run.per_query):,}", len(run.per_query)),
                 _cell(f"{len(report.failures):,}", len(report.failures), failures),
                 _cell(f"{report.elapsed_s:.2f}" if report.elapsed_s < 10 else f"{report.elapsed_s:.0f}",
                       float(report.elapsed_s)))
        for column, cell in enumerate(cells):
            self.runs_table.setItem(row, column, cell)
        ks = {r.report.result.k for r in self.runs}
        self.runs_table.setHorizontalHeaderItem(1, QTableWidgetItem(f"MAP@{ks.pop()}" if len(ks) == 1 else "MAP@k"))

    def selected_run(self) -> EvalRun | None:
        rows = self.runs_table.selectionModel().selectedRows() if self.runs_table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.runs):
            return None
        return self.runs[rows[0].row()]

    def remove_selected_run(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        row = self.runs.index(run)
        del self.runs[row]
        self.runs_table.removeRow(row)
        if self.runs:
            self.runs_table.selectRow(min(row, len(self.runs) - 1))
        else:
            self.show_run(None)
        self._update_buttons()

    def _on_run_selected(self) -> None:
        self.show_run(self.selected_run())
        self._update_buttons()

    def show_run(self, run: EvalRun | None) -> None:
        """Fill the per-query table (worst first, with the other runs' AP beside) and the chart."""
        self.query_table.setSortingEnabled(False)
        self.query_table.clearContents()
        self.query_table.setRowCount(0)
        if run is None:
            self.query_table.setColumnCount(0)
            self.query_box.setTitle("Per-query AP, worst first")
            self.plot.set_values([], None)
            return
        others = [other for other in self.runs if other is not run]
        headers = ["Query", f"AP ({run.label})", *[f"AP ({other.label})" for other in others],
                   "Relevant", f"Top {run.report.result.k} ranked"]
        self.query_table.setColumnCount(len(headers))
        metrics = self.query_table.horizontalHeader().fontMetrics()
        for column, text in enumerate(headers):
            # long run labels would make the AP columns wide; the full label is in the tooltip
            shown = metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, metrics.horizontalAdvance("x" * 16))
            header_item = QTableWidgetItem(shown)
            header_item.setToolTip(text)
            self.query_table.setHorizontalHeaderItem(column, header_item)
        reasons = run.failure_reasons()
        ordered = run.worst_first()
        self.query_table.setRowCount(len(ordered))
        for row, (query, ap) in enumerate(ordered):
            path = run.query_paths.get(query)
            if query in reasons:
                tip = f"Could not be read: {reasons[query]}"
            elif path is None:
                tip = "No image for this query in the queries folder (scored 0)"
            else:
                tip = path
            query_cell = _cell(query, query, tip)
            query_cell.setData(QUERY_ID_ROLE, query)
            self.query_table.setItem(row, 0, query_cell)
            ap_cell = _cell(f"{ap:.3f}", ap)
            ap_cell.setForeground(ap_colour(ap).darker(140))
            self.query_table.setItem(row, 1, ap_cell)
            for column, other in enumerate(others, start=2):
                value = other.per_query.get(query)
                self.query_table.setItem(row, column, _cell("-" if value is None else f"{value:.3f}",
                                                            -1.0 if value is None else value))
            relevant = run.truth.get(query, [])
            ranked = run.report.rankings.get(query, [])
            relevant_set = set(relevant)
            found = [f"[{item}]" if item in relevant_set else item for item in ranked]
            self.query_table.setItem(row, len(headers) - 2, _cell(" ".join(relevant), len(relevant),
                                                                  "\n".join(relevant)))
            self.query_table.setItem(row, len(headers) - 1, _cell(" ".join(found) or reasons.get(query, ""), None,
                                                                  "Relevant results are in [brackets]"))
        header = self.query_table.horizontalHeader()
        for column in range(len(headers) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.query_table.setSortingEnabled(True)
        self.query_table.sortItems(1, Qt.SortOrder.AscendingOrder)
        self.query_box.setTitle(f"Per-query AP of \"{run.label}\", worst first")
        self.plot.set_values(list(run.per_query.values()), run.map, f"{run.label}: MAP@{run.report.result.k} "
                                                                     f"{run.map:.3f}")

    def open_query_row(self, row: int) -> bool:
        """Emit :attr:`openQuery` for the query in `row` of the per-query table (with its relevant catalog ids,
        for the Search tab to highlight); False if it has no image."""
        run = self.selected_run()
        item = self.query_table.item(row, 0)
        if run is None or item is None:
            return False
        query = item.data(QUERY_ID_ROLE)
        path = run.query_paths.get(query)
        if not path or not Path(path).is_file():
            self._say(f"Query {query} has no image in {run.request.queries}.")
            return False
        self.openQuery.emit(path, list(run.truth.get(query, [])))
        return True

    # ------------------------------------------------------------------ export
    def export_csv(self, path: str | Path, run: EvalRun | None = None) -> Path:
        """Write one run's per-query AP, relevant ids and ranking (worst first) as a CSV file.

        Raises:
            UserError: no run to export, or the file cannot be written.
        """
        run = run or self.selected_run()
        if run is None:
            raise UserError("Run an evaluation first; there is nothing to export.")
        reasons = run.failure_reasons()
        rows = [(query, round(ap, 6), " ".join(run.truth.get(query, [])), " ".join(run.report.rankings.get(query, [])),
                 run.query_paths.get(query, ""), reasons.get(query, ""), run.label)
                for query, ap in run.worst_first()]
        write_csv(path, ("query", "ap", "relevant", "ranking", "query_image", "error", "run"), rows)
        return Path(path)

    def export_dialog(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", run.label).strip("-") or "run"
        folder = self.settings.get("eval/export_dir", "") or str(Path(run.request.truth).parent)
        path, _ = QFileDialog.getSaveFileName(self, "Export per-query AP", str(Path(folder) / f"{slug}-per-query-ap.csv"),
                                              "CSV files (*.csv)")
        if not path:
            return
        try:
            self.export_csv(path, run)
        except UserError as exc:
            self._say(str(exc))
            return
        self.settings.set("eval/export_dir", str(Path(path).parent))
        self._say(f"Saved {path}.")
