"""Training tab: a real `beauty-app train` child process on a tiny mined set; cancel, resume, mining."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from beauty_app.gui.train_tab import TrainTab, format_duration
from beauty_app.gui.widgets.train_process import LineBuffer

PROCESS_TIMEOUT_MS = 120000


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    from beauty_app.demo.products import generate_demo

    return generate_demo(tmp_path_factory.mktemp("train_demo"), n_products=20, image_size=128)


@pytest.fixture(scope="module")
def mined(tmp_path_factory, tiny_demo) -> Path:
    from beauty_app.training.mining import mine_dataset

    out = tmp_path_factory.mktemp("mined") / "set"
    mine_dataset(tiny_demo.catalog_csv, out, min_images=2)
    return out


@pytest.fixture
def tab(qtbot, client, settings):
    widget = TrainTab(client, settings)
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()  # never leave a child process behind, whatever the test did


def configure_tiny(tab: TrainTab, data: Path, out: Path, iterations: int) -> None:
    tab.set_data_folder(data)
    tab.out_edit.setText(str(out))
    form = tab.form
    form.set_choice(form.backbone, "tiny")
    form.iterations.setValue(iterations)
    form.stage1_iterations.setValue(2)
    form.batch_size.setValue(4)
    form.input_size.setValue(64)
    form.workers.setValue(0)
    form.device.setCurrentText("cpu")


def test_line_buffer_reassembles_lines_split_across_chunks():
    buffer = LineBuffer()
    assert buffer.feed(b'{"event": "st') == []
    assert buffer.feed(b'ep"}\n{"a"') == ['{"event": "step"}']
    assert buffer.feed(b": 1}\r") == []  # may be half of \r\n
    assert buffer.feed(b"\nlast") == ['{"a": 1}']
    assert buffer.flush() == ["last"]
    assert format_duration(5) == "5 s" and format_duration(125) == "2 min 05 s"
    assert format_duration(3720) == "1 h 02 min" and format_duration(None) == "-"


def test_form_is_prefilled_with_the_default_recipe(tab):
    from beauty_app.training.config import DEFAULT_RECIPE, TrainConfig, config_for_recipe

    config = config_for_recipe(DEFAULT_RECIPE)
    args = tab.form.cli_args()
    # The paper's hyperparameters; the instance recipe's schedule (twice the paper's 500 iterations).
    assert tab.form.iterations.value() == config.iterations == 1000 != TrainConfig().iterations
    assert args[args.index("--recipe") + 1] == DEFAULT_RECIPE == "instance"
    assert tab.form.lr.value() == pytest.approx(config.lr)
    assert tab.form.final_lr.value() == pytest.approx(config.final_lr)
    assert tab.form.lr.text() == "0.01" and tab.form.final_lr.text() == "1e-05"
    assert args[args.index("--backbone") + 1] == config.backbone
    assert args[args.index("--weight-decay") + 1] == repr(config.weight_decay)
    assert not tab.resume_button.isEnabled() and not tab.use_button.isEnabled()


def test_training_runs_plots_live_and_offers_the_checkpoint(qtbot, tab, mined, tmp_path):
    out = tmp_path / "run.pt"
    configure_tiny(tab, mined, out, iterations=3)
    steps = []
    tab.process.eventReceived.connect(lambda event: steps.append(event) if event["event"] == "step" else None)
    tab.start()
    assert tab.process.is_running()
    assert tab.cancel_button.isEnabled() and not tab.start_button.isEnabled()
    assert not tab.settings_panel.isEnabled()  # the settings are locked while training
    qtbot.waitUntil(lambda: tab.mode == "idle", timeout=PROCESS_TIMEOUT_MS)

    assert "failed" not in tab.status_label.text().lower(), tab.log_view.toPlainText()
    assert [(e["stage"], e["iteration"]) for e in steps] == [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3)]
    counts = tab.plots.point_counts()
    assert counts["total"] == counts["cls"] == counts["lr"] == 5
    assert counts["saliency"] == 5 and counts["text"] == 3  # the text loss only counts in stage 2
    assert counts["validation"] >= 1
    xs, ys = tab.plots.loss_curves["total"].getData()
    assert list(xs) == [1, 2, 3, 4, 5] and all(y > 0 for y in ys)
    assert len(tab.plots.val_curve.getData()[0]) == counts["validation"]
    assert tab.progress_bar.value() == tab.progress_bar.maximum() == 3
    assert "validation accuracy" in tab.log_view.toPlainText()

    assert tab.use_button.isEnabled() and tab.start_button.isEnabled()
    with qtbot.waitSignal(tab.useCheckpoint, timeout=1000) as blocker:
        qtbot.mouseClick(tab.use_button, Qt.MouseButton.LeftButton)
    assert Path(blocker.args[0]) == out and out.is_file()
    assert tab.settings.get("train/data") == str(mined)


def test_cancel_saves_a_resumable_state_and_resume_finishes(qtbot, tab, mined, tmp_path):
    from beauty_app.training.config import resume_path_for

    out = tmp_path / "long.pt"
    configure_tiny(tab, mined, out, iterations=500)
    tab.form.checkpoint_every.setValue(0)  # the only saved state is the one cancelling writes
    with qtbot.waitSignal(tab.process.eventReceived, timeout=PROCESS_TIMEOUT_MS,
                          check_params_cb=lambda event: event["event"] == "step"):
        tab.start()
    tab.cancel()
    assert not tab.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: tab.mode == "idle", timeout=60000)

    assert not tab.process.is_running()
    assert resume_path_for(out).is_file()
    assert not out.exists()
    assert tab.resume_button.isEnabled() and tab.start_button.isEnabled()
    assert "resumable state" in tab.status_label.text()
    assert tab.settings_panel.isEnabled()
    points_before = tab.plots.point_counts()["total"]
    assert points_before >= 1

    # Still usable: shorten the run and resume it to the end; the earlier points stay on the plot.
    tab.form.iterations.setValue(2)
    qtbot.mouseClick(tab.resume_button, Qt.MouseButton.LeftButton)
    assert "--resume" in tab.log_view.toPlainText()
    qtbot.waitUntil(lambda: tab.mode == "idle", timeout=PROCESS_TIMEOUT_MS)
    assert out.is_file(), tab.log_view.toPlainText()
    assert not resume_path_for(out).exists()
    assert tab.use_button.isEnabled() and not tab.resume_button.isEnabled()
    xs, _ = tab.plots.loss_curves["total"].getData()
    assert list(xs) == sorted(xs) and len(xs) >= points_before + 2


def test_failure_shows_the_last_error_line(qtbot, tab, tmp_path):
    empty = tmp_path / "not_mined"
    empty.mkdir()
    configure_tiny(tab, empty, tmp_path / "x.pt", iterations=1)
    tab.start()
    qtbot.waitUntil(lambda: tab.mode == "idle", timeout=PROCESS_TIMEOUT_MS)
    status = tab.status_label.text()
    assert status.startswith("Training failed:") and "is not a mined dataset" in status
    assert "beauty-app" not in status and "Mine in the Training tab" in status  # the app's words, not the CLI's
    assert status.split("Training failed: ", 1)[1] in tab.log_view.toPlainText()
    assert tab.start_button.isEnabled() and not tab.use_button.isEnabled()


def test_mining_from_a_catalog_fills_the_data_folder(qtbot, tab, tiny_demo, tmp_path):
    out = tmp_path / "mined_here"
    tab.min_images.setValue(2)
    tab.start_mining(str(tiny_demo.catalog_csv), str(out))
    assert tab.mode == "mine" and not tab.start_button.isEnabled()
    qtbot.waitUntil(lambda: tab.mode == "idle", timeout=PROCESS_TIMEOUT_MS)
    assert tab.data_edit.text() == str(out)
    assert (out / "train.csv").is_file() and (out / "classes.txt").is_file()
    assert "Mined" in tab.log_view.toPlainText()  # the command's summary is shown
    assert tab.checkpoint_path() == str(out / "manet.safetensors")


def test_shutdown_stops_a_running_training_and_it_saves_a_resumable_state(qtbot, tab, mined, tmp_path):
    from beauty_app.training.config import resume_path_for

    out = tmp_path / "closing.pt"
    configure_tiny(tab, mined, out, iterations=500)
    with qtbot.waitSignal(tab.process.eventReceived, timeout=PROCESS_TIMEOUT_MS,
                          check_params_cb=lambda event: event["event"] == "step"):
        tab.start()
    # What the main window calls when it closes; the grace is long here so that a busy machine cannot
    # turn the polite stop into a kill (the window's default is 5 s).
    tab.shutdown(grace_ms=120000)
    assert not tab.process.is_running()
    assert resume_path_for(out).is_file()  # SIGTERM still saved the state before exiting


def test_training_runs_in_a_child_process_not_in_the_window(qtbot, tab, mined, tmp_path, monkeypatch):
    import os

    import beauty_app.training.trainer as trainer

    def not_here(*_args, **_kwargs):
        raise AssertionError("training ran inside the GUI process")

    monkeypatch.setattr(trainer, "train", not_here)
    out = tmp_path / "child.pt"
    configure_tiny(tab, mined, out, iterations=2)
    with qtbot.waitSignal(tab.process.eventReceived, timeout=PROCESS_TIMEOUT_MS,
                          check_params_cb=lambda event: event["event"] == "step"):
        tab.start()
    assert tab.process._process.processId() not in (0, os.getpid())
    qtbot.waitUntil(lambda: tab.mode == "idle", timeout=PROCESS_TIMEOUT_MS)
    assert out.is_file(), tab.log_view.toPlainText()
