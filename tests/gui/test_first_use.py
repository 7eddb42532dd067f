"""What a first real use of the app broke (issue 16): each test fails on the code before its fix."""

from __future__ import annotations

from beauty_app.gui.search_tab import SearchTab


def _search_tab(qtbot, client, settings, info):
    tab = SearchTab(client, settings)
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.on_session(info)
    return tab


def _queries(demo_data):
    return sorted(demo_data.queries_dir.iterdir())


def test_query_expansion_reaches_the_gap_ranking(qtbot, client, settings, open_session, demo_data):
    tab = _search_tab(qtbot, client, settings, open_session)
    tab.pooling_combo.setCurrentIndex(tab.pooling_combo.findData("gap"))
    with qtbot.waitSignal(tab.searchDone, timeout=60000) as plain:
        tab.search_path(str(_queries(demo_data)[0]))
    with qtbot.waitSignal(tab.searchDone, timeout=60000) as expanded:
        tab.qe_check.setChecked(True)
    assert expanded.args[0].request.pooling == "gap" and "QE 3" in tab.results_title.text()
    assert [h.score for h in plain.args[0].result.hits] != [h.score for h in expanded.args[0].result.hits]


# ---------------------------------------------------------------------------- annotate (point 6)
def _annotate_tab(qtbot, client, settings):
    from beauty_app.gui.annotate_tab import AnnotateTab

    tab = AnnotateTab(client, settings)
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.show()
    qtbot.waitExposed(tab)
    return tab


def _photo_folder(tmp_path, demo_data, count=3):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in _queries(demo_data)[:count]:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def test_annotate_s_and_t_choose_one_map_g_marks_one_and_ctrl_z_undoes(qtbot, client, settings, open_session,
                                                                         demo_data, tmp_path):
    from PySide6.QtCore import Qt

    tab = _annotate_tab(qtbot, client, settings)
    tab.on_session(open_session)
    tab.open_folder(_photo_folder(tmp_path, demo_data))
    assert tab.busy.isVisible()  # the maps of the first photo are being computed
    qtbot.waitUntil(lambda: tab.current_maps() is not None, timeout=30000)
    assert not tab.busy.isVisible()
    assert tab.targets() == ["saliency"]
    for _ in range(2):  # choosing twice still chooses: S and T do not toggle
        qtbot.keyClick(tab, Qt.Key.Key_T)
        assert tab.targets() == ["text"]
    qtbot.keyClick(tab, Qt.Key.Key_S)
    qtbot.keyClick(tab, Qt.Key.Key_G)
    item = tab.current_id()
    assert tab.marks.marks_of(item) == {"saliency": "good"}
    qtbot.keyClick(tab, Qt.Key.Key_W)
    assert tab.marks.marks_of(item) == {"saliency": "wrong"}

    qtbot.keyClick(tab, Qt.Key.Key_J)
    qtbot.keyClick(tab, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert tab.index == 0 and tab.marks.marks_of(item) == {"saliency": "good"}  # back on the photo it changed
    qtbot.keyClick(tab.list_widget, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert tab.marks.marks_of(item) == {} and tab.marked_count() == 0
    assert not tab.undo()  # nothing left to undo
