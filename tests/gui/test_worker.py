"""The worker's job API: one Job per request with its own signals, in order, on the GUI thread; cancel
works from the moment a job exists."""

from __future__ import annotations

import threading

import pytest

from beauty_app.retrieval.extractor import FeatureExtractor
from beauty_app.gui.worker import (
    BuildRequest,
    Engine,
    ItemsPage,
    ItemsRequest,
    Job,
    JobState,
    OpenRequest,
    Operation,
)

WAIT_MS = 120000
JOB_SIGNALS = ("started", "progress", "finished", "failed", "cancelled")


def record(job: Job) -> list[str]:
    """The names of the signals `job` emits, in order (a run of progress signals counts once)."""
    names: list[str] = []

    def add(name):
        if not (name == "progress" and names and names[-1] == "progress"):
            names.append(name)

    for name in JOB_SIGNALS:
        getattr(job, name).connect(lambda *_args, name=name: add(name))
    return names


@pytest.fixture
def gated_items(monkeypatch):
    """Listing items blocks the worker until the test sets the returned event."""
    gate = threading.Event()

    def list_items(self, request, job):
        assert gate.wait(60), "the test never opened the gate"
        return ItemsPage(request.filter_text, request.offset, [], 0)

    monkeypatch.setattr(Engine, "_list_items", list_items)
    return gate


def test_a_build_job_reports_started_progress_finished_in_order(qtbot, client, tiny_checkpoint, demo_data, tmp_path):
    job = client.submit(BuildRequest(str(demo_data.catalog_csv), str(tiny_checkpoint), str(tmp_path / "idx")))
    assert job.operation is Operation.BUILD_INDEX and job.state is JobState.QUEUED and job.id > 0
    names = record(job)
    results = []
    job.finished.connect(results.append)
    with qtbot.waitSignals([job.started, job.finished], order="strict", timeout=WAIT_MS):
        pass  # the worker's reports arrive through the event loop the blocker runs
    assert names == ["started", "progress", "finished"]
    [summary] = results
    assert summary.indexed == demo_data.n_catalog and job.state is JobState.FINISHED
    assert client.running_jobs() == []


def test_a_failing_job_reports_one_sentence(qtbot, client, tmp_path):
    job = client.submit(OpenRequest(str(tmp_path / "no-index-here")))
    names = record(job)
    messages = []
    job.failed.connect(messages.append)
    with qtbot.waitSignals([job.started, job.failed], order="strict", timeout=WAIT_MS):
        pass
    [message] = messages
    assert names == ["started", "failed"] and job.state is JobState.FAILED and job.error == message
    assert message and "Traceback" not in message


def test_a_job_cancelled_while_queued_never_starts(qtbot, client, gated_items):
    first = client.submit(ItemsRequest("", 0, 10))
    with qtbot.waitSignal(first.started, timeout=WAIT_MS):
        pass
    second = client.submit(OpenRequest("/nowhere"))  # queued behind the first
    names = record(second)
    started = []
    client.jobStarted.connect(started.append)
    second.cancel()
    gated_items.set()
    with qtbot.waitSignals([first.finished, second.cancelled], order="strict", timeout=WAIT_MS):
        pass
    assert names == ["cancelled"] and second.state is JobState.CANCELLED and started == []


def test_cancel_stops_a_running_build_at_its_next_batch_and_it_resumes(qtbot, client, tiny_checkpoint, tmp_path,
                                                                       monkeypatch):
    from beauty_app.demo.products import generate_demo
    from beauty_app.retrieval.index import CatalogIndex

    data = generate_demo(tmp_path / "demo", n_products=60, seed=9, image_size=160)
    # The second batch waits until the GUI has cancelled, so a busy machine cannot let the whole build
    # finish before the cancel arrives (the build is stopped at the batch after the cancel).
    cancel_sent = threading.Event()
    batches = {"n": 0}
    original = FeatureExtractor.pooled_pixels

    def second_batch_waits_for_the_cancel(self, *args, **kwargs):
        batches["n"] += 1
        if batches["n"] == 2:
            cancel_sent.wait(timeout=WAIT_MS / 1000)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FeatureExtractor, "pooled_pixels", second_batch_waits_for_the_cancel)
    job = client.submit(BuildRequest(str(data.catalog_csv), str(tiny_checkpoint), str(tmp_path / "idx")))
    names = record(job)

    def cancel_after_the_first_stored_batch(event):
        if event.stage == "index" and event.done > 0 and not cancel_sent.is_set():
            job.cancel()
            cancel_sent.set()

    job.progress.connect(cancel_after_the_first_stored_batch)
    with qtbot.waitSignals([job.started, job.cancelled], order="strict", timeout=WAIT_MS):
        pass
    assert names == ["started", "progress", "cancelled"]
    with CatalogIndex.open(tmp_path / "idx") as index:
        assert 0 < index.count() < data.n_catalog and not index.complete

    resumed = client.submit(BuildRequest(str(data.catalog_csv), str(tiny_checkpoint), str(tmp_path / "idx"),
                                         resume=True))
    with qtbot.waitSignal(resumed.finished, timeout=WAIT_MS) as blocker:
        pass
    assert blocker.args[0].already_done > 0 and blocker.args[0].info["count"] == data.n_catalog


def test_stop_cancels_queued_jobs_and_ends_the_thread(qtbot, client, gated_items):
    first = client.submit(ItemsRequest("", 0, 10))
    with qtbot.waitSignal(first.started, timeout=WAIT_MS):
        pass
    queued = client.submit(OpenRequest("/nowhere"))
    names = record(queued)
    gated_items.set()
    assert client.stop()
    assert not client.thread.isRunning()
    qtbot.waitUntil(lambda: queued.done, timeout=WAIT_MS)
    assert names == ["cancelled"]
    late = client.submit(ItemsRequest("", 0, 10))  # after stop: cancelled, never run
    with qtbot.waitSignal(late.cancelled, timeout=WAIT_MS):
        pass


def test_callables_connected_to_jobs_and_client_run_on_the_gui_thread(qtbot, client, tiny_checkpoint, demo_data,
                                                                      tmp_path):
    # Issue 19: a lambda (or pytest-qt's signal blocker) connected to a worker-thread object's signal ran
    # on the worker thread; one that stopped a QTimer there left a dangling timer and a later segfault.
    gui_thread = threading.get_ident()
    ran_on: dict[str, set[int]] = {}

    def note(name):
        return lambda *_args: ran_on.setdefault(name, set()).add(threading.get_ident())

    for name in ("jobStarted", "jobProgress", "jobEnded"):
        getattr(client, name).connect(note(name))
    job = client.submit(BuildRequest(str(demo_data.catalog_csv), str(tiny_checkpoint), str(tmp_path / "idx")))
    for name in ("started", "progress", "finished"):
        getattr(job, name).connect(note(name))
    with qtbot.waitSignal(client.jobEnded, timeout=WAIT_MS):
        pass
    assert ran_on == {name: {gui_thread} for name in ("jobStarted", "jobProgress", "jobEnded", "started",
                                                       "progress", "finished")}
