"""Launch to first result: the warm-up search runs after the index opens and before the first search; the
demo window shows at once and reports the demo data's progress while it is built."""

from __future__ import annotations

import pytest

from beauty_app.gui.app import create_window, launch_report, startup_index
from beauty_app.gui.startup import Startup
from beauty_app.gui.worker import JobState, Operation


def _record(client):
    events = []
    client.jobStarted.connect(lambda job: events.append(("started", job.operation)))
    client.jobEnded.connect(lambda job: events.append((job.state.value, job.operation)))
    return events


def test_warm_up_search_runs_before_the_first_query(qtbot, settings, built_index, demo_data):
    query = sorted(demo_data.queries_dir.iterdir())[0]
    window = create_window(queries=[query], device="cpu", settings=settings)
    qtbot.addWidget(window)
    events = _record(window.client)
    startup = Startup(window)
    shown = []
    startup.ready.connect(lambda: shown.append(window.search_tab.current))
    with qtbot.waitSignal(window.search_tab.searchDone, timeout=60000):
        startup.open(startup_index(window, str(built_index)))
    assert events[:6] == [("started", Operation.OPEN_INDEX), ("finished", Operation.OPEN_INDEX),
                          ("started", Operation.WARM_UP), ("finished", Operation.WARM_UP),
                          ("started", Operation.SEARCH), ("finished", Operation.SEARCH)]
    # The window is shown when the engine is warm, before the first result has arrived.
    assert shown == [None] and startup.warm_up_job.state is JobState.FINISHED
    window.close()


def test_the_warm_up_is_the_first_querys_own_search_through_every_stage(qtbot, settings, built_index, demo_data):
    query = sorted(demo_data.queries_dir.iterdir())[0]
    window = create_window(queries=[query], device="cpu", settings=settings)
    qtbot.addWidget(window)
    startup = Startup(window)
    reports = []
    with qtbot.waitSignal(window.search_tab.searchDone, timeout=60000) as first:
        startup.open(startup_index(window, str(built_index)))
        startup.warm_up_job.finished.connect(reports.append)
    report, outcome = reports[0], first.args[0]
    assert startup.warm_up_job.request.search.source == str(query) == outcome.request.source
    assert report.photo == "the first query"
    # The same stages, in the same order: decoding the photo, the network, the index, the thumbnails.
    assert list(report.stage_seconds) == list(outcome.stage_seconds) == ["decode", "network", "index", "thumbnails"]
    assert report.chunks_checked == len(list(_index_chunks(built_index))) >= 1
    window.close()


def _index_chunks(index_dir):
    from beauty_app.retrieval.index import CatalogIndex

    with CatalogIndex.open(index_dir) as index:
        return list(index.store.chunks())


@pytest.mark.parametrize("source", [None, "missing.jpg"])
def test_without_a_readable_first_photo_the_warm_up_searches_a_synthetic_one(qtbot, client, open_session, source,
                                                                             tmp_path):
    from beauty_app.gui.worker import SearchRequest, WarmUpRequest

    search = SearchRequest(str(tmp_path / source), k=5) if source else None
    job = client.submit(WarmUpRequest(search))
    with qtbot.waitSignal(job.finished, timeout=60000) as blocker:
        pass
    report = blocker.args[0]
    assert report.photo == "a synthetic photo" and report.chunks_checked >= 1
    assert list(report.stage_seconds) == ["network", "index", "thumbnails"]  # decoded before the search


def test_a_failed_open_still_ends_the_start_up_quietly(qtbot, settings, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args: warnings.append(args[2]))
    window = create_window(device="cpu", settings=settings)
    qtbot.addWidget(window)
    startup = Startup(window)
    with qtbot.waitSignal(startup.ready, timeout=60000):
        startup.open(str(tmp_path))  # not an index
    assert startup.warm_up_job.state is JobState.FINISHED  # nothing to warm: no second error dialog
    qtbot.waitUntil(lambda: len(warnings) == 1)
    window.close()


