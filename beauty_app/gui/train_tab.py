# Kept in one module (about 530 lines): one tab's handlers; the form, the child process and the plots
# are apart (widgets/train_form.py, train_process.py, train_plots.py).
"""The Training tab: mine a data set, train MANet in a child process, watch it live, use the result.

Training is the `beauty-app train --progress jsonl` command run as a separate process (see
:mod:`beauty_app.gui.widgets.train_process`), so cancelling it or a crash inside torch never takes
the window down. Cancel sends SIGTERM: the trainer saves a resumable state and exits with 130, and
Resume runs the same command with ``--resume``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..models.checkpoint import MODEL_SUFFIX
from ..training.config import resume_path_for
from .file_filters import checkpoint_filter
from .settings import Settings
from .wording import in_app_words
from .widgets.train_form import TrainForm
from .widgets.train_plots import TrainingPlots
from .widgets.train_process import CliProcess
from .worker import EngineClient, SessionInfo

log = logging.getLogger(__name__)

LOG_LINES = 5000
DEFAULT_CHECKPOINT_NAME = f"manet{MODEL_SUFFIX}"  # the shipped format (weights cannot run code)


def format_duration(seconds: float | None) -> str:
    """12 s, 3 min 05 s, 1 h 02 min."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class TrainTab(QWidget):
    """Training settings, start/cancel/resume, live plots, the log, and "use this model".

    Signals:
        useCheckpoint(str): the user wants to search with the checkpoint a finished run wrote.
    """

    useCheckpoint = Signal(str)

    def __init__(self, client: EngineClient, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.client = client
        self.settings = settings
        self.process = CliProcess(self)
        self.mode = "idle"  # idle | train | mine
        self.last_checkpoint: str | None = None
        self._out_was_suggested = False
        self._mine_out = ""
        self._stage = 0
        self._stage1_last = 0
        self._done_event: dict | None = None
        self._interrupted_path: str | None = None

        self._build()
        self.process.eventReceived.connect(self._on_event)
        self.process.stdoutLine.connect(self._append_log)
        self.process.stderrLine.connect(self._on_stderr)
        self.process.finished.connect(self._on_finished)
        self._restore()
        self._update_buttons()

    # ------------------------------------------------------------------ construction
    def _path_row(self, edit: QLineEdit, browse) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit, 1)
        button = QToolButton()
        button.setText("...")
        button.setToolTip("Browse")
        button.clicked.connect(browse)
        layout.addWidget(button)
        return row

    def _build(self) -> None:
        # -- left: what to train on and how
        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("folder written by `dataset mine`")
        self.data_edit.setToolTip("The mined training set: classes.txt, train.csv, val.csv, stats.json.")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText(f"<data folder>/{DEFAULT_CHECKPOINT_NAME}")
        self.out_edit.setToolTip("The checkpoint the run writes (its resumable state is kept beside it).")
        self.marks_edit = QLineEdit()
        self.marks_edit.setPlaceholderText("optional: annotator marks CSV (Annotate tab)")
        self.marks_edit.setToolTip("Maps marked wrong in this CSV (id,map,mark) are left out of the mask "
                                   "supervision.")
        data_box = QGroupBox("Data")
        data_form = QFormLayout(data_box)
        data_form.addRow("Data folder", self._path_row(self.data_edit, self._browse_data))
        data_form.addRow("Checkpoint", self._path_row(self.out_edit, self._browse_out))
        data_form.addRow("Mask marks", self._path_row(self.marks_edit, self._browse_marks))

        self.catalog_edit = QLineEdit()
        self.catalog_edit.setPlaceholderText("catalog CSV with id,path,description")
        self.mine_out_edit = QLineEdit()
        self.mine_out_edit.setPlaceholderText("<catalog folder>/mined")
        self.min_images = QSpinBox()
        self.min_images.setRange(1, 100000)
        self.min_images.setValue(10)
        self.min_images.setToolTip("Categories with fewer usable images are dropped.")
        self.mine_button = QPushButton("Mine data set")
        self.mine_button.setToolTip("Find categories in the catalog descriptions (TF-IDF) and write a labelled, "
                                    "split training set; it becomes the data folder.")
        self.mine_button.clicked.connect(self._mine_clicked)
        mine_box = QGroupBox("Or mine one from a catalog")
        mine_form = QFormLayout(mine_box)
        mine_form.addRow("Catalog CSV", self._path_row(self.catalog_edit, self._browse_catalog))
        mine_form.addRow("Output folder", self._path_row(self.mine_out_edit, self._browse_mine_out))
        mine_form.addRow("Min images/category", self.min_images)
        mine_form.addRow(self.mine_button)

        self.form = TrainForm()
        self.defaults_button = QPushButton("Reset to defaults")
        self.defaults_button.clicked.connect(self.form.reset_defaults)

        settings_panel = QWidget()
        settings_layout = QVBoxLayout(settings_panel)
        settings_layout.addWidget(data_box)
        settings_layout.addWidget(mine_box)
        settings_layout.addWidget(self.form)
        settings_layout.addWidget(self.defaults_button)
        settings_layout.addStretch(1)
        self.settings_panel = settings_panel
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(settings_panel)
        scroll.setMinimumWidth(320)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        # -- right: controls, progress, plots, log
        self.start_button = QPushButton("Start training")
        self.start_button.setToolTip("Train from scratch with these settings (Ctrl+R).")
        self.start_button.setShortcut("Ctrl+R")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the run; a resumable state is saved first.")
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the interrupted run that writes this checkpoint.")
        self.resume_button.clicked.connect(self.resume)
        self.use_button = QPushButton("Use this model for search")
        self.use_button.setToolTip("Build a catalog index with the checkpoint this run wrote.")
        self.use_button.clicked.connect(self._use_clicked)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.use_button)

        self.status_label = QLabel("Choose a mined data folder, check the settings and start.")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%v / %m")
        self.details_label = QLabel("")
        self.details_label.setToolTip("Stage, iteration within the stage, throughput and time left.")
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.details_label)

        self.plots = TrainingPlots()
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log_view.setPlaceholderText("The training log appears here.")
        font = self.log_view.font()
        font.setFamily("monospace")
        font.setStyleHint(font.StyleHint.Monospace)
        self.log_view.setFont(font)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addLayout(buttons)
        top_layout.addWidget(self.status_label)
        top_layout.addLayout(progress_row)
        top_layout.addWidget(self.plots, 1)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(top)
        right.addWidget(self.log_view)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        right.setSizes([650, 220])

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([380, 900])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        self.data_edit.textChanged.connect(self._data_changed)
        self.out_edit.textEdited.connect(lambda _text: setattr(self, "_out_was_suggested", False))
        self.out_edit.textChanged.connect(lambda _text: self._update_buttons())
        self.catalog_edit.textChanged.connect(lambda _text: self._update_buttons())

    def _restore(self) -> None:
        self.data_edit.setText(self.settings.get("train/data", ""))
        out = self.settings.get("train/out", "")
        if out:
            self.out_edit.setText(out)
            self._out_was_suggested = False
        self.marks_edit.setText(self.settings.get("train/marks", ""))
        self.catalog_edit.setText(self.settings.get("train/catalog", ""))
        self.mine_out_edit.setText(self.settings.get("train/mine_out", ""))
        TrainForm.set_choice(self.form.backbone, self.settings.get("train/backbone", self.form.backbone.currentData()))
        TrainForm.set_choice(self.form.attention,
                             self.settings.get("train/attention", self.form.attention.currentData()))

    # ------------------------------------------------------------------ public API
    def on_session(self, info: SessionInfo) -> None:
        """Nothing to do: training does not use the open index (kept for the common tab interface)."""

    def set_data_folder(self, folder: str | Path) -> None:
        """Train on `folder` (a mined data set)."""
        self.data_edit.setText(str(folder))

    def checkpoint_path(self) -> str:
        """The checkpoint the run writes (suggested next to the data when left empty)."""
        out = self.out_edit.text().strip()
        if out:
            return out
        data = self.data_edit.text().strip()
        return str(Path(data) / DEFAULT_CHECKPOINT_NAME) if data else ""

    def train_args(self, resume: bool = False) -> list[str]:
        """The `beauty-app train` command line for the current settings."""
        args = ["train", "--data", self.data_edit.text().strip(), "--out", self.checkpoint_path(),
                *self.form.cli_args(), "--progress", "jsonl"]
        marks = self.marks_edit.text().strip()
        if marks:
            args += ["--mask-marks", marks]
        if resume:
            args.append("--resume")
        return args

    def start(self) -> None:
        """Train from scratch with the current settings."""
        self._start_training(resume=False)

    def resume(self) -> None:
        """Continue the interrupted run that writes the current checkpoint."""
        self._start_training(resume=True)

    def cancel(self) -> None:
        """Stop the running process (training saves a resumable state first)."""
        if self.process.is_running():
            self._set_status("Stopping... (saving a resumable state)")
            self._append_log("cancel requested")
            self.process.stop()
            self.cancel_button.setEnabled(False)

    def start_mining(self, catalog_csv: str, out_dir: str = "") -> None:
        """Run `dataset mine` on a catalog CSV; when it succeeds its folder becomes the data folder."""
        if self.process.is_running():
            return
        catalog_csv = catalog_csv.strip()
        if not catalog_csv or not Path(catalog_csv).is_file():
            self._set_status("Choose an existing catalog CSV (id,path,description) to mine.", error=True)
            return
        out_dir = out_dir.strip() or str(Path(catalog_csv).resolve().parent / "mined")
        self.catalog_edit.setText(catalog_csv)
        self.mine_out_edit.setText(out_dir)
        self.settings.set("train/catalog", catalog_csv)
        self.settings.set("train/mine_out", out_dir)
        self._mine_out = out_dir
        self.mode = "mine"
        args = ["dataset", "mine", "--catalog", catalog_csv, "--out", out_dir,
                "--min-images", str(self.min_images.value()), "-q"]
        self._append_log("$ " + self.process.command_line(args))
        self._set_status(f"Mining a training set from {Path(catalog_csv).name}...")
        self.progress_bar.setRange(0, 0)  # busy: mining reports no steps
        self.details_label.setText("mining")
        self.process.start(args)
        self._update_buttons()

    def shutdown(self, grace_ms: int = 5000) -> None:
        """Stop a running process and wait for it (the window is closing); kills it after `grace_ms`."""
        if self.process.is_running():
            self._append_log("window closing: stopping the process")
            self.process.stop_and_wait(grace_ms)

    # ------------------------------------------------------------------ starting
    def _start_training(self, resume: bool) -> None:
        if self.process.is_running():
            return
        data = self.data_edit.text().strip()
        if not data or not Path(data).is_dir():
            self._set_status("Choose the mined data folder first (or mine one from a catalog CSV).", error=True)
            return
        if not self.out_edit.text().strip():
            self.out_edit.setText(self.checkpoint_path())
            self._out_was_suggested = True
        if resume and not resume_path_for(self.checkpoint_path()).is_file():
            self._set_status("There is no interrupted run to resume for this checkpoint.", error=True)
            return
        self.settings.set("train/data", data)
        self.settings.set("train/out", self.checkpoint_path())
        self.settings.set("train/marks", self.marks_edit.text().strip())
        self.settings.set("train/backbone", self.form.backbone.currentData())
        self.settings.set("train/attention", self.form.attention.currentData())
        if not resume:
            self.plots.clear()
            self._stage1_last = 0
        self._stage = 0
        self._done_event = None
        self._interrupted_path = None
        self.last_checkpoint = None
        self.mode = "train"
        args = self.train_args(resume=resume)
        self._append_log("$ " + self.process.command_line(args))
        self._set_status("Resuming training..." if resume else "Starting training (loading the model and data)...")
        self.progress_bar.setRange(0, 0)
        self.details_label.setText("starting")
        self.process.start(args)
        self._update_buttons()

    # ------------------------------------------------------------------ process output
    def _on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "step":
            self._on_step(event)
        elif kind == "stage":
            self._stage = int(event.get("stage", 0))
            if self._stage == 2 and self._stage1_last:
                self.plots.mark_stage(self._stage1_last + 0.5, "stage 2")
            self._append_log(f"stage {self._stage}: {event.get('description', '')}")
            self._set_status(f"Stage {self._stage}: {event.get('description', '')}")
        elif kind == "validation":
            accuracy = event.get("val_accuracy")
            x = self._global_step(int(event.get("stage", 2)), int(event.get("iteration", 0)))
            self.plots.add_validation(x, accuracy)
            if accuracy is not None:
                final = " (final)" if event.get("final") else ""
                self._append_log(f"validation accuracy{final} {accuracy:.3f} on {event.get('val_images', '?')} images")
        elif kind == "checkpoint":
            what = "resumable state" if event.get("kind") == "resume" else "checkpoint"
            self._append_log(f"{what} saved: {event.get('path', '')}")
        elif kind == "message":
            self._append_log(str(event.get("text", "")))
        elif kind == "interrupted":
            self._interrupted_path = event.get("resume_path")
            self._append_log(f"interrupted; resumable state in {self._interrupted_path}")
        elif kind == "done":
            self._done_event = event
            self.last_checkpoint = event.get("checkpoint")
            self._append_log(f"done: checkpoint {self.last_checkpoint}")
        else:
            self._append_log(str(event))

    def _global_step(self, stage: int, iteration: int) -> int:
        if stage == 1:
            return iteration
        # Stage 2 continues after the stage-1 iterations actually run (stage 1 may stop early).
        offset = self._stage1_last if self._stage1_last else self.form.stage1_planned()
        return offset + iteration

    def _on_step(self, event: dict) -> None:
        stage, iteration = int(event.get("stage", 2)), int(event.get("iteration", 0))
        total = int(event.get("total", 0))
        if stage == 1:
            self._stage1_last = iteration
        x = self._global_step(stage, iteration)
        self.plots.add_step(x, event.get("loss", float("nan")), event.get("loss_cls", float("nan")),
                            event.get("loss_saliency"), event.get("loss_text") if stage == 2 else None,
                            event.get("lr", 0.0))
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(min(iteration, max(total, 1)))
        rate = event.get("throughput") or 0.0
        self.details_label.setText(f"stage {stage}  ·  {iteration}/{total}  ·  {rate:.1f} img/s  ·  "
                                   f"ETA {format_duration(event.get('eta_s'))}")
        if total and (iteration == total or iteration % max(1, total // 20) == 0 or iteration == 1):
            parts = [f"stage {stage} {iteration}/{total}", f"loss {event.get('loss', 0):.4f}"]
            parts.append(f"cls {event.get('loss_cls', 0):.4f}")
            if event.get("loss_saliency") is not None:
                parts.append(f"sal {event['loss_saliency']:.4f}")
            if stage == 2 and event.get("loss_text") is not None:
                parts.append(f"txt {event['loss_text']:.4f}")
            parts.append(f"lr {event.get('lr', 0):.2e}")
            self._append_log("  ".join(parts))

    def _on_stderr(self, line: str) -> None:
        self._append_log(in_app_words(line))

    def _on_finished(self, exit_code: int, outcome: str, message: str) -> None:
        mode, self.mode = self.mode, "idle"
        self.plots.flush()
        self.progress_bar.setRange(0, max(self.progress_bar.maximum(), 1))
        if mode == "mine":
            self._mining_finished(outcome, message)
        elif outcome == "ok":
            done = self._done_event or {}
            accuracy = done.get("val_accuracy")
            accuracy_text = "n/a" if accuracy is None else f"{accuracy:.3f}"
            self.progress_bar.setValue(self.progress_bar.maximum())
            self.details_label.setText(f"finished in {format_duration(done.get('elapsed_s'))}")
            if self.last_checkpoint and Path(self.last_checkpoint).is_file():
                self._set_status(f"Finished: validation accuracy {accuracy_text}; checkpoint {self.last_checkpoint}. "
                                 "Use it for search with the button above.")
            else:
                self.last_checkpoint = None
                self._set_status("Training ended without reporting a checkpoint.", error=True)
        elif outcome in ("interrupted", "killed"):
            self.details_label.setText("stopped")
            if resume_path_for(self.checkpoint_path()).is_file():
                self._set_status("Stopped. A resumable state was saved; Resume continues from there.")
            else:
                self._set_status("Stopped before the first resumable state was saved; Start begins anew.")
        else:
            self.details_label.setText("failed")
            self._set_status(f"Training failed: {in_app_words(message) or f'exit code {exit_code}'}", error=True)
        self._append_log(f"[process ended: {outcome}, exit code {exit_code}]")
        self._update_buttons()

    def _mining_finished(self, outcome: str, message: str) -> None:
        self.progress_bar.setRange(0, 1)
        if outcome == "ok":
            self.progress_bar.setValue(1)
            self.details_label.setText("mined")
            self.set_data_folder(self._mine_out)
            self._set_status(f"Mined a training set into {self._mine_out}; it is now the data folder.")
        elif outcome in ("interrupted", "killed"):
            self.progress_bar.setValue(0)
            self.details_label.setText("stopped")
            self._set_status("Mining stopped.")
        else:
            self.progress_bar.setValue(0)
            self.details_label.setText("failed")
            self._set_status(f"Mining failed: {in_app_words(message) or 'see the log'}", error=True)

    # ------------------------------------------------------------------ small helpers
    def _append_log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #c62828; font-weight: bold;" if error else "")

    def _update_buttons(self) -> None:
        idle = not self.process.is_running()
        self.start_button.setEnabled(idle)
        self.mine_button.setEnabled(idle and bool(self.catalog_edit.text().strip()))
        self.cancel_button.setEnabled(not idle)
        checkpoint = self.checkpoint_path()
        self.resume_button.setEnabled(idle and bool(checkpoint) and resume_path_for(checkpoint).is_file())
        self.use_button.setEnabled(idle and bool(self.last_checkpoint) and Path(self.last_checkpoint).is_file())
        self.settings_panel.setEnabled(idle)

    def _data_changed(self, text: str) -> None:
        # Suggest the checkpoint next to the data until the user picks one himself.
        if text.strip() and (self._out_was_suggested or not self.out_edit.text().strip()):
            self.out_edit.setText(str(Path(text.strip()) / DEFAULT_CHECKPOINT_NAME))
            self._out_was_suggested = True
        self._update_buttons()

    def _use_clicked(self) -> None:
        if self.last_checkpoint and Path(self.last_checkpoint).is_file():
            self.useCheckpoint.emit(str(self.last_checkpoint))

    def _mine_clicked(self) -> None:
        self.start_mining(self.catalog_edit.text(), self.mine_out_edit.text())

    # ------------------------------------------------------------------ file dialogs
    def _browse_data(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Mined data folder", self.data_edit.text())
        if folder:
            self.set_data_folder(folder)

    def _browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Checkpoint to write", self.checkpoint_path(),
                                              checkpoint_filter())
        if path:
            self.out_edit.setText(path)
            self._out_was_suggested = False

    def _browse_marks(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Annotator marks CSV", self.marks_edit.text(), "CSV (*.csv)")
        if path:
            self.marks_edit.setText(path)

    def _browse_catalog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Catalog CSV to mine", self.catalog_edit.text(), "CSV (*.csv)")
        if path:
            self.catalog_edit.setText(path)
            if not self.mine_out_edit.text().strip():
                self.mine_out_edit.setText(str(Path(path).resolve().parent / "mined"))

    def _browse_mine_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the mined data set", self.mine_out_edit.text())
        if folder:
            self.mine_out_edit.setText(folder)


__all__ = ["TrainTab", "format_duration"]
