"""A small progress/cancel object shared by long core jobs (indexing, training, evaluation).

Core functions take an optional :class:`JobControl`; the CLI wraps it around a tqdm bar and the
GUI's worker thread turns its callbacks into Qt signals. It holds no Qt and no threads itself.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from collections.abc import Callable


class Cancelled(Exception):
    """Raised inside a job at its next progress point after :meth:`JobControl.cancel`."""


@dataclass
class ProgressEvent:
    """One progress step: how far, how fast, and a short human message."""

    stage: str
    done: int
    total: int | None
    rate: float | None = None  # items per second since the stage began
    eta_s: float | None = None
    message: str = ""
    extra: dict = field(default_factory=dict)


class JobControl:
    """Progress reporting and cooperative cancellation for one long job.

    Args:
        on_progress: called with every :class:`ProgressEvent` (from the job's thread).
        min_interval_s: events closer together than this are dropped, except stage starts and ends, so a
            fast loop cannot flood a GUI event queue.
    """

    def __init__(self, on_progress: Callable[[ProgressEvent], None] | None = None, min_interval_s: float = 0.05):
        self._on_progress = on_progress
        self._cancel = threading.Event()
        self._min_interval_s = min_interval_s
        self._last_emit = 0.0
        self._stage = ""
        self._stage_start = time.perf_counter()
        self._stage_start_done = 0

    def cancel(self) -> None:
        """Ask the job to stop at its next progress point (thread-safe)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self._cancel.is_set():
            raise Cancelled("cancelled by the user")

    def report(self, stage: str, done: int, total: int | None = None, message: str = "", **extra) -> None:
        """Report progress of `stage` and act as a cancel point."""
        now = time.perf_counter()
        new_stage = stage != self._stage
        if new_stage:
            self._stage, self._stage_start, self._stage_start_done = stage, now, done
        finished = total is not None and done >= total
        # A stage's first and last events are never dropped: they say when the stage began and ended.
        if self._on_progress is not None and (finished or new_stage or now - self._last_emit >= self._min_interval_s):
            elapsed = now - self._stage_start
            advanced = done - self._stage_start_done
            rate = advanced / elapsed if elapsed > 0 and advanced > 0 else None
            eta = (total - done) / rate if rate and total is not None else None
            self._last_emit = now
            self._on_progress(ProgressEvent(stage, done, total, rate, eta, message, dict(extra)))
        self.check()


def report(job: JobControl | None, stage: str, done: int, total: int | None = None, message: str = "", **extra) -> None:
    """Report to `job` when one is given; a no-op otherwise (keeps call sites short)."""
    if job is not None:
        job.report(stage, done, total, message, **extra)
