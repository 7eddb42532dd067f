"""Launch to first result: the start-up sequence the window runs behind its splash (see gui/app.py)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor

from .worker import DemoRequest, Operation, WarmUpRequest


class Startup(QObject):
    """Launch to first result: [build the demo data] -> open the index -> one warm-up search -> the first query.

    The warm-up search is the first query's own search when the window has one (the demo's sample,
    ``gui PHOTO``), else a synthetic photo's; either way it runs the search handler's every stage.

    The engine runs jobs in the order they are submitted, so the warm-up search (submitted right
    after the open) runs before the first query's search, which the search tab submits when the
    session arrives. ``ready`` is emitted when the warm-up has ended (or there is nothing to
    open): the window shows then, so the first search a user makes costs what later ones do.

    Signals:
        ready(): the engine is warm, or there was nothing to warm.
    """

    ready = Signal()
    MESSAGES = {Operation.OPEN_INDEX: "loading the model and the index...",
                Operation.WARM_UP: "warming up the network...",
                Operation.PREPARE_DEMO: "preparing the demo catalog (first run only)..."}
    STAGES = {"index": "indexing catalog images"}  # the build's terse stage names, for the status line

    def __init__(self, window, splash=None):
        super().__init__(window)
        self.window = window
        self.splash = splash
        self.warm_up_job = None
        self.demo_job = None
        self.done = False
        self._placeholder = ""
        window.client.jobStarted.connect(self._on_job_started)

    def open(self, index: str, model: str = "") -> None:
        """Open `index` (with `model`, default its own) and warm the engine up behind it."""
        self.window.open_index(index, model)
        # The warm-up is the search the window makes first (its photo, as the search tab will ask for it).
        self.warm_up_job = self.window.client.submit(WarmUpRequest(self.window.search_tab.next_search()))
        for ended in (self.warm_up_job.finished, self.warm_up_job.failed, self.warm_up_job.cancelled):
            ended.connect(self._finish)

    def start_demo(self, request: DemoRequest) -> None:
        """Build the demo catalog and index on the worker (progress in the window), then open and search."""
        tab = self.window.search_tab
        self._placeholder = tab.query_view.placeholder
        tab.query_view.set_placeholder("Preparing the demo catalog (first run only: about half a minute)...\n"
                                       "Progress is shown at the bottom of the window.")
        tab.status_label.setText("Preparing the demo catalog...")
        self.demo_job = self.window.client.submit(request)
        self.demo_job.progress.connect(self._on_demo_progress)
        self.demo_job.finished.connect(self._on_demo_ready)
        for ended in (self.demo_job.failed, self.demo_job.cancelled):
            ended.connect(self._finish)

    def _on_demo_progress(self, event) -> None:
        total = f" of {event.total}" if event.total else ""
        stage = self.STAGES.get(event.stage, event.stage)
        self.window.search_tab.status_label.setText(f"Preparing the demo (first run only): {stage} {event.done}{total}...")

    def _on_demo_ready(self, setup) -> None:
        tab = self.window.search_tab
        tab.query_view.set_placeholder(self._placeholder)
        tab.set_samples(sorted(p for p in Path(setup.queries_dir).iterdir() if p.is_file())[:12])
        tab.source = str(setup.sample_query)
        self.open(str(setup.index_dir), setup.model_spec)

    def _on_job_started(self, job) -> None:
        message = self.MESSAGES.get(job.operation)
        if message and self.splash is not None and not self.done:
            self.splash.showMessage(f"BeautyLens\n\n{message}", Qt.AlignmentFlag.AlignCenter, QColor(90, 40, 80))

    def _finish(self, *_args) -> None:
        if not self.done:
            self.done = True
            self.ready.emit()

    def finish_now(self) -> None:
        """Nothing to load: ready at once."""
        self._finish()
