# Kept in one module (about 640 lines): the request and outcome types, the Job and the Engine's one small
# method per operation are the one vocabulary between the tabs and the worker thread, read together.
"""The one worker thread that owns the model and the index, and the job objects the GUI talks to it with.

All torch and faiss state lives on the worker thread. The GUI calls :meth:`EngineClient.submit` with a
request and gets a :class:`Job`: its own started / progress / finished / failed / cancelled signals,
emitted on the GUI thread in that order, and :meth:`Job.cancel`, which works from the moment the job
exists (a job cancelled while queued never starts). Jobs run one at a time, in the order submitted.

Every signal the GUI (or a test) can connect to belongs to an object living on the GUI thread. The
engine's own signals, emitted on the worker thread, reach the client through connections whose receiver
is the client, so they are queued; a plain callable connected to a worker-thread object would run on the
worker thread, and one that touched a QTimer or a widget there caused the segmentation faults of issue 19.
"""

from __future__ import annotations

import itertools
from functools import partial
import logging
import sys
import time
import traceback
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import ClassVar

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from ..errors import UserError
from ..jobs import Cancelled, JobControl
from .wording import in_app_words

log = logging.getLogger(__name__)


class Operation(Enum):
    """What a job does; the value is the name shown to the user."""

    OPEN_INDEX = "open index"
    SEARCH = "search"
    ANALYZE = "analyse image"
    BATCH_SEARCH = "batch search"
    BUILD_INDEX = "build index"
    EVALUATE = "evaluate"
    LIST_ITEMS = "browse catalog"
    WARM_UP = "warm up"
    EXPLAIN = "explain match"
    PREPARE_DEMO = "prepare the demo"

    @property
    def label(self) -> str:
        return self.value

    @property
    def long(self) -> bool:
        """Jobs that report progress and stop at their next progress point when cancelled."""
        return self in (Operation.BATCH_SEARCH, Operation.BUILD_INDEX, Operation.EVALUATE, Operation.PREPARE_DEMO)


# ---------------------------------------------------------------------------- requests and results
@dataclass
class OpenRequest:
    """Open an index with its own model (or `model_spec`); the result is a :class:`SessionInfo`."""

    operation: ClassVar[Operation] = Operation.OPEN_INDEX
    index_dir: str
    model_spec: str = ""


@dataclass
class SearchRequest:
    """Search one query image (a path, or an already decoded PIL image, optionally cropped)."""

    operation: ClassVar[Operation] = Operation.SEARCH
    source: object  # str | Path | PIL.Image.Image
    k: int = 12
    query_expansion: int = 0
    pooling: str | None = None
    crop: tuple[int, int, int, int] | None = None  # left, top, right, bottom in image pixels
    # Result thumbnails this many pixels wide (a 2x screen wants twice the index's stored ones, which
    # are then made from the catalog files); 0: the stored thumbnails.
    thumbnail_side: int = 0


@dataclass
class SearchOutcome:
    request: SearchRequest
    image: object  # the PIL image that was searched (after cropping)
    result: object  # retrieval.search.QueryResult
    elapsed_s: float
    thumbnails: dict = field(default_factory=dict)  # hit id -> JPEG bytes
    #: Seconds per stage, in the order they ran: decode, crop, network, index, thumbnails (where they ran).
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class AnalyzeRequest:
    """The attention maps of one image file (a catalog result, an annotator's photo)."""

    operation: ClassVar[Operation] = Operation.ANALYZE
    path: str


@dataclass
class AnalysisOutcome:
    request: AnalyzeRequest
    image: object
    analysis: object  # retrieval.extractor.QueryAnalysis


@dataclass
class WarmUpRequest:
    """One throw-away search on the open index, so the user's first search costs what later ones do.

    With `search` (the search the window is about to make: its photo, k, pooling, thumbnail size)
    the warm-up is that very search, through the same handler; without one, or when its photo
    cannot be read, a synthetic phone-sized photo takes the same path from the decode on. The
    result is a :class:`WarmUpReport`.
    """

    operation: ClassVar[Operation] = Operation.WARM_UP
    search: SearchRequest | None = None


