"""What a first real use of the app broke (issue 16): each test fails on the code before its fix."""

from __future__ import annotations

import pytest

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


# ---------------------------------------------------------------------------- result tiles (points 3, 5, 7)
def _clip_art(width, height, colour):
    """A JPEG like a clip-art catalog's: a flat shape on white, of any aspect ratio."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def _hits(count):
    from beauty_app.retrieval.index import SearchHit

    return [SearchHit(rank, f"item{rank:03d}", 1.0 - rank / 100, f"/cat/item{rank}.jpg",
                      f"Long clip-art product description number {rank} that needs eliding", "lipstick", rank)
            for rank in range(1, count + 1)]


def _dark_rows(image, rect):
    """Rows of `rect` in `image` (a QImage) holding text-dark pixels."""
    rows = set()
    for y in range(rect.top(), rect.bottom() + 1):
        for x in range(rect.left(), rect.right() + 1, 2):
            colour = image.pixelColor(x, y)
            if colour.lightness() < 110:
                rows.add(y)
                break
    return rows


@pytest.mark.parametrize("font_scale", [1.0, 1.4])  # 1.4: presenter mode's larger type
def test_every_result_tile_shows_its_three_caption_lines_at_the_same_height(qtbot, font_scale):
    from PySide6.QtGui import QFontMetrics

    from beauty_app.gui.widgets.results import ResultGrid

    grid = ResultGrid()
    qtbot.addWidget(grid)
    font = grid.font()
    font.setPointSizeF(font.pointSizeF() * font_scale)
    grid.setFont(font)
    grid.resize(1000, 900)
    grid.show()
    qtbot.waitExposed(grid)
    shapes = [(160, 40), (40, 160), (160, 160), (160, 90), (90, 160), (160, 20)]
    hits = _hits(12)
    thumbnails = {hit.id: _clip_art(*shapes[i % len(shapes)], (200, 30, 90)) for i, hit in enumerate(hits)}
    grid.show_hits(hits, thumbnails)
    image = grid.viewport().grab().toImage()
    line = QFontMetrics(grid.font()).lineSpacing()
    offsets = set()
    visible = [row for row in range(grid.count()) if grid.viewport().rect().contains(grid.visualItemRect(grid.item(row)))]
    assert len(visible) >= 8
    for row in visible:
        tile, caption = grid.visualItemRect(grid.item(row)), grid.caption_rect(row)
        offsets.add(caption.top() - tile.top())
        assert caption.bottom() <= tile.bottom()  # the whole caption fits in its tile
        for number in range(3):  # rank and score, id, description: each line has its text
            band = caption.adjusted(0, number * line, 0, 0)
            band.setHeight(line)
            assert _dark_rows(image, band), f"tile {row}: caption line {number + 1} is not drawn"
    assert len(offsets) == 1  # the same y in every tile, whatever the thumbnail's shape


def test_thumbnails_keep_their_pixels_on_a_2x_screen():
    from PySide6.QtGui import QPixmap

    from beauty_app.gui.widgets.results import THUMB, screen_pixmap

    source = QPixmap()
    source.loadFromData(_clip_art(320, 320, (20, 20, 200)))
    sharp = screen_pixmap(source, THUMB, 2.0)
    assert sharp.devicePixelRatio() == 2.0 and sharp.width() == 2 * THUMB  # device pixels
    assert sharp.deviceIndependentSize().width() == THUMB  # the same place on screen


# ---------------------------------------------------------------------------- the window on a fresh machine (1, 8)
def test_missing_x11_libraries_are_named_with_their_packages():
    from beauty_app.gui import system_libraries as system

    plugin = system.xcb_plugin()
    assert plugin is not None and "libxcb-icccm.so.4" in system.elf_needed(plugin)
    # A fresh Debian 12: everything loads but these two (Qt itself would blame xcb-cursor0).
    absent = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1"}
    missing = system.missing_libraries(plugin, loads=lambda soname: soname not in absent)
    assert sorted(missing) == sorted(absent)
    message = system.window_problem(environ={"DISPLAY": ":0"}, find_missing=lambda: missing)
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in message and "cursor" not in message
    assert message.count(".") >= 1 and "\n" not in message  # one sentence
    assert system.window_problem(environ={"QT_QPA_PLATFORM": "offscreen"}, find_missing=lambda: missing) is None
    assert system.window_problem(["-platform", "offscreen"], environ={}, find_missing=lambda: missing) is None
    assert system.missing_libraries(plugin) == []  # this machine has them all


#: What `python -m beauty_app.gui.system_libraries` named on a fresh `debootstrap --variant=minbase bookworm`
#: with only python3, python3-venv, make, git, xvfb and xauth installed (issue 16, measured in a chroot).
MISSING_ON_MINIMAL_DEBIAN_12 = ("libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-util1 libxcb-image0 "
                                "libxcb-keysyms1 libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-xkb1 "
                                "libglib2.0-0 libegl1 libfontconfig1 libdbus-1-3").split()


def test_the_readme_apt_line_installs_what_a_minimal_debian_lacked():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("sudo apt-get install ", 1)[1].split("```", 1)[0]
    listed = set(block.replace("\\", " ").split())
    assert set(MISSING_ON_MINIMAL_DEBIAN_12) <= listed, set(MISSING_ON_MINIMAL_DEBIAN_12) - listed


def test_every_library_the_plugin_needs_is_named_by_a_real_debian_package():
    from beauty_app.gui import system_libraries as system

    packages = {system.apt_package(soname) for soname in system.missing_libraries(loads=lambda soname: False)}
    assert set(MISSING_ON_MINIMAL_DEBIAN_12) <= packages
    assert "zlib1g" in packages and "libz1" not in packages  # Debian's zlib is not named after its soname


def test_gui_command_refuses_in_one_sentence_when_libraries_are_missing(monkeypatch, tmp_path):
    from beauty_app.cli.main import main
    from beauty_app.gui import system_libraries

    monkeypatch.setattr(system_libraries, "missing_libraries", lambda: ["libxcb-keysyms.so.1"])
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["gui"]) == 2


def test_qt_options_reach_qapplication_and_the_desktop_file_is_named():
    import os
    import subprocess
    import sys

    from beauty_app.cli.main import parse_args

    args = parse_args(["gui", "-platform", "minimal", "-style", "Fusion", "a.jpg", "b.jpg"])
    assert args.qt_args == ["-platform", "minimal", "-style", "Fusion"] and args.images == ["a.jpg", "b.jpg"]
    env = {key: value for key, value in os.environ.items() if key != "QT_QPA_PLATFORM"}
    code = ("from beauty_app.gui.app import make_application; app = make_application(['-platform', 'minimal', "
            "'-style', 'Fusion']); print(app.platformName(), app.style().name(), app.desktopFileName())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["minimal", "fusion", "beautylens"], out.stderr


def test_model_dialogs_accept_safetensors_and_training_writes_it(qtbot, client, settings, tmp_path):
    from beauty_app.gui.file_filters import checkpoint_filter
    from beauty_app.gui.train_tab import TrainTab
    from beauty_app.models.checkpoint import MODEL_SUFFIX

    assert "*.safetensors" in checkpoint_filter() and "*.pt" in checkpoint_filter()
    tab = TrainTab(client, settings)
    qtbot.addWidget(tab)
    tab.data_edit.setText(str(tmp_path))
    assert tab.checkpoint_path().endswith(MODEL_SUFFIX)


# ---------------------------------------------------------------------------- the main window (4, 5, 7)
def _window(qtbot, settings):
    from beauty_app.gui.main_window import MainWindow

    window = MainWindow(settings, device="cpu")
    qtbot.addWidget(window)
    return window


def test_a_failed_index_is_not_remembered_and_the_status_bar_says_so(qtbot, settings, tmp_path, monkeypatch):
    from beauty_app.gui import main_window

    monkeypatch.setattr(main_window.QMessageBox, "warning", lambda *args: None)
    window = _window(qtbot, settings)
    settings.set("last/index", "/the/good/one")
    broken = tmp_path / "not-an-index"
    broken.mkdir()
    with qtbot.waitSignal(window.client.jobEnded, timeout=60000):
        window.open_index(str(broken))
    assert settings.get("last/index") == "/the/good/one"
    message = window.statusBar().currentMessage()
    assert "Opening" not in message and "Could not open" in message
    window.close()


def test_several_photos_on_the_command_line_wait_in_the_strip(qtbot, settings, demo_data):
    from beauty_app.gui.app import create_window

    photos = [str(path) for path in _queries(demo_data)[:3]]
    window = create_window(queries=photos, settings=settings, device="cpu")
    qtbot.addWidget(window)
    tab = window.search_tab
    assert tab.source == photos[0] and tab.samples.count() == 3
    assert [tab.samples.item(i).data(256) for i in range(3)] == photos  # Qt.UserRole
    window.close()


def test_presenter_strip_without_the_demo_holds_recent_queries_and_steps(qtbot, settings, built_index, demo_data):
    window = _window(qtbot, settings)
    window.show()
    window.open_index(str(built_index))
    qtbot.waitUntil(lambda: window.search_tab.session.model != "", timeout=60000)
    tab = window.search_tab
    photos = [str(path) for path in _queries(demo_data)[:2]]
    for photo in photos:
        with qtbot.waitSignal(tab.searchDone, timeout=60000):
            tab.search_path(photo)
    assert tab.samples.count() == 0
    window.presenter_action.setChecked(True)
    assert tab.samples.isVisible() and tab.samples.count() == 2  # most recent first
    with qtbot.waitSignal(tab.searchDone, timeout=60000) as blocker:
        window.next_photo_action.trigger()
    assert blocker.args[0].request.source == tab.samples.item(0).data(256)
    window.presenter_action.setChecked(False)
    window.close()


def test_a_photo_without_an_index_shows_its_maps_and_says_what_search_needs(qtbot, client, settings, demo_data):
    tab = SearchTab(client, settings)
    qtbot.addWidget(tab)
    tab.search_path(str(_queries(demo_data)[0]))
    assert tab.query_view.has_image
    qtbot.waitUntil(lambda: tab.query_view._saliency is not None, timeout=60000)
    assert "Open a catalog index to search" in tab.status_label.text()
    assert tab.results.count() == 0


def test_evaluation_to_search_highlights_the_known_correct_items(qtbot, settings, built_index, demo_data):
    from beauty_app.challenge_files import read_truth

    window = _window(qtbot, settings)
    window.open_index(str(built_index))
    qtbot.waitUntil(lambda: window.search_tab.session.model != "", timeout=60000)
    tab = window.search_tab
    tab.k_spin.setValue(100)  # the whole small catalog, so every correct item is among the results
    query = _queries(demo_data)[0]
    relevant = read_truth(demo_data.truth_csv)[query.stem]
    with qtbot.waitSignal(tab.searchDone, timeout=60000):
        window.eval_tab.openQuery.emit(str(query), relevant)
    shown = {tab.results.item(row).data(256).id for row in tab.results.relevant_rows()}
    assert shown == set(relevant) and "known correct" in tab.status_label.text()
    window.close()


def test_batch_search_puts_its_photos_and_best_matches_in_the_strip(qtbot, client, settings, open_session,
                                                                    demo_data, tmp_path):
    tab = _search_tab(qtbot, client, settings, open_session)
    with qtbot.waitSignal(client.jobEnded, timeout=60000):
        tab.batch_search(str(demo_data.queries_dir), str(tmp_path / "ranking.csv"))
    assert tab.samples.count() == len(_queries(demo_data)) and tab.samples.isVisibleTo(tab)
    assert "→" in tab.samples.item(0).text()
    with qtbot.waitSignal(tab.searchDone, timeout=60000):
        assert tab.step_samples(1)
    assert tab.results.count() > 0


def test_help_shows_the_log_folder_and_the_shortcuts(qtbot, settings, monkeypatch):
    from beauty_app.gui import main_window

    opened = []
    monkeypatch.setattr(main_window.QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    window = _window(qtbot, settings)
    window.log_folder_action.trigger()
    folder = str(main_window.log_dir())
    assert opened and opened[0].toLocalFile() == folder and folder in window.statusBar().currentMessage()
    keys = dict(window.shortcut_list())
    for expected in ("F11", "Ctrl+Z", "PgDown", "G / W", "S / T / B"):
        assert expected in keys, expected
    window.show_shortcuts()
    assert window._shortcuts_box.isVisible() and "Ctrl+Z" in window._shortcuts_box.text()
    window._shortcuts_box.close()
    window.close()


def test_messages_name_buttons_not_command_lines():
    from beauty_app.gui.wording import in_app_words

    for message in ("beauty-app: training interrupted; run the same command with --resume to continue",
                    "The index in /x is unfinished; run `catalog build --resume` to finish it.",
                    "/x already holds an index; use --resume to finish it, `catalog add` to update it, or else.",
                    "The index database in /x is damaged; rebuild it with `catalog build`."):
        reworded = in_app_words(message)
        assert "--" not in reworded and "`" not in reworded and "beauty-app" not in reworded, reworded
    assert "Resume" in in_app_words("training interrupted; run the same command with --resume to continue")


def test_training_plots_share_one_left_axis_width_and_one_row_of_x_numbers(qtbot):
    from beauty_app.gui.widgets.train_plots import TrainingPlots

    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(500, 420)
    plots.show()
    for step in range(1, 50):
        plots.add_step(step, 2.0 / step, 1.0 / step, 0.5, 0.25, 1e-4 * step)
    plots.add_validation(49, 0.5)
    plots.flush()
    widths = {plot.getAxis("left").width() for plot in plots.plots()}
    assert len(widths) == 1
    shown = [plot.getAxis("bottom").style["showValues"] for plot in plots.plots()]
    assert shown == [False, False, True]


def test_catalog_browser_fits_long_ids_and_a_double_click_searches_with_the_item(qtbot, client, settings,
                                                                               open_session):
    from PySide6.QtCore import Qt

    from beauty_app.gui.catalog_tab import CatalogTab

    tab = CatalogTab(client, settings)
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.show()
    tab.on_session(open_session)
    model = tab.items_model
    qtbot.waitUntil(lambda: bool(model.total) and not model.loading, timeout=30000)
    longest = max(tab.items_view.fontMetrics().horizontalAdvance(model.row_data(r)["id"])
                  for r in range(model.rowCount()))
    tab._fit_id_column([{"id": "sephora-2019-lipstick-0001234"}])
    long_id = tab.items_view.fontMetrics().horizontalAdvance("sephora-2019-lipstick-0001234")
    assert tab.items_view.columnWidth(0) >= model.thumbnail_size().width() + max(longest, long_id)
    rect = tab.items_view.visualRect(model.index(0, 1))
    with qtbot.waitSignal(tab.openItem, timeout=5000) as opened:
        qtbot.mouseClick(tab.items_view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(tab.items_view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened.args[0] == model.row_data(0)["path"]


# ---------------------------------------------------------------------------- add to index from the GUI (9)
def test_add_to_index_from_the_catalog_tab_equals_a_fresh_build(qtbot, client, settings, tiny_checkpoint,
                                                               demo_data, tmp_path):
    import numpy as np

    from beauty_app.gui.catalog_tab import CatalogTab
    from beauty_app.gui.worker import OpenRequest
    from beauty_app.retrieval.index import CatalogIndex
    from beauty_app.retrieval.session import build_catalog, new_extractor

    def multi_scale():
        # The worker's defaults otherwise (batch size, autocast), so the only difference could be the settings.
        return new_extractor(str(tiny_checkpoint), "srmac", scales=(1.0, 0.707), input_size=128)

    files = sorted(demo_data.catalog_csv.parent.glob("catalog/*.jpg"))[:7]
    folder = tmp_path / "catalog"
    folder.mkdir()
    for path in files[:4]:
        (folder / path.name).write_bytes(path.read_bytes())
    build_catalog(folder, tmp_path / "idx", multi_scale())
    for path in files[4:]:
        (folder / path.name).write_bytes(path.read_bytes())

    job = client.submit(OpenRequest(str(tmp_path / "idx")))
    with qtbot.waitSignal(job.finished, timeout=60000) as opened:
        pass
    tab = CatalogTab(client, settings)
    qtbot.addWidget(tab)
    tab.on_session(opened.args[0])
    tab.catalog_edit.setText(str(folder))
    assert tab.add_button.isEnabled()
    with qtbot.waitSignal(tab.buildDone, timeout=120000) as done:
        tab.add_button.click()
    assert done.args[0].indexed == 3

    build_catalog(folder, tmp_path / "fresh", multi_scale())
    added = [path.stem for path in files[4:]]
    with CatalogIndex.open(tmp_path / "idx") as grown, CatalogIndex.open(tmp_path / "fresh") as fresh:
        np.testing.assert_allclose(grown.raw_vectors(added), fresh.raw_vectors(added), atol=1e-5)
