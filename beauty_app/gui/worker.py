"""The one worker thread that owns the model and the index; the GUI talks to it with signals only.

All torch and faiss state lives here. Requests arrive as queued signals (so they run on the worker
thread, one at a time, in order); results, progress and errors go back as signals. Long jobs take a
:class:`~beauty_app.jobs.JobControl` that the GUI thread may cancel at any time (cooperatively).
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..errors import UserError
from ..jobs import Cancelled, JobControl

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- requests and results
@dataclass
class SearchRequest:
    """Search one query image (a path, or an already decoded PIL image, optionally cropped)."""

    source: object  # str | Path | PIL.Image.Image
    k: int = 12
    query_expansion: int = 0
    pooling: str | None = None
    crop: tuple[int, int, int, int] | None = None  # left, top, right, bottom in image pixels
    tag: str = ""  # echoed back (e.g. "compare" for the comparison view)


@dataclass
class SearchOutcome:
    request: SearchRequest
    image: object  # the PIL image that was searched (after cropping)
    result: object  # retrieval.search.QueryResult
    elapsed_s: float
    thumbnails: dict = field(default_factory=dict)  # hit id -> JPEG bytes


@dataclass
class AnalysisOutcome:
    """The maps of one image (a catalog result, an annotator's photo); `tag` says who asked."""

    tag: str
    image: object
    analysis: object  # retrieval.extractor.QueryAnalysis


@dataclass
class BuildRequest:
    catalog: str
    model_spec: str
    out_dir: str
    pooling: str = "srmac"
    index_type: str = "flat"
    resume: bool = False
    add: bool = False  # update an existing index instead of building a new one


@dataclass
class BatchRequest:
    folder: str
    out_csv: str
    k: int = 7
    query_expansion: int = 0


@dataclass
class EvalRequest:
    queries: str
    truth: str
    k: int = 7
    denominator: str = "nrel"
    query_expansion: int = 0
    label: str = ""


@dataclass
class SessionInfo:
    """What the status bar and tabs show about the loaded model and index."""

    index: dict = field(default_factory=dict)
    model: str = ""
    model_spec: str = ""
    device: str = ""
    poolings: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item, reason) recorded in the index