@dataclass
class WarmUpReport:
    """What the warm-up did: the stages its search ran (as a search's ``stage_seconds``) and the chunks it checked."""

    seconds: float = 0.0
    photo: str = ""  # "the first query" or "a synthetic photo"; "" when nothing was open to warm
    stage_seconds: dict[str, float] = field(default_factory=dict)
    chunks_checked: int = 0


@dataclass
class ExplainRequest:
    """Why `hit` matched the searched image: region-pair contributions and the catalog image's maps."""

    operation: ClassVar[Operation] = Operation.EXPLAIN
    query_image: object  # PIL image as searched (after cropping)
    hit: object  # retrieval.index.SearchHit
    pooling: str | None = None
    query_expansion: int = 0


@dataclass
class ExplainOutcome:
    request: ExplainRequest
    explanation: object  # retrieval.explain.MatchExplanation (its catalog_image is the decoded file)
    analysis: object  # retrieval.extractor.QueryAnalysis of the catalog image


@dataclass
class DemoRequest:
    """Generate the demo catalog and build its index where missing; the result is a ``demo.runner.DemoSetup``."""

    operation: ClassVar[Operation] = Operation.PREPARE_DEMO
    workdir: str | None = None
    products: int = 60
    model_spec: str | None = None


@dataclass
class BatchRequest:
    operation: ClassVar[Operation] = Operation.BATCH_SEARCH
    folder: str
    out_csv: str
    k: int = 7
    query_expansion: int = 0


@dataclass
class BatchOutcome:
    out_csv: str
    results: list  # retrieval.search.QueryResult per query file


@dataclass
class BuildRequest:
    """Build, resume or update an index; the result is a ``retrieval.build.BuildSummary``."""

    operation: ClassVar[Operation] = Operation.BUILD_INDEX
    catalog: str
    model_spec: str
    out_dir: str
    pooling: str = "srmac"
    index_type: str = "flat"
    resume: bool = False
    add: bool = False  # update an existing index instead of building a new one


@dataclass
class EvalRequest:
    """Evaluate the open index; the result is an ``evaluation.evaluate.EvalReport``."""

    operation: ClassVar[Operation] = Operation.EVALUATE
    queries: str
    truth: str
    k: int = 7
    denominator: str = "nrel"
    query_expansion: int = 0
    label: str = ""


@dataclass
class ItemsRequest:
    """One page of the open index's rows matching a filter; the result is an :class:`ItemsPage`."""

    operation: ClassVar[Operation] = Operation.LIST_ITEMS
    filter_text: str
    offset: int
    limit: int


@dataclass
class ItemsPage:
    filter_text: str
    offset: int
    rows: list[dict]
    total: int | None  # rows matching the filter, counted with the first page only


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
    open_set: object = None  # models.open_set.OpenSetRule of a model with classes, else None


# ---------------------------------------------------------------------------- jobs
class JobState(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Job(QObject):
    """One submitted request. Lives on the GUI thread; its signals are emitted there, in this order:
    ``started``, ``progress`` (long jobs, any number of times), then one of ``finished(result)``,
    ``failed(message)`` or ``cancelled``; a job cancelled before it started emits only ``cancelled``.

    Keep a reference while you care about its signals; the client drops its own when the job ends.
    """

    started = Signal()
    progress = Signal(object)  # jobs.ProgressEvent
    finished = Signal(object)  # the operation's result
    failed = Signal(str)  # one sentence for the user
    cancelled = Signal()

    def __init__(self, job_id: int, request, control: JobControl):
        super().__init__()
        self.id = job_id
        self.request = request
        self.operation: Operation = request.operation
        self.state = JobState.QUEUED
        self.error = ""
        self._control = control

    @property
    def done(self) -> bool:
        return self.state in (JobState.FINISHED, JobState.FAILED, JobState.CANCELLED)

    def cancel(self) -> None:
        """Stop the job: a queued job never starts, a long one stops at its next progress point.

        A short job that is already running (a search) still finishes.
        """
        if not self.done:
            self._control.cancel()

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.operation.label} {self.state.value}>"


@dataclass
class _Ticket:
    """What crosses to the worker thread: plain data and the thread-safe cancel flag, never the Job."""

    job_id: int
    request: object
    control: JobControl


