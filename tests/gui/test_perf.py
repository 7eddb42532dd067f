"""How long the GUI thread's event loop waits while the worker indexes or a training runs: printed,
never asserted (the number is the machine's load as much as ours). Run with ``pytest -m perf -s``."""

from __future__ import annotations

import pytest

from beauty_app.gui.worker import BuildRequest
from tests.gui.conftest import LoopWatch


@pytest.mark.perf
def test_report_event_loop_gap_while_indexing(qtbot, client, tiny_checkpoint, tmp_path):
    from beauty_app.demo.products import generate_demo

    data = generate_demo(tmp_path / "demo", n_products=40, seed=8, image_size=192)
    watch = LoopWatch()
    watch.start()
    job = client.submit(BuildRequest(str(data.catalog_csv), str(tiny_checkpoint), str(tmp_path / "idx")))
    with qtbot.waitSignal(job.finished, timeout=300000):
        pass
    watch.stop()
    print(f"\nlongest event-loop gap while indexing: {watch.longest * 1000:.1f} ms over {watch.turns} turns")


@pytest.mark.perf
def test_report_event_loop_gap_while_training(qtbot, client, settings, tmp_path):
    from beauty_app.demo.products import generate_demo
    from beauty_app.gui.train_tab import TrainTab
    from beauty_app.training.mining import mine_dataset
    from tests.gui.test_train_tab import configure_tiny

    demo = generate_demo(tmp_path / "demo", n_products=20, image_size=128)
    mined = tmp_path / "mined"
    mine_dataset(demo.catalog_csv, mined, min_images=2)
    tab = TrainTab(client, settings)
    qtbot.addWidget(tab)
    out = tmp_path / "gap.pt"
    configure_tiny(tab, mined, out, iterations=12)
    watch = LoopWatch()
    watch.start()
    tab.start()
    qtbot.waitUntil(lambda: tab.mode == "idle", timeout=300000)
    watch.stop()
    tab.shutdown()
    print(f"\nlongest event-loop gap while training: {watch.longest * 1000:.1f} ms over {watch.turns} turns")
