"""Search tab: drop a photo, results and heatmaps appear, toggles and crop re-rank, comparison view."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QMimeData, QUrl

from beauty_app.gui.search_tab import SearchTab
from beauty_app.gui.worker import JobState, Operation


def _tab(qtbot, client, settings, info):
    tab = SearchTab(client, settings)
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.on_session(info)
    return tab


def _drop(tab, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    tab.handle_drop(mime)


def test_dropped_photo_shows_results_prediction_and_heatmap(qtbot, client, settings, open_session, demo_data):
    tab = _tab(qtbot, client, settings, open_session)
    query = sorted(demo_data.queries_dir.iterdir())[0]
    with qtbot.waitSignal(tab.searchDone, timeout=60000) as blocker:
        _drop(tab, [query])
    outcome = blocker.args[0]
    assert tab.results.count() == tab.k_spin.value() == len(outcome.result.hits)
    assert tab.prediction_labels[0].text().endswith("%")
    assert tab.query_view.has_image

    tab.map_combo.setCurrentIndex(tab.map_combo.findData("none"))
    plain = tab.query_view.composed()
    tab.map_combo.setCurrentIndex(tab.map_combo.findData("saliency"))
    with_heat = tab.query_view.composed()
    tab.map_combo.setCurrentIndex(tab.map_combo.findData("text"))
    with_text = tab.query_view.composed()
    assert np.array_equal(plain, np.asarray(outcome.image))
    assert not np.array_equal(plain, with_heat) and not np.array_equal(with_heat, with_text)
    tab.opacity.setValue(0)
    assert np.array_equal(tab.query_view.composed(), plain)


def test_pooling_toggle_crop_and_comparison(qtbot, client, settings, open_session, demo_data):
    tab = _tab(qtbot, client, settings, open_session)
    assert [tab.pooling_combo.itemData(i) for i in range(tab.pooling_combo.count())] == ["srmac", "gap", "mac", "rmac"]
    query = sorted(demo_data.queries_dir.iterdir())[1]
    with qtbot.waitSignal(tab.searchDone, timeout=60000):
        tab.search_path(str(query))
    with qtbot.waitSignal(tab.searchDone, timeout=60000) as blocker:
        tab.pooling_combo.setCurrentIndex(tab.pooling_combo.findData("mac"))
    assert blocker.args[0].request.pooling == "mac"
    width, height = tab.current.image.size
    with qtbot.waitSignal(tab.searchDone, timeout=60000) as blocker:
        tab._on_crop(width // 4, height // 4, 3 * width // 4, 3 * height // 4)
    cropped = blocker.args[0]
    assert cropped.request.crop is not None and cropped.image.size[0] < width
    hit = cropped.result.hits[0]
    tab.compare_with(hit)
    # Worker signals reach the tab through the GUI event loop: wait for the effect, not the signal.
    qtbot.waitUntil(lambda: tab._dialog.result_view.has_image, timeout=60000)


def test_export_view_writes_a_png(qtbot, client, settings, open_session, demo_data, tmp_path):
    tab = _tab(qtbot, client, settings, open_session)
    with qtbot.waitSignal(tab.searchDone, timeout=60000):
        tab.search_path(str(sorted(demo_data.queries_dir.iterdir())[0]))
    out = tmp_path / "view.png"
    assert tab.export_view(str(out)) and out.stat().st_size > 1000


def test_batch_folder_writes_a_submission_csv(qtbot, client, settings, open_session, demo_data, tmp_path):
    tab = _tab(qtbot, client, settings, open_session)
    out = tmp_path / "ranking.csv"
    tab.batch_search(str(demo_data.queries_dir), str(out))
    qtbot.waitUntil(lambda: "ranking written" in tab.status_label.text(), timeout=60000)
    rows = out.read_text().strip().splitlines()
    assert len(rows) == len(list(demo_data.queries_dir.iterdir()))


def test_bad_photo_reports_failure_and_keeps_working(qtbot, client, settings, open_session, demo_data, tmp_path):
    tab = _tab(qtbot, client, settings, open_session)
    bad = tmp_path / "broken.jpg"
    bad.write_text("not an image")
    with qtbot.waitSignal(client.jobEnded, timeout=60000) as blocker:
        tab.search_path(str(bad))
    job = blocker.args[0]
    assert job.operation is Operation.SEARCH and job.state is JobState.FAILED and "broken.jpg" in job.error
    assert "broken.jpg" in tab.status_label.text()
    with qtbot.waitSignal(tab.searchDone, timeout=60000):
        tab.search_path(str(sorted(demo_data.queries_dir.iterdir())[0]))