# ---------------------------------------------------------------------------- the worker object
class Engine(QObject):
    """Lives on the worker thread; runs one job at a time and reports by job id.

    Each operation is one small method below that calls the core, so the calls can move to a shared
    retrieval session without touching the job plumbing.
    """

    jobStarted = Signal(int)
    jobProgress = Signal(int, object)  # job id, ProgressEvent
    jobFinished = Signal(int, object)  # job id, result
    jobFailed = Signal(int, str)  # job id, one-sentence message
    jobCancelled = Signal(int)

    #: The method that does each operation (looked up when a job runs).
    HANDLERS = {
        Operation.OPEN_INDEX: "_open_index",
        Operation.SEARCH: "_search",
        Operation.ANALYZE: "_analyze",
        Operation.BATCH_SEARCH: "_batch_search",
        Operation.BUILD_INDEX: "_build_index",
        Operation.EVALUATE: "_evaluate",
        Operation.LIST_ITEMS: "_list_items",
        Operation.WARM_UP: "_warm_up",
        Operation.EXPLAIN: "_explain",
        Operation.PREPARE_DEMO: "_prepare_demo",
    }

    def __init__(self, device: str = "auto"):
        super().__init__()
        self._device_preference = device
        self._session = None
        self._no_index_extractor = None  # the default model, for maps shown before an index is open

    @Slot(object)
    def run_job(self, ticket: _Ticket) -> None:
        operation = ticket.request.operation
        if ticket.control.cancelled:  # cancelled while it waited in the queue
            self.jobCancelled.emit(ticket.job_id)
            return
        self.jobStarted.emit(ticket.job_id)
        started = time.perf_counter()
        try:
            result = getattr(self, self.HANDLERS[operation])(ticket.request, ticket.control)
        except Cancelled:
            self.jobCancelled.emit(ticket.job_id)
        except UserError as exc:
            log.info("%s failed: %s", operation.label, exc)
            self.jobFailed.emit(ticket.job_id, in_app_words(str(exc)))
        except Exception as exc:  # noqa: BLE001 - shown to the user, details in the log file
            log.error("%s crashed:\n%s", operation.label, traceback.format_exc())
            self.jobFailed.emit(ticket.job_id,
                                f"Unexpected error ({type(exc).__name__}: {exc}); details are in the log file.")
        else:
            self.jobFinished.emit(ticket.job_id, result)
        finally:
            log.debug("%s took %.2f s", operation.label, time.perf_counter() - started)

    def _device(self):
        from ..device import pick_device

        return pick_device(self._device_preference)

    def _require_session(self):
        if self._session is None:
            raise UserError("Open a catalog index first (Catalog tab, or File > Open index).")
        return self._session

    # -- one method per operation: the calls into the core ------------------------------------------
    def _open_index(self, request: OpenRequest, job: JobControl) -> SessionInfo:
        from ..retrieval.search import SearchSession

        previous = self._session
        bundle = previous.bundle if previous is not None else None
        session = SearchSession(request.index_dir, request.model_spec or None, device=self._device(), bundle=bundle)
        if previous is not None:
            previous.close()
        self._session = session
        self._no_index_extractor = None  # the index's model serves from now on
        return self.session_info()

    def session_info(self) -> SessionInfo:
        session = self._session
        if session is None:
            return SessionInfo()
        from ..models.open_set import rule_for

        bundle = session.bundle
        return SessionInfo(session.index.info(), bundle.describe(), bundle.spec,
                           str(next(bundle.model.parameters()).device), session.available_poolings(),
                           list(bundle.class_names), session.index.skipped(),
                           rule_for(bundle.metadata) if bundle.class_names else None)

    def _search(self, request: SearchRequest, job: JobControl) -> SearchOutcome:
        from PIL import Image

        from ..imaging import load_image
        from ..retrieval.extractor import DECODE_MAX_SIDE

        session = self._require_session()
        started = clock = time.perf_counter()
        stages: dict[str, float] = {}
        image = request.source
        if not isinstance(image, Image.Image):
            image = load_image(image, max_side=DECODE_MAX_SIDE)
            stages["decode"], clock = time.perf_counter() - clock, time.perf_counter()
        if request.crop is not None:
            left, top, right, bottom = request.crop
            if right - left < 8 or bottom - top < 8:
                raise UserError("The crop is too small; drag a larger box around the product.")
            image = image.crop(request.crop)
            stages["crop"], clock = time.perf_counter() - clock, time.perf_counter()
        result = session.search_image(image, k=request.k, query_expansion=request.query_expansion,
                                      pooling=request.pooling)
        stages.update(result.stage_seconds)
        clock = time.perf_counter()
        result.query = str(request.source) if not isinstance(request.source, Image.Image) else "pasted image"
        thumbnails = {hit.id: self._thumbnail(session, hit, request.thumbnail_side) for hit in result.hits}
        stages["thumbnails"] = time.perf_counter() - clock
        elapsed = time.perf_counter() - started
        log.debug("search of %s: %.0f ms (%s)", result.query, elapsed * 1000,
                  ", ".join(f"{stage} {seconds * 1000:.1f}" for stage, seconds in stages.items()))
        return SearchOutcome(request, image, result, elapsed, thumbnails, stages)

    @staticmethod
    def _thumbnail(session, hit, side: int) -> bytes | None:
        """The stored thumbnail, or a sharper one from the catalog file when `side` asks for more pixels."""
        from ..imaging import load_image
        from ..retrieval.extractor import THUMBNAIL_SIDE, make_thumbnail

        if side > THUMBNAIL_SIDE and hit.path:
            try:
                return make_thumbnail(load_image(hit.path, max_side=side * 2), side)
            except (UserError, OSError):  # moved or unreadable: the stored one still shows the product
                log.debug("no sharp thumbnail for %s", hit.path)
        return session.index.thumbnail(hit.id)

    def _analyze(self, request: AnalyzeRequest, job: JobControl) -> AnalysisOutcome:
        from ..imaging import load_image
        from ..retrieval.extractor import DECODE_MAX_SIDE

        image = load_image(request.path, max_side=DECODE_MAX_SIDE)
        extractor = self._session.extractor if self._session is not None else self._default_extractor()
        return AnalysisOutcome(request, image, extractor.analyze(image))

    def _default_extractor(self):
        """The default model's extractor, for a photo's maps before any index is open (loaded once)."""
        if self._no_index_extractor is None:
            from ..models.presets import default_model_spec
            from ..retrieval.session import new_extractor

            spec, pooling = default_model_spec()
            self._no_index_extractor = new_extractor(spec, pooling, device=self._device())
        return self._no_index_extractor

    def _warm_up(self, request: WarmUpRequest, job: JobControl) -> WarmUpReport:
        """The window's first search (or a synthetic photo's) through :meth:`_search`, then every chunk's check.

        Measured (issue 16): what a first search costs beyond later ones is the first network pass
        and the first reads, about 60-90 ms on the demo; one search of any photo takes it. A second
        search slower than the tenth was the CPU's other load (see ``cpu_threads``), not a cold stage.
        """
        if self._session is None:  # the open failed (and said so): nothing to warm, nothing more to say
            return WarmUpReport()
        from ..retrieval.search import warm_up_photo

        started = time.perf_counter()
        outcome, photo = None, "the first query"
        if request.search is not None:
            try:
                outcome = self._search(request.search, job)
            except UserError as exc:  # its own search will say so to the user; warm up with another photo
                log.info("warm-up with the first query failed (%s); using a synthetic photo", exc)
        if outcome is None:
            photo = "a synthetic photo"
            template = request.search or SearchRequest(None)
            outcome = self._search(SearchRequest(warm_up_photo(), k=template.k, pooling=template.pooling,
                                                 thumbnail_side=template.thumbnail_side), job)
        chunks = self._session.check_catalog_text()
        self._session.prepare_catalog_filters()  # the Catalog tab's first filter then answers at once
        report = WarmUpReport(time.perf_counter() - started, photo, outcome.stage_seconds, chunks)
        log.info("warm-up search of %s took %.2f s (%s; %d catalog chunks checked)", photo, report.seconds,
                 ", ".join(f"{stage} {seconds * 1000:.0f} ms" for stage, seconds in report.stage_seconds.items()),
                 chunks)
        return report

    def _explain(self, request: ExplainRequest, job: JobControl) -> ExplainOutcome:
        from ..retrieval.explain import explain_match

        session = self._require_session()
        explanation = explain_match(session, request.query_image, request.hit, request.pooling,
                                    request.query_expansion)
        return ExplainOutcome(request, explanation, session.extractor.analyze(explanation.catalog_image))

    def _prepare_demo(self, request: DemoRequest, job: JobControl):
        from ..demo.runner import prepare_demo

        return prepare_demo(request.workdir, products=request.products, model_spec=request.model_spec,
                            device=self._device(), job=job, echo=log.info)

    def _batch_search(self, request: BatchRequest, job: JobControl) -> BatchOutcome:
        from ..challenge_files import write_ranking
        from ..retrieval.search import query_files_in

        session = self._require_session()
        files = query_files_in(request.folder)
        results = session.search_files(files, k=request.k, query_expansion=request.query_expansion, job=job)
        rankings = {Path(r.query).stem: [hit.id for hit in r.hits] for r in results if r.error is None}
        write_ranking(request.out_csv, rankings)
        return BatchOutcome(request.out_csv, results)

    def _build_index(self, request: BuildRequest, job: JobControl):
        from ..retrieval.session import add_catalog, build_catalog, new_extractor

        if request.add:
            # The index decides how its rows are made (model, pooling, scales, input size): the request's
            # model and pooling only describe a new index.
            loaded = self._session.bundle if self._session is not None else None
            return add_catalog(request.out_dir, request.catalog, device=self._device(), bundle=loaded, job=job)
        extractor = new_extractor(request.model_spec, request.pooling, device=self._device())  # a wrong model fails at once
        return build_catalog(request.catalog, request.out_dir, extractor, index_type=request.index_type,
                             resume=request.resume, job=job)

    def _evaluate(self, request: EvalRequest, job: JobControl):
        from ..evaluation.evaluate import evaluate

        session = self._require_session()
        return evaluate(session, request.queries, request.truth, k=request.k, denominator=request.denominator,
                        query_expansion=request.query_expansion, job=job)

    def _list_items(self, request: ItemsRequest, job: JobControl) -> ItemsPage:
        session = self._require_session()
        rows = list(session.index.iter_items(request.filter_text, limit=request.limit, offset=request.offset))
        # The first page carries the count, so the browser's scroll bar spans every matching row.
        total = session.index.count_items(request.filter_text) if request.offset == 0 else None
        return ItemsPage(request.filter_text, request.offset, rows, total)

    # -- thread life ------------------------------------------------------------------------------
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
        """Close the session and end the thread's event loop; jobs queued before this ran (or were skipped)."""
        if self._session is not None:
            self._session.close()
            self._session = None
        self._no_index_extractor = None
        QThread.currentThread().quit()


