"""GUI fixtures: an engine client per test (stopped at teardown), isolated settings, and a check that no
test leaves a Qt thread, a thread-pool worker or a child process running."""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication

# Native names Qt gives its threads: a QThread is named after its objectName (the engine's
# "beautylens-engine", cut to 15 characters by Linux) or its class. Pool threads ("Thread (pooled)") are
# not listed: Qt's own image pool keeps idle ones for 30 s; a pool's running jobs are counted instead.
QT_THREAD_NAMES = ("QThread",)
QT_THREAD_PREFIXES = ("beautylens",)
LEFTOVER_GRACE_S = 5.0


def _qt_threads() -> dict[int, str]:
    """Native thread id -> name of this process's QThreads (Linux; empty elsewhere)."""
    threads = {}
    for task in Path("/proc/self/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue  # the thread ended while we looked
        if name in QT_THREAD_NAMES or name.startswith(QT_THREAD_PREFIXES):
            threads[int(task.name)] = name
    return threads


def _child_processes() -> dict[int, str]:
    """Pid -> command line of this process's living (not zombie) children (Linux; empty elsewhere)."""
    children = {}
    me = os.getpid()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text()
            # the command name is in parentheses and may hold spaces: the fields after it are fixed
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == me and state != "Z":
                children[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        except (OSError, ValueError, IndexError):
            continue
    return children


def _busy_pools() -> list[str]:
    """Thread pools with jobs still running: the global one, the widgets' and any other Python holds."""
    pools = {id(QThreadPool.globalInstance()): QThreadPool.globalInstance()}
    for widget in QApplication.topLevelWidgets():
        pools.update((id(pool), pool) for pool in widget.findChildren(QThreadPool))
    # type() rather than isinstance(): proxies among gc objects answer __class__ lookups with warnings
    pools.update((id(obj), obj) for obj in gc.get_objects() if issubclass(type(obj), QThreadPool))
    busy = []
    for pool in pools.values():
        try:
            active = pool.activeThreadCount()
        except RuntimeError:  # its C++ object is gone
            continue
        if active:
            owner = pool.parent()
            busy.append(f"{active} job(s) on the thread pool of {type(owner).__name__ if owner else 'Qt'}")
    return busy


def _leftovers(threads_before: set[int], children_before: set[int]) -> list[str]:
    found = [f"Qt thread {name!r}" for tid, name in _qt_threads().items() if tid not in threads_before]
    found += _busy_pools()
    found += [f"child process {pid}: {cmd}" for pid, cmd in _child_processes().items()
              if pid not in children_before and not _is_multiprocessing_service(cmd)]
    return found


def _is_multiprocessing_service(command: str) -> bool:
    """The standard library's fork server and resource tracker: started once by the first build that
    decodes in worker processes, shared by every later one, and ended with the app (not a job's leftover)."""
    return any(f"from multiprocessing.{name} import main" in command for name in ("forkserver", "resource_tracker"))


@pytest.fixture(autouse=True)
def _eager_torch_runtime(monkeypatch):
    """GUI tests index with eager torch: the measured runtime (ONNX Runtime on this machine) leaves a
    library worker thread for the rest of the process, named after the engine thread that made it,
    which the leftover check below would count as a QThread. The runtimes have their own tests
    (tests/unit/test_runtime.py); the choice between them is not the GUI's."""
    from beauty_app.retrieval.runtime import RUNTIME_ENV

    monkeypatch.setenv(RUNTIME_ENV, "torch")


@pytest.fixture(autouse=True)
def _no_qt_leftovers(request):
    """A test that leaves a QThread, a thread-pool job or a QProcess child running fails.

    The Python-level check in tests/conftest.py cannot see these. Widgets closed by pytest-qt are
    deleted first (their pools and processes end in their destructors), then stragglers get a short grace.
    """
    if not sys.platform.startswith("linux"):
        yield
        return
    threads_before, children_before = set(_qt_threads()), set(_child_processes())
    yield
    app = QCoreApplication.instance()
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while True:
        if app is not None:
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
            app.processEvents()
        leftovers = _leftovers(threads_before, children_before)
        if not leftovers or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leftovers, f"{request.node.nodeid} left running: {leftovers}"


@pytest.fixture
def settings(tmp_path):
    from beauty_app.gui.settings import Settings

    return Settings(tmp_path / "settings.ini")


@pytest.fixture
def client(qtbot):
    from beauty_app.gui.worker import EngineClient

    engine_client = EngineClient("cpu")
    yield engine_client
    assert engine_client.stop(), "the worker thread did not stop"


@pytest.fixture
def open_session(qtbot, client, built_index):
    """The client with `built_index` opened; returns the SessionInfo."""
    from beauty_app.gui.worker import OpenRequest

    job = client.submit(OpenRequest(str(built_index)))
    with qtbot.waitSignal(job.finished, timeout=60000) as blocker:
        pass  # the job's signals arrive through the event loop, which the blocker runs
    return blocker.args[0]


class LoopWatch:
    """Records the longest gap between event-loop turns (a 5 ms timer that should fire steadily)."""

    def __init__(self):
        self.longest = 0.0
        self.turns = 0
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)

    def _tick(self):
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now
        self.turns += 1

    def start(self):
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self):
        self.timer.stop()
