"""Annotate tab: maps from the worker, keyboard stepping and marking, the marks CSV, raw-map export."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from beauty_app.gui.annotate_tab import AnnotateTab, list_photos
from beauty_app.gui.widgets.annotate_marks import MARKS_FILE, MarkStore
from beauty_app.training.trainer import read_mask_marks

WAIT_MS = 30000


@pytest.fixture
def photos(tmp_path, demo_data):
    """A copy of the demo queries (the tab writes its marks file into the folder)."""
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(demo_data.queries_dir, folder)
    return folder


def make_tab(qtbot, client, settings) -> AnnotateTab:
    tab = AnnotateTab(client, settings)
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.show()
    qtbot.waitExposed(tab)
    return tab


def wait_for_maps(qtbot, tab: AnnotateTab) -> None:
    qtbot.waitUntil(lambda: tab.current_maps() is not None, timeout=WAIT_MS)


def test_without_a_session_the_tab_shows_a_hint_and_the_photo(qtbot, client, settings, photos):
    tab = make_tab(qtbot, client, settings)
    assert "Open a catalog index" in tab.hint_label.text()
    tab.open_folder(photos)
    assert len(tab.photos) == len(list_photos(photos)) > 2
    assert tab.photo_view.has_image and not tab.saliency_view.has_image
    tab.mark("wrong")  # nothing to judge yet: refused, nothing written
    assert not (photos / MARKS_FILE).exists()
    assert tab.progress_label.text() == f"Image 1 of {len(tab.photos)}, 0 marked"


def test_step_mark_and_export_with_the_keyboard(qtbot, client, settings, open_session, photos, tmp_path):
    tab = make_tab(qtbot, client, settings)
    tab.on_session(open_session)
    assert "Open a catalog index" not in tab.hint_label.text()
    tab.open_folder(photos)
    n = len(tab.photos)
    wait_for_maps(qtbot, tab)
    maps = tab.current_maps()
    assert maps.saliency is not None and maps.text is not None
    assert maps.saliency.shape == maps.image.shape[:2] and maps.saliency.dtype == np.float32
    assert tab.saliency_view.has_image and tab.text_view.has_image

    tab.list_widget.setFocus()
    qtbot.keyClick(tab.list_widget, Qt.Key.Key_Right)  # the list must not swallow our keys
    assert tab.index == 1
    qtbot.keyClick(tab, Qt.Key.Key_J)
    assert tab.index == 2
    qtbot.keyClick(tab.saliency_view, Qt.Key.Key_K)  # keys pressed over a picture reach the tab
    assert tab.index == 1
    second = tab.current_id()
    wait_for_maps(qtbot, tab)
    assert tab.targets() == ["saliency"]  # one map by default: G/W judge the map the eye is on
    qtbot.keyClick(tab.list_widget, Qt.Key.Key_B)
    qtbot.keyClick(tab.list_widget, Qt.Key.Key_W)
    assert tab.progress_label.text() == f"Image 2 of {n}, 1 marked"

    qtbot.keyClick(tab, Qt.Key.Key_Left)
    assert tab.index == 0
    first = tab.current_id()
    wait_for_maps(qtbot, tab)
    qtbot.keyClick(tab, Qt.Key.Key_T)  # S and T choose (not toggle): T gives the text map alone
    assert tab.targets() == ["text"]
    qtbot.keyClick(tab, Qt.Key.Key_S)
    assert tab.targets() == ["saliency"]
    qtbot.keyClick(tab, Qt.Key.Key_G)
    qtbot.mouseClick(tab.mark_buttons[("text", "wrong")], Qt.MouseButton.LeftButton)
    assert tab.progress_label.text() == f"Image 1 of {n}, 2 marked"
    assert tab.map_state["text"].text() == "<b>WRONG</b>"

    marks_csv = photos / MARKS_FILE
    assert read_mask_marks(marks_csv) == {(second, "saliency"), (second, "text"), (first, "text")}
    lines = marks_csv.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id,map,mark" and f"{first},saliency,good" in lines

    qtbot.keyClick(tab, Qt.Key.Key_E)
    export = photos / "maps"
    for which in ("saliency", "text"):
        raw = np.load(export / f"{first}_{which}.npy")
        assert raw.dtype == np.float32 and raw.shape == maps.saliency.shape
        from PIL import Image

        png = Image.open(export / f"{first}_{which}.png")
        assert png.mode == "L" and png.size == (raw.shape[1], raw.shape[0])
        assert np.abs(np.asarray(png) / 255.0 - raw).max() <= 0.5 / 255 + 1e-6
    assert "Exported 4 files" in tab.status_label.text()
    assert len(list_photos(photos)) == n  # exports go to a subfolder, not among the photos

    # Reopening the folder (a new session of the annotator) brings the marks back.
    again = make_tab(qtbot, client, settings)
    again.open_folder(photos)
    assert again.marks.marks_of(first) == {"saliency": "good", "text": "wrong"}
    assert again.marked_count() == 2
    assert again.folder_edit.text() == str(photos)


def test_mark_store_round_trip_and_clearing(tmp_path):
    store = MarkStore(tmp_path / MARKS_FILE)
    assert store.load() == 0
    assert store.set("-odd", "saliency", "wrong")  # a formula-looking id is escaped and restored
    assert store.set("b", "text", "good")
    assert not store.set("b", "text", "good")
    assert store.set("b", "text", None) and not store.is_marked("b")
    again = MarkStore(tmp_path / MARKS_FILE)
    assert again.load() == 1 and again.get("-odd", "saliency") == "wrong"
