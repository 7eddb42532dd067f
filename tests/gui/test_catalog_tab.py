"""Catalog tab: build with progress and skipped files, cancel and resume, browse and filter, lazy paging."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt

from beauty_app.gui.catalog_tab import CatalogTab
from beauty_app.gui.widgets.catalog_items import PAGE_SIZE, CatalogItemsModel


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
    client.engine.progress.connect(lambda _event: values.append(tab.progress.bar.value()))

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

    cancelled = []
    client.engine.cancelled.connect(cancelled.append)
    assert tab.start_build("build")
    # cancel as soon as the first batch is stored (the bar has moved), long before the end
    qtbot.waitUntil(lambda: tab.progress.bar.value() > 0, timeout=60000)
    tab.cancel()
    assert tab.progress.label.text().startswith("Cancelling")
    qtbot.waitUntil(lambda: not tab.busy, timeout=60000)
    assert cancelled == ["build index"]

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
    qtbot.waitUntil(lambda: model.rowCount() == len(rows) and model.exhausted, timeout=30000)
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
    qtbot.waitUntil(lambda: model.filter_text == word and model.exhausted, timeout=10000)
    assert [model.row_data(r)["id"] for r in range(model.rowCount())] == expected
    assert tab.browse_count.text() == f"{len(expected):,} items match"


def test_items_model_pages_and_ignores_stale_pages(qtbot):
    model = CatalogItemsModel()
    asked = []
    model.fetchRequested.connect(lambda *args: asked.append(args))
    assert not model.canFetchMore(QModelIndex())  # nothing open yet
    model.reset("", active=True)
    assert asked == [("", 0, PAGE_SIZE)] and model.loading

    page = [{"id": f"c{i}", "path": "", "description": "", "category": ""} for i in range(PAGE_SIZE)]
    assert not model.add_page("other filter", 0, page)  # an answer to an older filter
    assert model.add_page("", 0, page) and model.rowCount() == PAGE_SIZE
    assert model.canFetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    assert asked[-1] == ("", PAGE_SIZE, PAGE_SIZE)
    model.fetchMore(QModelIndex())  # already waiting: no second request for the same page
    assert len(asked) == 2
    assert model.add_page("", PAGE_SIZE, page[:5]) and model.rowCount() == PAGE_SIZE + 5
    assert model.exhausted and not model.canFetchMore(QModelIndex())

    model.reset("lip")
    assert asked[-1] == ("lip", 0, PAGE_SIZE) and model.rowCount() == 0
    assert not model.add_page("", 0, page)
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
    assert model.add_page("", 0, page)
    for row in range(PAGE_SIZE):  # the view paints every row once, as scrolling to the end does
        model.data(model.index(row, 0), Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: model.data(model.index(PAGE_SIZE - 1, 0), Qt.ItemDataRole.DecorationRole) is not None,
                    timeout=10000)
    assert len(model._thumbs) <= 50
    assert model.data(model.index(0, 0), Qt.ItemDataRole.DecorationRole) is None  # dropped: asked for again
    qtbot.waitUntil(lambda: model.data(model.index(0, 0), Qt.ItemDataRole.DecorationRole) is not None, timeout=10000)
    model.shutdown()
