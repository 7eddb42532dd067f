"""The window never freezes: the event loop keeps turning while the worker indexes a catalog."""

from __future__ import annotations

from beauty_app.gui.worker import BuildRequest
from tests.gui.conftest import LoopWatch


def test_event_loop_keeps_turning_while_indexing(qtbot, client, tiny_checkpoint, tmp_path):
    from beauty_app.demo.products import generate_demo

    data = generate_demo(tmp_path / "demo", n_products=40, seed=8, image_size=192)
    done = []
    client.buildFinished.connect(lambda summary: done.append(summary))
    progress = []
    client.progress.connect(progress.append)
    watch = LoopWatch()
    watch.start()
    client.requestBuild.emit(BuildRequest(str(data.catalog_csv), str(tiny_checkpoint), str(tmp_path / "idx")))
    qtbot.waitUntil(lambda: bool(done), timeout=120000)
    watch.stop()
    assert done[0].indexed == data.n_catalog
    assert len(progress) >= 2
    print(f"longest event-loop gap while indexing: {watch.longest * 1000:.1f} ms over {watch.turns} turns")
    assert watch.turns > 20
    assert watch.longest < 0.100


def test_cancel_stops_a_build_and_leaves_it_resumable(qtbot, client, tiny_checkpoint, tmp_path):
    from beauty_app.demo.products import generate_demo
    from beauty_app.retrieval.index import CatalogIndex

    data = generate_demo(tmp_path / "demo", n_products=60, seed=9, image_size=160)
    cancelled, finished = [], []
    client.cancelled.connect(cancelled.append)
    client.buildFinished.connect(finished.append)

    def cancel_after_first_batch(event):
        if event.stage == "index" and event.done > 0:
            client.cancel()

    client.progress.connect(cancel_after_first_batch)
    client.requestBuild.emit(BuildRequest(str(data.catalog_csv), str(tiny_checkpoint), str(tmp_path / "idx")))
    qtbot.waitUntil(lambda: bool(cancelled) or bool(finished), timeout=120000)
    client.progress.disconnect(cancel_after_first_batch)
    assert cancelled == ["build index"] and not finished
    with CatalogIndex.open(tmp_path / "idx") as index:
        assert 0 < index.count() < data.n_catalog and not index.complete
    client.requestBuild.emit(BuildRequest(str(data.catalog_csv), str(tiny_checkpoint), str(tmp_path / "idx"),
                                          resume=True))
    qtbot.waitUntil(lambda: bool(finished), timeout=120000)
    assert finished[0].already_done > 0 and finished[0].info["count"] == data.n_catalog
