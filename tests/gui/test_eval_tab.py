"""Evaluation tab: MAP runs side by side, worst queries first, open a query, export, cancel."""

from __future__ import annotations

import csv
from pathlib import Path

from PySide6.QtCore import Qt

from beauty_app.challenge_files import read_truth
from beauty_app.gui.eval_tab import EvalTab, model_short_name
from beauty_app.gui.worker import JobState, Operation


def _tab(qtbot, client, settings, info, demo_data) -> EvalTab:
    tab = EvalTab(client, settings)
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.on_session(info)
    tab.queries_edit.setText(str(demo_data.queries_dir))
    tab.truth_edit.setText(str(demo_data.truth_csv))
    return tab


def _run(qtbot, tab):
    with qtbot.waitSignal(tab.runFinished, timeout=60000) as finished:
        qtbot.mouseClick(tab.run_button, Qt.MouseButton.LeftButton)
        assert tab.busy and tab.cancel_button.isEnabled() and not tab.run_button.isEnabled()
    return finished.args[0]


def test_runs_side_by_side_worst_first_and_open_query(qtbot, client, settings, open_session, demo_data,
                                                      tiny_checkpoint):
    tab = _tab(qtbot, client, settings, open_session, demo_data)
    truth = read_truth(demo_data.truth_csv)
    assert tab.label_edit.text() == f"srmac {tiny_checkpoint.stem} QE=0"

    first = _run(qtbot, tab)
    assert tab.runs_table.rowCount() == 1
    assert tab.runs_table.item(0, 0).text() == "srmac tiny QE=0"
    assert 0.0 <= float(tab.runs_table.item(0, 1).text()) <= 1.0
    assert abs(float(tab.runs_table.item(0, 1).text()) - first.map) < 1e-4
    assert tab.runs_table.item(0, 2).text() == str(len(truth))
    assert tab.runs_table.horizontalHeaderItem(1).text() == "MAP@7"
    assert not tab.busy and tab.run_button.isEnabled()

    # per-query table: every truth query, AP ascending (worst first); chart has one bar per query
    table = tab.query_table
    assert table.rowCount() == len(truth)
    aps = [float(table.item(r, 1).text()) for r in range(table.rowCount())]
    assert aps == sorted(aps)
    assert table.item(0, 0).text() == first.worst_first()[0][0]
    assert tab.plot.bar_count() == len(truth)

    # a second run with query expansion gets its own row and its own default label
    tab.qe_spin.setValue(2)
    assert tab.label_edit.text() == "srmac tiny QE=2"
    second = _run(qtbot, tab)
    assert second.request.query_expansion == 2
    assert [tab.runs_table.item(r, 0).text() for r in range(2)] == ["srmac tiny QE=0", "srmac tiny QE=2"]
    assert tab.selected_run() is second
    # side by side: the per-query table shows the other run's AP for the same query
    assert [table.horizontalHeaderItem(c).toolTip() for c in (1, 2)] == ["AP (srmac tiny QE=2)", "AP (srmac tiny QE=0)"]
    query = table.item(0, 0).text()
    assert float(table.item(0, 2).text()) == round(first.per_query[query], 3)

    # the same label twice stays distinguishable
    third = _run(qtbot, tab)
    assert third.label == "srmac tiny QE=2 #2"

    # double-clicking the worst query opens its photo in the search tab
    tab.runs_table.selectRow(0)
    worst = first.worst_first()[0][0]
    assert table.item(0, 0).text() == worst
    tab.show()
    qtbot.waitExposed(tab)
    rect = table.visualItemRect(table.item(0, 0))
    with qtbot.waitSignal(tab.openQuery, timeout=5000) as opened:
        # a real double-click starts with a press; Qt 6's mouseDClick sends only the second click
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    path = Path(opened.args[0])
    assert opened.args[1] == list(first.truth.get(worst, []))  # for the Search tab to highlight
    assert path.is_file() and path.stem == worst and path.parent == demo_data.queries_dir

    assert settings.get("eval/queries") == str(demo_data.queries_dir)
    assert settings.get("eval/qe", 0, int) == 2


def test_export_writes_per_query_csv_and_remove_run(qtbot, client, settings, open_session, demo_data, tmp_path):
    tab = _tab(qtbot, client, settings, open_session, demo_data)
    tab.label_edit.clear()
    qtbot.keyClicks(tab.label_edit, "=cmd|' /C calc'!A0")  # a label a spreadsheet would run as a formula
    run = _run(qtbot, tab)
    assert run.label == "=cmd|' /C calc'!A0"


    out = tab.export_csv(tmp_path / "per_query.csv")
    with open(out, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["query", "ap", "relevant", "ranking", "query_image", "error", "run"]
    assert {row[-1] for row in rows[1:]} == {"'" + run.label}  # escaped: a spreadsheet shows it as text
    body = rows[1:]
    assert [row[0] for row in body] == [query for query, _ in run.worst_first()]
    assert all(0.0 <= float(row[1]) <= 1.0 for row in body)
    truth = read_truth(demo_data.truth_csv)
    assert all(row[2].split() == truth[row[0]] for row in body)
    assert all(len(row[3].split()) == 7 and Path(row[4]).is_file() for row in body)

    tab.remove_selected_run()
    assert tab.runs_table.rowCount() == 0 and tab.query_table.rowCount() == 0 and tab.plot.bar_count() == 0
    assert not tab.export_button.isEnabled()


def _many_queries(demo_data, folder: Path, copies: int) -> Path:
    """The demo queries `copies` times under new ids, with a truth file naming them all."""
    import shutil

    folder.mkdir()
    rows = []
    for query, relevant in read_truth(demo_data.truth_csv).items():
        for copy in range(copies):
            shutil.copy(demo_data.queries_dir / f"{query}.jpg", folder / f"{query}_{copy}.jpg")
            rows.append([f"{query}_{copy}", *relevant])
    truth = folder.parent / "many_truth.csv"
    with open(truth, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["query_id", "relevant"], *rows])
    return truth


def test_cancel_and_missing_inputs(qtbot, client, settings, open_session, demo_data, tmp_path):
    tab = EvalTab(client, settings)
    qtbot.addWidget(tab)
    assert not tab.run_button.isEnabled() and not tab.run()  # no index yet
    assert "Open an index" in tab.message.text()
    tab.on_session(open_session)
    (tmp_path / "empty").mkdir()
    tab.queries_edit.setText(str(tmp_path / "empty"))
    tab.truth_edit.setText(str(demo_data.truth_csv))
    assert not tab.run() and "no images" in tab.message.text()

    truth = _many_queries(demo_data, tmp_path / "queries", copies=20)
    tab.queries_edit.setText(str(tmp_path / "queries"))
    tab.truth_edit.setText(str(truth))
    ended = []
    client.jobEnded.connect(ended.append)
    assert tab.run()
    tab.cancel()  # at once: before or just after the worker picks the job up, it is cancelled
    assert tab.progress.label.text() == "Cancelling..."
    qtbot.waitUntil(lambda: not tab.busy, timeout=60000)
    assert [(job.operation, job.state) for job in ended] == [(Operation.EVALUATE, JobState.CANCELLED)]
    assert tab.run_button.isEnabled() and not tab.cancel_button.isEnabled()
    assert tab.runs_table.rowCount() == 0 and tab.progress.label.text() == "Cancelled"


def test_model_short_name():
    assert model_short_name("imagenet:resnet50") == "resnet50"
    assert model_short_name("/models/manet-best.pt") == "manet-best"
    assert model_short_name("") == "model"