def test_demo_window_shows_at_once_with_progress_then_searches(qtbot, settings, tmp_path, tiny_checkpoint):
    from beauty_app.gui.worker import DemoRequest

    window = create_window(device="cpu", settings=settings)
    qtbot.addWidget(window)
    window.show()  # run_gui shows the demo window before anything is built
    events = _record(window.client)
    progress = []
    window.client.jobProgress.connect(lambda job, event: progress.append(
        (job.operation, event.stage, window.job_progress.isVisible())))
    startup = Startup(window)
    with qtbot.waitSignal(window.search_tab.searchDone, timeout=120000) as blocker:
        startup.start_demo(DemoRequest(str(tmp_path / "demo"), products=4, model_spec=str(tiny_checkpoint)))
        assert "Preparing the demo" in window.search_tab.query_view.placeholder
    stages = {stage for operation, stage, _ in progress if operation is Operation.PREPARE_DEMO}
    assert "generating the demo catalog" in stages and len(stages) >= 2  # generation, then indexing
    assert window.job_progress.isVisible() or any(visible for *_, visible in progress)
    operations = [op for what, op in events if what == "started"]
    assert operations[:4] == [Operation.PREPARE_DEMO, Operation.OPEN_INDEX, Operation.WARM_UP, Operation.SEARCH]
    assert blocker.args[0].request.source == str(sorted((tmp_path / "demo").glob("data-*/queries/*"))[0])
    assert window.search_tab.samples.count() > 0
    window.close()


def test_launch_report_names_the_process_start_and_the_ratio():
    line = launch_report(4.25, [0.2, 0.12, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert line.startswith("window showed the first search 4.2 s after process start")
    assert "1st 200 ms, 2nd 120 ms, 10th 100 ms (2nd/10th 1.20x, 1st/10th 2.00x)" in line


@pytest.mark.parametrize("argv", [["gui", "--index", "IDX", "PHOTO"], ["demo", "--workdir", "WORKDIR"]])
@pytest.mark.parametrize("chosen", [None, "ACTIVE"])
def test_the_window_commands_let_torch_threads_sleep_unless_the_user_chose(argv, chosen, monkeypatch, tmp_path):
    import os

    from beauty_app.cli import main
    from beauty_app.gui import app as app_module

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not read here")
    argv = [str(photo) if word == "PHOTO" else str(tmp_path / word) if word.isupper() else word for word in argv]
    monkeypatch.setenv("OMP_WAIT_POLICY", "restored afterwards")
    if chosen:
        monkeypatch.setenv("OMP_WAIT_POLICY", chosen)
    else:
        monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setattr("beauty_app.gui.system_libraries.window_problem", lambda *args, **kwargs: None)
    seen = []
    monkeypatch.setattr(app_module, "run_gui", lambda **kwargs: seen.append(os.environ.get("OMP_WAIT_POLICY")) or 0)
    assert main(argv) == 0
    assert seen == [chosen or "PASSIVE"]


def test_a_failed_search_ends_a_screenshot_run_with_its_message(qtbot, settings, capsys, monkeypatch):
    from PySide6.QtWidgets import QApplication, QMessageBox

    from beauty_app.gui.app import _quit_after_searches
    from beauty_app.gui.worker import SearchRequest

    dialogs, exits = [], []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args: dialogs.append(args[2]))
    # No event loop of QApplication.exec() runs in a test to reset what exit() sets (it would end every later loop).
    monkeypatch.setattr(QApplication, "exit", staticmethod(exits.append))
    window = create_window(device="cpu", settings=settings)
    qtbot.addWidget(window)
    window.show()
    _quit_after_searches(window, "unused.png")
    job = window.client.submit(SearchRequest("photo.jpg"))  # no index is open: the search fails
    with qtbot.waitSignal(job.failed, timeout=30000):
        pass
    qtbot.waitUntil(lambda: not window.isVisible())
    assert exits == [1] and "The search failed: Open a catalog index first" in capsys.readouterr().err


def test_stage_report_shows_the_second_and_last_search_stage_by_stage():
    from types import SimpleNamespace

    from beauty_app.gui.app import stage_report

    outcomes = [SimpleNamespace(stage_seconds={"decode": 0.001, "network": 0.030, "index": 0.0005})] * 9
    outcomes.append(SimpleNamespace(stage_seconds={"decode": 0.001, "network": 0.020, "index": 0.0004}))
    assert stage_report(outcomes) == ("stages of the 2nd/10th search (ms): decode 1.0/1.0, network 30.0/20.0, "
                                      "index 0.5/0.4")


@pytest.mark.parametrize("chosen", [None, "ACTIVE"])
def test_a_training_child_does_not_inherit_the_window_s_sleeping_waits(monkeypatch, chosen):
    from beauty_app import cpu_threads
    from beauty_app.gui.widgets.train_process import _child_environment

    monkeypatch.setattr(cpu_threads, "_SET_BY_US", False)
    if chosen:
        monkeypatch.setenv("OMP_WAIT_POLICY", chosen)
    else:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    cpu_threads.prefer_sleeping_waits()
    child = _child_environment()
    # The window's own choice stays in the window; a policy the user set reaches the child unchanged.
    assert child.value("OMP_WAIT_POLICY", "unset") == (chosen or "unset")
