"""The worker's contract with the GUI thread: whatever a tab or a test connects to runs on the GUI thread."""

from __future__ import annotations

import threading

from beauty_app.gui.worker import BuildRequest


def test_plain_callables_connected_to_the_client_run_on_the_gui_thread(qtbot, client, tiny_checkpoint, demo_data,
                                                                      tmp_path):
    # Issue 19: a lambda (or pytest-qt's signal blocker) connected to a worker-thread object's signal ran
    # on the worker thread; one that stopped a QTimer there left a dangling timer and a later segfault.
    gui_thread = threading.get_ident()
    ran_on = {}
    for name in ("busyChanged", "progress", "buildFinished"):
        getattr(client, name).connect(lambda *_args, name=name: ran_on.setdefault(name, set()).add(threading.get_ident()))
    with qtbot.waitSignal(client.buildFinished, timeout=120000):
        client.requestBuild.emit(BuildRequest(str(demo_data.catalog_csv), str(tiny_checkpoint), str(tmp_path / "idx")))
    qtbot.waitUntil(lambda: len(ran_on.get("busyChanged", ())) > 0 and "progress" in ran_on)
    assert ran_on == {"busyChanged": {gui_thread}, "progress": {gui_thread}, "buildFinished": {gui_thread}}
