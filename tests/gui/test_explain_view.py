"""Why this match in the window: region pairs on both images with their shares, previous / next / close; the
heatmap legend, opacity value, stretch and empty-map note; regions only with SR-MAC; the open-set sentence."""

from __future__ import annotations

import numpy as np
import pytest

from beauty_app.gui.search_tab import SearchTab
from beauty_app.gui.widgets.comparison import ComparisonDialog, pair_boxes
from beauty_app.gui.widgets.heatmap_legend import HeatmapLegend
from beauty_app.gui.widgets.image_view import HeatmapView
from beauty_app.models.open_set import OpenSetRule


@pytest.fixture
def searched_tab(qtbot, client, settings, open_session, demo_data):
    tab = SearchTab(client, settings)
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.on_session(open_session)
    with qtbot.waitSignal(tab.searchDone, timeout=60000):
        tab.search_path(str(sorted(demo_data.queries_dir.iterdir())[0]))
    return tab


def test_comparison_shows_the_top_pairs_on_both_images(qtbot, searched_tab):
    tab = searched_tab
    hits = tab.current.result.hits
    tab.compare_with(hits[1])
    dialog: ComparisonDialog = tab._dialog
    qtbot.waitUntil(lambda: dialog.explanation is not None, timeout=60000)
    explanation = dialog.explanation
    assert dialog.hit.id == hits[1].id
    pairs = explanation.top_pairs(5)
    assert dialog.table.rowCount() == len(pairs) == 5
    for row, pair in enumerate(pairs):
        assert dialog.table.item(row, 3).text().startswith(f"{pair.share:.1%}")
        assert dialog.table.item(row, 1).text() == explanation.query.terms[pair.query].label
    assert f"Score {explanation.score:.3f}" in dialog.summary.text()
    # The catalog panel shows the decoded catalog file (not the thumbnail), with the pairs drawn on it.
    assert dialog.result_view.composed().shape[:2] == explanation.catalog_image.size[::-1]
    query_boxes, catalog_boxes = pair_boxes(explanation, pairs)
    assert dialog.result_view._pairs == catalog_boxes and dialog.query_view._pairs == query_boxes
    drawn = query_boxes + catalog_boxes
    assert drawn, "at least one pair has a region smaller than the whole photo"
    plain = HeatmapView()
    plain.set_content(np.asarray(explanation.catalog_image))
    plain.set_view(**dialog.view)
    if catalog_boxes:
        assert not np.array_equal(plain.composed(), dialog.result_view.composed())
    # Whole-photo regions are named in the table, never drawn as a frame around everything.
    for terms, boxes in ((explanation.query, query_boxes), (explanation.catalog, catalog_boxes)):
        width, height = terms.image_size
        assert all(w * h < 0.85 * width * height for _, _, (_, _, w, h) in boxes)


def test_previous_next_and_close(qtbot, searched_tab):
    tab = searched_tab
    hits = tab.current.result.hits
    tab.compare_with(hits[0])
    dialog = tab._dialog
    assert not dialog.previous_button.isEnabled() and dialog.next_button.isEnabled()
    with qtbot.waitSignal(dialog.explained, timeout=60000):
        pass
    with qtbot.waitSignal(dialog.explained, timeout=60000) as blocker:
        dialog.next_button.click()
    assert blocker.args[0].request.hit is hits[1] and "#2" in dialog.windowTitle()
    with qtbot.waitSignal(dialog.explained, timeout=60000) as blocker:
        dialog.previous_button.click()
    assert blocker.args[0].request.hit is hits[0] and not dialog.previous_button.isEnabled()
    dialog.close_button.click()
    assert not dialog.isVisible()


def test_legend_shows_scale_opacity_and_true_peak_when_stretched(qtbot):
    view = HeatmapView()
    legend = HeatmapLegend(view)
    qtbot.addWidget(view)
    qtbot.addWidget(legend)
    weak = np.zeros((60, 80), np.float32)
    weak[20:40, 30:50] = 0.2
    view.set_content(np.full((60, 80, 3), 128, np.uint8), saliency=weak)
    view.set_view(which="saliency", opacity=0.4)
    assert legend.high_label.text() == "1" and "peak 0.20" in legend.text and "opacity 40%" in legend.text
    assert not legend.note.text()
    plain = view.composed()
    view.set_view(stretch=True)
    assert legend.high_label.text() == "0.20" and "true peak 0.20" in legend.text
    assert not np.array_equal(plain, view.composed())  # the weak map now uses the whole scale


def test_nearly_empty_map_gets_a_note(qtbot):
    view = HeatmapView()
    legend = HeatmapLegend(view)
    qtbot.addWidget(view)
    qtbot.addWidget(legend)
    view.set_content(np.full((40, 40, 3), 200, np.uint8), text=np.full((40, 40), 0.03, np.float32))
    view.set_view(which="text")
    assert "nearly empty" in legend.note.text() and "0.03" in legend.note.text()
    view.set_view(which="none")
    assert "No heatmap" in legend.text


def test_opacity_value_and_stretch_in_the_search_tab(qtbot, searched_tab):
    tab = searched_tab
    tab.opacity.setValue(37)
    assert tab.opacity_value.text() == "37%" and "opacity 37%" in tab.legend.text
    tab.stretch_check.setChecked(True)
    assert tab.query_view.view["stretch"] and "stretched" in tab.legend.text


def test_region_boxes_only_with_srmac(qtbot, searched_tab):
    tab = searched_tab
    assert tab.regions_check.isEnabled()  # the index ranks with SR-MAC
    tab.regions_check.setChecked(True)
    assert tab.query_view.view["show_regions"]
    with qtbot.waitSignal(tab.searchDone, timeout=60000):
        tab.pooling_combo.setCurrentIndex(tab.pooling_combo.findData("rmac"))
    assert not tab.regions_check.isEnabled() and not tab.query_view.view["show_regions"]
    assert "SR-MAC pooling only" in tab.regions_check.toolTip()


def test_open_set_sentence(qtbot, searched_tab):
    tab = searched_tab
    name, probability = tab.current.result.analysis.top_classes[0]
    tab.session.open_set = OpenSetRule(min(1.0, probability + 0.01), True, 40)
    tab._on_search_finished(tab.current)
    text = tab.open_set_label.text()
    assert "Not one of the model's categories" in text and name in text and f"{probability:.0%}" in text
    assert "40 validation photos" in text
    tab.session.open_set = OpenSetRule(max(0.0, probability - 0.01), False)
    tab._on_search_finished(tab.current)
    assert "Not one of" not in tab.open_set_label.text() and "default threshold" in tab.open_set_label.text()