def preload_core() -> None:
    """Import the heavy core modules (torch, torchvision, timm, faiss) on the calling thread.

    Loading their shared libraries holds the GIL for seconds; done lazily on the worker thread it
    would freeze the window mid-session, so the app does it once at start-up (behind a splash).
    """
    from ..evaluation import evaluate  # noqa: F401
    from ..retrieval import build, search  # noqa: F401


class EngineClient(QObject):
    """GUI-side handle: starts the worker thread, turns requests into :class:`Job` objects and relays
    the worker's reports to them (on the GUI thread).

    Signals (for window-wide views such as the status bar; tabs use their jobs' own signals):
        jobStarted(Job), jobProgress(Job, ProgressEvent), jobEnded(Job): every job's life.
    """

    jobStarted = Signal(object)
    jobProgress = Signal(object, object)
    jobEnded = Signal(object)  # job.state says how; job.error holds a failure's message

    _requestJob = Signal(object)  # _Ticket, to the worker thread
    _requestShutdown = Signal()

    def __init__(self, device: str = "auto", parent: QObject | None = None):
        super().__init__(parent)
        preload_core()
        # Hand the GIL over more often than the default 5 ms so the GUI thread never waits long
        # behind the worker's Python code (pooling, SQLite writes, thumbnails).
        sys.setswitchinterval(0.001)
        self._ids = itertools.count(1)
        self._jobs: dict[int, Job] = {}  # submitted and not yet ended
        self.thread = QThread()
        self.thread.setObjectName("beautylens-engine")
        self._engine = Engine(device)
        self._engine.moveToThread(self.thread)
        # The receivers are this object's slots, so Qt queues the reports onto the GUI thread.
        self._engine.jobStarted.connect(self._on_started)
        self._engine.jobProgress.connect(self._on_progress)
        self._engine.jobFinished.connect(self._on_finished)
        self._engine.jobFailed.connect(self._on_failed)
        self._engine.jobCancelled.connect(self._on_cancelled)
        self._requestJob.connect(self._engine.run_job)
        self._requestShutdown.connect(self._engine.shutdown)
        self.thread.finished.connect(self._engine.deleteLater)
        self.thread.started.connect(self._engine.lower_priority)
        self.thread.start()

    # -- the API -------------------------------------------------------------------------------
    def submit(self, request) -> Job:
        """Queue `request` (an ``*Request``) on the worker; connect to the returned job's signals."""
        job_id = next(self._ids)
        engine = self._engine
        # The progress callback runs on the worker thread and only emits the engine's (queued) signal.
        control = JobControl(lambda event: engine.jobProgress.emit(job_id, event), min_interval_s=0.05)
        job = Job(job_id, request, control)
        self._jobs[job_id] = job
        if self.thread.isRunning():
            self._requestJob.emit(_Ticket(job_id, request, control))
        else:  # stopped: nothing will run it; say so once the caller has connected to the job
            job.cancel()
            QTimer.singleShot(0, partial(self._on_cancelled, job_id))
        return job

    def running_jobs(self) -> list[Job]:
        """Jobs submitted and not yet ended (queued or running), oldest first."""
        return list(self._jobs.values())

    def cancel_all(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel()

    def stop(self, timeout_ms: int = 30000) -> bool:
        """Cancel every job, close the session on the worker thread and wait for the thread to end."""
        self.cancel_all()
        if not self.thread.isRunning():
            return True
        self._requestShutdown.emit()  # queued behind the (cancelled, so skipped) jobs; it ends the loop
        return self.thread.wait(timeout_ms)

    # -- reports from the worker, on the GUI thread ------------------------------------------------------
    @Slot(int)
    def _on_started(self, job_id: int) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            job.state = JobState.RUNNING
            job.started.emit()
            self.jobStarted.emit(job)

    @Slot(int, object)
    def _on_progress(self, job_id: int, event) -> None:
        job = self._jobs.get(job_id)
        if job is not None and job.state == JobState.RUNNING:
            job.progress.emit(event)
            self.jobProgress.emit(job, event)

    @Slot(int, object)
    def _on_finished(self, job_id: int, result) -> None:
        job = self._end(job_id, JobState.FINISHED)
        if job is not None:
            job.finished.emit(result)
            self.jobEnded.emit(job)

    @Slot(int, str)
    def _on_failed(self, job_id: int, message: str) -> None:
        job = self._end(job_id, JobState.FAILED)
        if job is not None:
            job.error = message
            job.failed.emit(message)
            self.jobEnded.emit(job)

    @Slot(int)
    def _on_cancelled(self, job_id: int) -> None:
        job = self._end(job_id, JobState.CANCELLED)
        if job is not None:
            job.cancelled.emit()
            self.jobEnded.emit(job)

    def _end(self, job_id: int, state: JobState) -> Job | None:
        job = self._jobs.pop(job_id, None)
        if job is not None:
            job.state = state
        return job


__all__ = ["AnalysisOutcome", "AnalyzeRequest", "BatchOutcome", "BatchRequest", "BuildRequest", "DemoRequest",
           "Engine", "EngineClient", "EvalRequest", "ExplainOutcome", "ExplainRequest", "ItemsPage", "ItemsRequest",
           "Job", "JobState", "OpenRequest", "Operation", "SearchOutcome", "SearchRequest", "SessionInfo",
           "WarmUpReport", "WarmUpRequest"]