# ---------------------------------------------------------------------------- the worker object
class Engine(QObject):
    """Lives on the worker thread; every slot runs there."""

    sessionOpened = Signal(object)  # SessionInfo
    searchFinished = Signal(object)  # SearchOutcome
    analysisFinished = Signal(object)  # AnalysisOutcome
    batchFinished = Signal(object)  # (out_csv, list[QueryResult])
    buildFinished = Signal(object)  # BuildSummary
    evalFinished = Signal(object)  # (label, EvalReport)
    itemsListed = Signal(object)  # (filter_text, offset, list[dict], rows matching or None)
    progress = Signal(object)  # ProgressEvent
    failed = Signal(str, str)  # operation, one-sentence message
    cancelled = Signal(str)  # operation
    busyChanged = Signal(bool, str)  # busy, what

    def __init__(self, device: str = "auto"):
        super().__init__()
        self._device_preference = device
        self._session = None
        self._job: JobControl | None = None

    # -- helpers -----------------------------------------------------------------------------
    def _new_job(self) -> JobControl:
        self._job = JobControl(self.progress.emit, min_interval_s=0.05)
        return self._job

    def cancel_current(self) -> None:
        """Thread-safe: asks the running job (if any) to stop at its next progress point."""
        job = self._job
        if job is not None:
            job.cancel()

    def _run(self, operation: str, work) -> None:
        self.busyChanged.emit(True, operation)
        started = time.perf_counter()
        try:
            work()
        except Cancelled:
            self.cancelled.emit(operation)
        except UserError as exc:
            log.info("%s failed: %s", operation, exc)
            self.failed.emit(operation, str(exc))
        except Exception as exc:  # noqa: BLE001 - shown to the user, details in the log file
            log.error("%s crashed:\n%s", operation, traceback.format_exc())
            self.failed.emit(operation, f"Unexpected error ({type(exc).__name__}: {exc}); details are in the log file.")
        finally:
            self._job = None
            log.debug("%s took %.2f s", operation, time.perf_counter() - started)
            self.busyChanged.emit(False, operation)

    def _device(self):
        from ..device import pick_device

        return pick_device(self._device_preference)

    def _require_session(self):
        if self._session is None:
            raise UserError("Open a catalog index first (Catalog tab, or File > Open index).")
        return self._session

    # -- slots ---------------------------------------------------------------------------------
    @Slot(str, str)
    def open_session(self, index_dir: str, model_spec: str) -> None:
        def work():
            from ..retrieval.search import SearchSession

            previous = self._session
            bundle = previous.bundle if previous is not None else None
            session = SearchSession(index_dir, model_spec or None, device=self._device(), bundle=bundle)
            if previous is not None:
                previous.close()
            self._session = session
            self.sessionOpened.emit(self.session_info())

        self._run("open index", work)

    def session_info(self) -> SessionInfo:
        session = self._session
        if session is None:
            return SessionInfo()
        return SessionInfo(session.index.info(), session.bundle.describe(), session.bundle.spec,
                           str(next(session.bundle.model.parameters()).device), session.available_poolings(),
                           list(session.bundle.class_names), session.index.skipped())

    @Slot(object)
    def search(self, request: SearchRequest) -> None:
        def work():
            from PIL import Image

            from ..imaging import load_image
            from ..retrieval.extractor import DECODE_MAX_SIDE

            session = self._require_session()
            started = time.perf_counter()
            image = request.source
            if not isinstance(image, Image.Image):
                image = load_image(image, max_side=DECODE_MAX_SIDE)
            if request.crop is not None:
                left, top, right, bottom = request.crop
                if right - left < 8 or bottom - top < 8:
                    raise UserError("The crop is too small; drag a larger box around the product.")
                image = image.crop(request.crop)
            result = session.search_image(image, k=request.k, query_expansion=request.query_expansion,
                                          pooling=request.pooling)
            result.query = str(request.source) if not isinstance(request.source, Image.Image) else "pasted image"
            thumbnails = {hit.id: session.index.thumbnail(hit.id) for hit in result.hits}
            self.searchFinished.emit(SearchOutcome(request, image, result, time.perf_counter() - started, thumbnails))

        self._run("search", work)

    @Slot(str, str)
    def analyze_image(self, tag: str, path: str) -> None:
        def work():
            from ..imaging import load_image
            from ..retrieval.extractor import DECODE_MAX_SIDE

            session = self._require_session()
            image = load_image(path, max_side=DECODE_MAX_SIDE)
            self.analysisFinished.emit(AnalysisOutcome(tag, image, session.extractor.analyze(image)))

        self._run("analyse image", work)

    @Slot(object)
    def batch_search(self, request: BatchRequest) -> None:
        def work():
            from ..catalog_io import write_ranking
            from ..retrieval.search import query_files_in

            session = self._require_session()
            files = query_files_in(request.folder)
            results = session.search_files(files, k=request.k, query_expansion=request.query_expansion,
                                           job=self._new_job())
            rankings = {Path(r.query).stem: [hit.id for hit in r.hits] for r in results if r.error is None}
            write_ranking(request.out_csv, rankings)
            self.batchFinished.emit((request.out_csv, results))

        self._run("batch search", work)

    @Slot(object)
    def build_index(self, request: BuildRequest) -> None:
        def work():
            from ..catalog_io import read_catalog
            from ..models.checkpoint import load_model
            from ..retrieval.build import add_to_index, build_index
            from ..retrieval.extractor import FeatureExtractor

            job = self._new_job()
            bundle = load_model(request.model_spec, device=self._device())  # a wrong model fails at once
            extractor = FeatureExtractor(bundle, request.pooling)
            catalog = read_catalog(request.catalog, job=job)
            if not catalog.entries:
                raise UserError(f"The catalog {request.catalog} lists no usable images.")
            if request.add:
                summary = add_to_index(catalog, extractor, request.out_dir, job=job)
            else:
                summary = build_index(catalog, extractor, request.out_dir, index_type=request.index_type,
                                      resume=request.resume, job=job)
            self.buildFinished.emit(summary)

        self._run("build index", work)

    @Slot(object)
    def evaluate(self, request: EvalRequest) -> None:
        def work():
            from ..evaluation.evaluate import evaluate

            session = self._require_session()
            report = evaluate(session, request.queries, request.truth, k=request.k,
                              denominator=request.denominator, query_expansion=request.query_expansion,
                              job=self._new_job())
            self.evalFinished.emit((request.label, report))

        self._run("evaluate", work)

    @Slot(str, int, int)
    def list_items(self, filter_text: str, offset: int, limit: int) -> None:
        def work():
            session = self._require_session()
            rows = list(session.index.iter_items(filter_text, limit=limit, offset=offset))
            # The first page carries the count, so the browser's scroll bar spans every matching row.
            total = session.index.count_items(filter_text) if offset == 0 else None
            self.itemsListed.emit((filter_text, offset, rows, total))

        self._run("browse catalog", work)

    @Slot()
    def lower_priority(self) -> None:
        """Run heavy work at a lower CPU priority than the GUI thread (Linux: per-thread nice).

        Threads this one starts (torch's OpenMP pool, the image decoders) inherit the nice value, so
        the window keeps its turn on a busy CPU.
        """
        import os
        import threading

        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)
        except (AttributeError, OSError):  # not Linux, or not allowed: the GIL switching still applies
            log.debug("could not lower the worker thread's priority")

    @Slot()
    def shutdown(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def preload_core() -> None:
    """Import the heavy core modules (torch, torchvision, timm, faiss) on the calling thread.

    Loading their shared libraries holds the GIL for seconds; done lazily on the worker thread it
    would freeze the window mid-session, so the app does it once at start-up (behind a splash).
    """
    from ..evaluation import evaluate  # noqa: F401
    from ..retrieval import build, search  # noqa: F401


class EngineClient(QObject):
    """GUI-side handle: starts the worker thread, forwards requests and relays results as queued signals.

    Everything the GUI (and tests) connect to is a signal of this object, which lives on the GUI thread:
    the engine's signals are relayed through Qt connections whose receiver is this object, so they are
    queued and re-emitted here. A plain Python callable (a lambda, a pytest-qt signal blocker) connected
    straight to the engine would run on the worker thread, and one that touched a QTimer or a widget
    there left timers registered to freed objects: the segmentation faults of issue 19.
    """

    sessionOpened = Signal(object)
    searchFinished = Signal(object)
    analysisFinished = Signal(object)
    batchFinished = Signal(object)
    buildFinished = Signal(object)
    evalFinished = Signal(object)
    itemsListed = Signal(object)
    progress = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal(str)
    busyChanged = Signal(bool, str)

    requestOpen = Signal(str, str)
    requestSearch = Signal(object)
    requestAnalyze = Signal(str, str)
    requestBatch = Signal(object)
    requestBuild = Signal(object)
    requestEval = Signal(object)
    requestItems = Signal(str, int, int)
    requestShutdown = Signal()

    def __init__(self, device: str = "auto", parent: QObject | None = None):
        super().__init__(parent)
        preload_core()
        # Hand the GIL over more often than the default 5 ms so the GUI thread never waits long
        # behind the worker's Python code (pooling, SQLite writes, thumbnails).
        sys.setswitchinterval(0.001)
        self.thread = QThread()
        self.thread.setObjectName("beautylens-engine")
        self._engine = Engine(device)
        self._engine.moveToThread(self.thread)
        for name in ("sessionOpened", "searchFinished", "analysisFinished", "batchFinished", "buildFinished",
                     "evalFinished", "itemsListed", "progress", "failed", "cancelled", "busyChanged"):
            getattr(self._engine, name).connect(getattr(self, name))  # receiver: this GUI-thread object
        self.requestOpen.connect(self._engine.open_session)
        self.requestSearch.connect(self._engine.search)
        self.requestAnalyze.connect(self._engine.analyze_image)
        self.requestBatch.connect(self._engine.batch_search)
        self.requestBuild.connect(self._engine.build_index)
        self.requestEval.connect(self._engine.evaluate)
        self.requestItems.connect(self._engine.list_items)
        self.requestShutdown.connect(self._engine.shutdown)
        self.thread.finished.connect(self._engine.deleteLater)
        self.thread.started.connect(self._engine.lower_priority)
        self.thread.start()

    def cancel(self) -> None:
        self._engine.cancel_current()

    def stop(self, timeout_ms: int = 30000) -> bool:
        """Cancel running work, close the session on the worker thread and wait for the thread to end."""
        if not self.thread.isRunning():
            return True
        self.cancel()
        self.requestShutdown.emit()
        self.thread.quit()
        return self.thread.wait(timeout_ms)


__all__ = ["Engine", "EngineClient", "SearchRequest", "SearchOutcome", "BuildRequest", "BatchRequest",
           "EvalRequest", "SessionInfo", "AnalysisOutcome"]
