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
