"""Launch to first result: the warm-up search runs after the index opens and before the first search; the
demo window shows at once and reports the demo data's progress while it is built."""

from __future__ import annotations

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
