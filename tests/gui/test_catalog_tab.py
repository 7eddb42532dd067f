"""Catalog tab: build with progress and skipped files, cancel and resume, browse and filter, lazy paging."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from PySide6.QtCore import Qt, QTimer

from beauty_app.gui.catalog_tab import CatalogTab
from beauty_app.gui.widgets.catalog_items import PAGE_SIZE, PLACEHOLDER, WANTED_PAGES, CatalogItemsModel
from beauty_app.gui.worker import JobState, Operation


def _tab(qtbot, client, settings) -> CatalogTab:
    tab = CatalogTab(client, settings)
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    return tab


def _folder_catalog(demo_data, folder: Path, copies: int = 1) -> Path:
    """The demo catalog images as a folder catalog (`copies` times each, under new names)."""
    folder.mkdir()
    images = sorted((demo_data.root / "catalog").glob("*.jpg"))
    for copy in range(copies):
        for image in images:
            shutil.copy(image, folder / f"{image.stem}_{copy}.jpg")
    return folder


def test_build_shows_progress_skipped_files_and_emits_index_ready(qtbot, client, settings, tiny_checkpoint,
                                                                 demo_data, tmp_path):
    catalog = _folder_catalog(demo_data, tmp_path / "catalog")
    (catalog / "broken.jpg").write_bytes(b"this is not a JPEG")
    out = tmp_path / "index"
    tab = _tab(qtbot, client, settings)
    tab.catalog_edit.setText(str(catalog))
    tab.model_combo.setCurrentText(str(tiny_checkpoint))
    tab.out_edit.setText(str(out))
    values = []
    client.jobProgress.connect(lambda _job, _event: values.append(tab.progress.bar.value()))

    assert tab.build_button.isEnabled() and not tab.cancel_button.isEnabled()
    with qtbot.waitSignal(tab.indexReady, timeout=60000) as ready:
        qtbot.mouseClick(tab.build_button, Qt.MouseButton.LeftButton)
        assert tab.busy and tab.cancel_button.isEnabled() and not tab.build_button.isEnabled()
    assert ready.args == [str(out), str(tiny_checkpoint)]
    assert (out / "catalog.sqlite").is_file()

    # the bar moved through the build and ended full
    assert len(values) >= 2 and max(values) > 0
    assert tab.progress.bar.value() == tab.progress.bar.maximum()
    assert tab.progress.label.text().startswith("Done:")

    n_images = len(list((demo_data.root / "catalog").glob("*.jpg")))
    assert tab.summary_labels["count"].text() == f"{n_images:,}"
    assert tab.summary_labels["pooling"].text() == "srmac"
    assert tab.summary_labels["model_spec"].text() == str(tiny_checkpoint)
    skipped = {tab.skipped_table.item(r, 0).text(): tab.skipped_table.item(r, 1).text()
               for r in range(tab.skipped_table.rowCount())}
    assert list(skipped) == ["broken"] and skipped["broken"]
    assert tab.skipped_box.title() == "Skipped files (1)"

    # idle again: the folder now holds an index, so Build is off and Resume on; choices were remembered
    assert not tab.busy and not tab.cancel_button.isEnabled()
    assert not tab.build_button.isEnabled() and tab.resume_button.isEnabled()
    assert settings.get("catalog/last_model") == str(tiny_checkpoint)
    assert settings.get("catalog/last_source") == str(catalog)


def test_cancel_leaves_ui_idle_and_resume_finishes_the_index(qtbot, client, settings, tiny_checkpoint,
                                                             demo_data, tmp_path, monkeypatch):
    import time

    from beauty_app.retrieval.extractor import FeatureExtractor
    from beauty_app.retrieval.runtime import RUNTIME_ENV

    # Eager torch: the measured runtime (ONNX Runtime here) leaves a library worker thread for the rest
    # of the process, named after the engine thread that made it, which the leftover check would count
    # as a QThread. The runtimes have their own tests (tests/unit/test_runtime.py).
    monkeypatch.setenv(RUNTIME_ENV, "torch")
    from beauty_app.retrieval.index import CatalogIndex

    # The tiny model indexes faster than a click arrives; slow each batch so the cancel lands mid-build.
    pooled = FeatureExtractor.pooled

    def slow_pooled(self, batch, poolings):
        time.sleep(0.25)
        return pooled(self, batch, poolings)

    monkeypatch.setattr(FeatureExtractor, "pooled", slow_pooled)

    catalog = _folder_catalog(demo_data, tmp_path / "catalog", copies=6)
    total = len(list(catalog.iterdir()))
    out = tmp_path / "index"
    tab = _tab(qtbot, client, settings)
    tab.catalog_edit.setText(str(catalog))
    tab.model_combo.setCurrentText(str(tiny_checkpoint))
    tab.out_edit.setText(str(out))

    ended = []
    client.jobEnded.connect(ended.append)
    assert tab.start_build("build")
    # cancel as soon as the first batch is stored (the bar has moved), long before the end
    qtbot.waitUntil(lambda: tab.progress.bar.value() > 0, timeout=60000)
    tab.cancel()
    assert tab.progress.label.text().startswith("Cancelling")
    qtbot.waitUntil(lambda: not tab.busy, timeout=60000)
    assert [(job.operation, job.state) for job in ended] == [(Operation.BUILD_INDEX, JobState.CANCELLED)]

    assert not tab.busy
    assert not tab.cancel_button.isEnabled() and tab.catalog_edit.isEnabled()
    assert tab.resume_button.isEnabled() and not tab.build_button.isEnabled()
    assert tab.progress.label.text().startswith("Cancelled")
    assert "Resume" in tab.message.text()
    with CatalogIndex.open(out) as index:
        assert not index.complete
        done_before = index.count()
    assert 0 < done_before < total

    with qtbot.waitSignal(tab.buildDone, timeout=60000) as finished:
        qtbot.mouseClick(tab.resume_button, Qt.MouseButton.LeftButton)
    summary = finished.args[0]
    assert summary.already_done == done_before
    assert summary.already_done + summary.indexed == total
    assert tab.summary_labels["count"].text() == f"{total:,}"


def test_build_with_model_builds_into_a_new_folder_next_to_the_last_index(qtbot, client, settings, tiny_checkpoint,
                                                                          demo_data, tmp_path):
    tab = _tab(qtbot, client, settings)
    tab.catalog_edit.setText(str(demo_data.catalog_csv))
    tab.out_edit.setText(str(tmp_path / "first-index"))
    (tmp_path / f"index-{tiny_checkpoint.stem}").mkdir()  # taken: the new index must not land there
    with qtbot.waitSignal(tab.indexReady, timeout=60000) as ready:
        assert tab.build_with_model(str(tiny_checkpoint))
    assert ready.args == [str(tmp_path / f"index-{tiny_checkpoint.stem}-2"), str(tiny_checkpoint)]
    assert tab.model_spec() == str(tiny_checkpoint)
    assert (tmp_path / f"index-{tiny_checkpoint.stem}-2" / "catalog.sqlite").is_file()


def test_build_with_model_without_a_catalog_asks_for_one(qtbot, client, settings, tiny_checkpoint):
    tab = _tab(qtbot, client, settings)
    assert not tab.build_with_model(str(tiny_checkpoint))
    assert not tab.busy and tab.model_spec() == str(tiny_checkpoint)
    assert "catalog" in tab.message.text()


def test_browser_lists_rows_filters_them_and_loads_thumbnails(qtbot, client, settings, open_session, demo_data):
    tab = _tab(qtbot, client, settings)
    model = tab.items_model
    with open(demo_data.catalog_csv, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    tab.on_session(open_session)
    qtbot.waitUntil(lambda: model.total == len(rows) and not model.loading, timeout=30000)
    assert [model.row_data(r)["id"] for r in range(model.rowCount())] == [row["id"] for row in rows]
    assert model.data(model.index(0, 1)) == rows[0]["description"]
    assert tab.browse_count.text() == f"{len(rows):,} items in the catalog"
    qtbot.waitUntil(lambda: model.data(model.index(0, 0), Qt.ItemDataRole.DecorationRole) is not None, timeout=10000)

    word = rows[0]["category"]
    expected = [row["id"] for row in rows
                if any(word.lower() in row[key].lower() for key in ("id", "description", "category"))]
    assert 0 < len(expected) < len(rows)
    tab.filter_edit.setText(word)
    assert tab.filter_timer.isActive() and model.rowCount() == len(rows)  # debounced: nothing asked yet
    qtbot.waitUntil(lambda: model.filter_text == word and model.total is not None and not model.loading,
                    timeout=10000)
    assert [model.row_data(r)["id"] for r in range(model.rowCount())] == expected
    assert tab.browse_count.text() == f"{len(expected):,} items match"


def _page(offset: int, count: int = PAGE_SIZE) -> list[dict]:
    return [{"id": f"c{offset + i}", "path": "", "description": f"row {offset + i}", "category": ""}
            for i in range(count)]


def test_items_model_is_a_window_onto_every_row(qtbot):
    model = CatalogItemsModel()
    asked = []
    model.fetchRequested.connect(lambda *args: asked.append(args))
    model.reset("")
    assert asked == [] and model.rowCount() == 0  # nothing open yet
    model.reset("", active=True)
    assert asked == [("", 0, PAGE_SIZE)] and model.loading and model.total is None

    assert not model.add_page("other filter", 0, _page(0), 500_000)  # an answer to an older filter
    assert model.add_page("", 0, _page(0), 500_000)
    assert model.rowCount() == 500_000 and model.total == 500_000  # the scroll bar spans the whole catalog
    assert model.data(model.index(5, 1)) == "row 5"

    # Jumping to the end paints rows of a page not loaded: it shows a placeholder and is asked for.
    last = model.index(499_999, 0)
    assert model.data(last) == PLACEHOLDER and model.row_data(499_999) is None
    qtbot.waitUntil(lambda: len(asked) == 2)
    assert asked[-1] == ("", 499_800, PAGE_SIZE)
    assert not model.add_page("", 0, _page(0))  # not the page asked for
    assert model.add_page("", 499_800, _page(499_800))
    assert model.data(last) == "c499999" and model.row_data(499_999)["id"] == "c499999"

    model.reset("lip")
    assert asked[-1] == ("lip", 0, PAGE_SIZE) and model.rowCount() == 0
    assert not model.add_page("", 0, _page(0), 10)
    assert model.add_page("lip", 0, _page(0, 3), 3) and model.rowCount() == 3
    model.shutdown()


def test_items_model_asks_one_page_at_a_time_most_recent_first_and_keeps_few(qtbot):
    model = CatalogItemsModel()
    model.max_pages = 4
    asked = []
    model.fetchRequested.connect(lambda *args: asked.append(args[1] // PAGE_SIZE))
    model.reset("", active=True)
    assert model.add_page("", 0, _page(0), 100 * PAGE_SIZE)
    for page in range(10, 30):  # a scroll bar dragged through 20 pages
        model.data(model.index(page * PAGE_SIZE, 0))
    qtbot.waitUntil(lambda: len(asked) == 2)
    assert asked == [0, 29]  # the page in view now, not a backlog of the ones passed
    for _ in range(WANTED_PAGES):
        page = asked[-1]
        assert model.add_page("", page * PAGE_SIZE, _page(page * PAGE_SIZE))
    assert asked[1:] == [29, 28, 27, 26, 25, 24, 23][:len(asked) - 1]  # recently painted pages, newest first
    assert len(asked) == 1 + WANTED_PAGES and not model.loading  # older ones were scrolled past: not fetched
    assert len(model.loaded_pages()) == 4 and model.row_data(0) is None  # least recently shown pages dropped
    model.shutdown()


def test_thumbnails_kept_are_bounded_and_evicted_ones_come_back(qtbot, tmp_path):
    from PySide6.QtGui import QColor, QImage

    image = QImage(64, 64, QImage.Format.Format_RGB32)
    image.fill(QColor("crimson"))
    assert image.save(str(tmp_path / "p.png"))
    model = CatalogItemsModel()
    model.thumbnail_cache = 50
    model.reset("", active=True)
    page = [{"id": f"c{i}", "path": str(tmp_path / "p.png"), "description": "", "category": ""}
            for i in range(PAGE_SIZE)]
    assert model.add_page("", 0, page, PAGE_SIZE)
    for row in range(PAGE_SIZE):  # the view paints every row once, as scrolling to the end does
        model.data(model.index(row, 0), Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: model.data(model.index(PAGE_SIZE - 1, 0), Qt.ItemDataRole.DecorationRole) is not None,
                    timeout=10000)
    assert len(model._thumbs) <= 50
    assert model.data(model.index(0, 0), Qt.ItemDataRole.DecorationRole) is None  # dropped: asked for again
    qtbot.waitUntil(lambda: model.data(model.index(0, 0), Qt.ItemDataRole.DecorationRole) is not None, timeout=10000)
    model.shutdown()


def test_a_view_dragged_to_the_end_of_500000_rows_asks_for_the_pages_it_shows(qtbot):
    from PySide6.QtWidgets import QTableView

    model = CatalogItemsModel()
    view = QTableView()
    view.setModel(model)
    view.resize(600, 400)
    qtbot.addWidget(view)
    view.show()
    asked = []

    def answer(filter_text, offset, limit):  # a worker that answers at once
        asked.append(offset)
        QTimer.singleShot(0, lambda: model.add_page(filter_text, offset, _page(offset, min(limit, 500_000 - offset)),
                                                    500_000 if offset == 0 else None))

    model.fetchRequested.connect(answer)
    model.reset("", active=True)
    qtbot.waitUntil(lambda: model.rowCount() == 500_000)
    view.verticalScrollBar().setValue(view.verticalScrollBar().maximum())
    qtbot.waitUntil(lambda: model.row_data(499_999) is not None, timeout=5000)
    bottom = view.rowAt(view.viewport().height() - 2)
    assert bottom > 499_000 and model.data(model.index(bottom, 0)) == f"c{bottom}"
    assert asked == [0, 499_800]  # the page on screen, not the 2,498 pages in between
    model.shutdown()


def test_a_new_index_defaults_to_the_shipped_manet(qtbot, client, settings):
    from beauty_app.paths import demo_checkpoint

    tab = _tab(qtbot, client, settings)
    assert demo_checkpoint().is_file()
    assert tab.model_spec() == str(demo_checkpoint()) and tab.pooling_combo.currentData() == "srmac"
    assert tab.model_combo.findText("imagenet:efficientnet_lite0") >= 0
