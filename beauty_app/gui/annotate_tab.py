# Kept in one module (about 680 lines): one tab's widgets and handlers (stepping, marking, undo, export);
# its reusable parts are already apart (widgets/annotate_marks.py, widgets/image_view.py).
"""The Annotate tab: step through a folder of photos with their saliency and text maps and judge them.

Marks go to ``<folder>/mask_marks.csv`` (``id,map,mark``), which training reads with
``--mask-marks``: maps marked wrong are left out of the mask supervision. The maps come from the
worker (an ``AnalyzeRequest`` job per photo), one job in flight at a time, and
the next photo is fetched ahead so stepping with the keyboard stays quick.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QColor, QIcon, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..errors import UserError
from ..imaging import IMAGE_EXTENSIONS
from .settings import Settings
from .widgets.annotate_marks import MAPS, MARKS_FILE, MarkStore, export_maps
from .widgets.image_view import HeatmapView
from .worker import AnalysisOutcome, AnalyzeRequest, EngineClient, Job, SessionInfo

log = logging.getLogger(__name__)

CACHE_SIZE = 24
PREVIEW_MAX_SIDE = 1024
MARK_COLOURS = {"good": QColor(46, 160, 67), "wrong": QColor(211, 47, 47), None: QColor(185, 185, 185)}
MAP_TITLES = {"saliency": "Saliency", "text": "Text"}

NEXT_KEYS = (Qt.Key.Key_Right, Qt.Key.Key_J)
PREVIOUS_KEYS = (Qt.Key.Key_Left, Qt.Key.Key_K)


@dataclass
class _Maps:
    image: np.ndarray  # (H,W,3) uint8 RGB, the image the maps are over
    saliency: np.ndarray | None
    text: np.ndarray | None


def list_photos(folder: str | Path) -> list[Path]:
    """The image files directly in `folder` (not its subfolders, where exports go), sorted by name."""
    folder = Path(folder)
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name.lower())
    except OSError as exc:
        raise UserError(f"The folder {folder} cannot be read ({exc.strerror or exc}).") from None
    return [p for p in entries if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]


def mark_icon(saliency: str | None, text: str | None) -> QIcon:
    """A small square: left half the saliency mark, right half the text mark (grey = not marked)."""
    pixmap = QPixmap(14, 14)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.fillRect(0, 0, 7, 14, MARK_COLOURS[saliency])
    painter.fillRect(7, 0, 7, 14, MARK_COLOURS[text])
    painter.setPen(QColor(90, 90, 90))
    painter.drawRect(0, 0, 13, 13)
    painter.end()
    return QIcon(pixmap)


class AnnotateTab(QWidget):
    """Photo, saliency overlay and text overlay of each image; keyboard marking and raw-map export.

    Keys: Right/J next, Left/K previous, G good, W wrong (for the map chosen with S, T, or B for both),
    Delete clears those marks, Ctrl+Z undoes the last change, E exports the raw maps of the current image.
    """

    #: (keys, what they do): the help line under the maps and Help > Keyboard shortcuts.
    SHORTCUTS = (("→ / J", "Annotate: next photo"), ("← / K", "Annotate: previous photo"),
                 ("G / W", "Annotate: mark the chosen map good / wrong"),
                 ("S / T / B", "Annotate: choose the saliency map / the text map / both"),
                 ("Del", "Annotate: clear the chosen map's mark"), ("Ctrl+Z", "Annotate: undo the last mark"),
                 ("E", "Annotate: export the raw maps"))

    def __init__(self, client: EngineClient, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.client = client
        self.settings = settings
        self.folder: Path | None = None
        self.photos: list[Path] = []
        self.index = -1
        self.marks: MarkStore | None = None
        self.session_open = False
        self.model_name = ""
        self._cache: OrderedDict[str, _Maps] = OrderedDict()
        self._failed: dict[str, str] = {}
        self._pending: str | None = None  # the photo whose maps _job computes
        self._job: Job | None = None
        self._icons: dict[tuple, QIcon] = {}
        self._undo: list[tuple[int, str, list[tuple[str, str | None]]]] = []  # (row, item, [(map, previous)])

        self._build()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._update_hint()
        self._update_progress()
        self._update_mark_widgets()

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder of photos to annotate")
        self.folder_edit.returnPressed.connect(lambda: self.open_folder(self.folder_edit.text()))
        folder_button = QPushButton("Open folder...")
        folder_button.setToolTip("Choose a folder of photos; its marks file is loaded if it exists.")
        folder_button.clicked.connect(self._browse_folder)
        self.export_edit = QLineEdit()
        self.export_edit.setPlaceholderText("<folder>/maps")
        self.export_edit.setToolTip("Where E writes the raw maps (8-bit PNG and float32 .npy).")
        export_browse = QToolButton()
        export_browse.setText("...")
        export_browse.setToolTip("Choose the export folder")
        export_browse.clicked.connect(self._browse_export)
        top = QHBoxLayout()
        top.addWidget(QLabel("Photos"))
        top.addWidget(self.folder_edit, 3)
        top.addWidget(folder_button)
        top.addSpacing(12)
        top.addWidget(QLabel("Export to"))
        top.addWidget(self.export_edit, 2)
        top.addWidget(export_browse)

        self.hint_label = QLabel()
        self.hint_label.setWordWrap(True)
        self.marks_label = QLabel()
        self.marks_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.marks_label.setToolTip("Give this file to the Training tab (Mask marks): maps marked wrong are "
                                    "left out of the mask supervision.")

        self.list_widget = QListWidget()
        self.list_widget.setMinimumWidth(180)
        self.list_widget.setUniformItemSizes(True)
        self.list_widget.currentRowChanged.connect(self._on_row_changed)
        self.list_widget.installEventFilter(self)

        self.photo_view = HeatmapView(placeholder="Open a folder of photos")
        self.photo_view.set_view(which="none")
        self.saliency_view = HeatmapView(placeholder="Saliency map")
        self.saliency_view.set_view(which="saliency")
        self.text_view = HeatmapView(placeholder="Text map")
        self.text_view.set_view(which="text")
        self.views = {"saliency": self.saliency_view, "text": self.text_view}
        for view in (self.photo_view, self.saliency_view, self.text_view):
            # A click on a picture gives the keyboard to this tab (the view ignores the keys itself).
            view.setFocusPolicy(Qt.FocusPolicy.ClickFocus)

        grid = QGridLayout()
        self.map_state: dict[str, QLabel] = {}
        self.mark_buttons: dict[tuple[str, str], QPushButton] = {}
        self.target_buttons: dict[str, QCheckBox] = {}
        photo_title = QLabel("<b>Photo</b>")
        grid.addWidget(photo_title, 0, 0)
        grid.addWidget(self.photo_view, 1, 0)
        self.photo_caption = QLabel("")
        self.photo_caption.setWordWrap(True)
        grid.addWidget(self.photo_caption, 2, 0)
        for column, which in enumerate(MAPS, start=1):
            title_row = QHBoxLayout()
            target = QCheckBox(f"G/W ({which[0].upper()})")
            # One map at a time by default, so a G judges the map the eye is on.
            target.setChecked(which == MAPS[0])
            target.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            target.setToolTip(f"Whether the keys G and W mark the {which} map ({which[0].upper()} chooses it, "
                              "B both).")
            self.target_buttons[which] = target
            state = QLabel("")
            self.map_state[which] = state
            title_row.addWidget(QLabel(f"<b>{MAP_TITLES[which]} map</b>"))
            title_row.addWidget(state)
            title_row.addStretch(1)
            title_row.addWidget(target)
            title = QWidget()
            title.setLayout(title_row)
            title_row.setContentsMargins(0, 0, 0, 0)
            # Ignored: a long mark label must not make this column wider than the others.
            title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            grid.addWidget(title, 0, column)
            grid.addWidget(self.views[which], 1, column)
            buttons = QHBoxLayout()
            for mark, label in (("good", "Good"), ("wrong", "Wrong")):
                button = QPushButton(f"{MAP_TITLES[which]}: {label.lower()}")
                button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
                button.setToolTip(f"Mark this image's {which} map {mark}.")
                button.clicked.connect(lambda _checked=False, w=which, m=mark: self.mark(m, [w]))
                self.mark_buttons[(which, mark)] = button
                buttons.addWidget(button)
            grid.addLayout(buttons, 2, column)
        for column in range(3):
            grid.setColumnStretch(column, 1)
        grid.setRowStretch(1, 1)

        self.previous_button = QPushButton("< Previous (K)")
        self.previous_button.clicked.connect(self.previous_image)
        self.next_button = QPushButton("Next (J) >")
        self.next_button.clicked.connect(self.next_image)
        self.export_button = QPushButton("Export maps (E)")
        self.export_button.setToolTip("Write the raw maps of this image as 8-bit PNG and float32 .npy.")
        self.export_button.clicked.connect(self.export_current)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(55)
        self.opacity.setMaximumWidth(160)
        self.opacity.setToolTip("Opacity of the heatmaps over the photo.")
        self.opacity.valueChanged.connect(self._on_opacity)
        self._on_opacity(self.opacity.value())
        for widget in (self.previous_button, self.next_button, self.export_button, self.opacity):
            widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.progress_label = QLabel()
        # Shown while the model computes the current photo's maps (a second or more on a CPU).
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(120)
        self.busy.setMaximumHeight(14)
        self.busy.setFormat("computing")
        self.busy.setToolTip("Computing the maps of this photo")
        self.busy.setVisible(False)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        bottom = QHBoxLayout()
        bottom.addWidget(self.previous_button)
        bottom.addWidget(self.next_button)
        bottom.addWidget(self.progress_label)
        bottom.addWidget(self.busy)
        bottom.addStretch(1)
        bottom.addWidget(QLabel("Overlay"))
        bottom.addWidget(self.opacity)
        bottom.addWidget(self.export_button)

        keys = QLabel("Keys: <b>→/J</b> next, <b>←/K</b> previous, <b>G</b> good, <b>W</b> wrong, "
                      "<b>S</b>/<b>T</b> choose saliency/text, <b>B</b> both, <b>Del</b> clear, "
                      "<b>Ctrl+Z</b> undo, <b>E</b> export")
        keys.setWordWrap(True)

        maps_panel = QWidget()
        maps_layout = QVBoxLayout(maps_panel)
        maps_layout.setContentsMargins(0, 0, 0, 0)
        maps_layout.addLayout(grid, 1)
        maps_layout.addLayout(bottom)
        maps_layout.addWidget(self.status_label)
        maps_layout.addWidget(keys)

        list_box = QGroupBox("Images")
        list_layout = QVBoxLayout(list_box)
        list_layout.addWidget(self.list_widget)
        list_layout.addWidget(self.marks_label)
        self.marks_label.setWordWrap(True)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(list_box)
        splitter.addWidget(maps_panel)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 1000])

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.hint_label)
        layout.addWidget(splitter, 1)

        last = self.settings.get("annotate/folder", "")
        if last:
            self.folder_edit.setText(last)

    # ------------------------------------------------------------------ public API
    def on_session(self, info: SessionInfo) -> None:
        """A model is open: compute the maps (again, since the model may have changed)."""
        self.session_open = True
        self.model_name = info.model
        self._cache.clear()
        self._failed.clear()
        self._update_hint()
        self._show_current()
        self._request_more()

    def shutdown(self) -> None:
        """Stop this tab's work (the window is closing): ask for no more maps, forget the one awaited."""
        self.session_open = False
        self._pending = None
        if self._job is not None:
            self._job.cancel()

    def open_folder(self, folder: str | Path) -> None:
        """Show the photos of `folder` and load its marks file (if any)."""
        folder = Path(str(folder).strip()).expanduser()
        if not folder.is_dir():
            self._set_status(f"{folder} is not a folder.", error=True)
            return
        try:
            photos = list_photos(folder)
            marks = MarkStore(folder / MARKS_FILE)
            loaded = marks.load()
        except UserError as exc:
            self._set_status(str(exc), error=True)
            return
        self.folder, self.photos, self.marks = folder, photos, marks
        self.folder_edit.setText(str(folder))
        self.settings.set("annotate/folder", str(folder))
        if not self.export_edit.isModified() or not self.export_edit.text().strip():
            self.export_edit.setText(str(folder / "maps"))
        self._cache.clear()
        self._failed.clear()
        self.marks_label.setText(f"Marks: {marks.path}")
        self.list_widget.blockSignals(True)
        self.list_widget.clear()
        for path in photos:
            item = QListWidgetItem(path.name)
            self.list_widget.addItem(item)
            self._decorate(self.list_widget.count() - 1)
        self.list_widget.blockSignals(False)
        self.index = -1
        if photos:
            self.go_to(0)
            self.list_widget.setFocus()
            self._set_status(f"{len(photos)} photos" + (f"; {loaded} marks loaded from {MARKS_FILE}" if loaded else ""))
        else:
            self._set_status(f"No photos in {folder}.", error=True)
            self._show_current()
        self._update_progress()

    def current_path(self) -> Path | None:
        return self.photos[self.index] if 0 <= self.index < len(self.photos) else None

    def current_id(self) -> str | None:
        path = self.current_path()
        return None if path is None else path.stem

    def current_maps(self) -> _Maps | None:
        """The analysis of the current photo, once the worker has delivered it."""
        path = self.current_path()
        return None if path is None else self._cache.get(str(path))

    def go_to(self, index: int) -> None:
        """Show photo number `index` (clamped)."""
        if not self.photos:
            return
        index = max(0, min(index, len(self.photos) - 1))
        if index != self.list_widget.currentRow():
            self.list_widget.setCurrentRow(index)  # calls back into _on_row_changed
            return
        self.index = index
        self._set_status("")
        self._show_current()
        self._request_more()
        self._update_progress()

    def next_image(self) -> None:
        self.go_to(self.index + 1)

    def previous_image(self) -> None:
        self.go_to(self.index - 1)

    def targets(self) -> list[str]:
        """The maps G and W apply to (chosen with S, T or B)."""
        return [which for which in MAPS if self.target_buttons[which].isChecked()]

    def choose_targets(self, *maps: str) -> None:
        """Make G and W apply to exactly `maps` (S: saliency, T: text, B: both)."""
        for which, button in self.target_buttons.items():
            button.setChecked(which in maps)

    def shortcut_list(self) -> list[tuple[str, str]]:
        return list(self.SHORTCUTS)

    def undo(self) -> bool:
        """Put back the marks the last change replaced (and show that photo); False when nothing is left."""
        if not self._undo or self.marks is None:
            return False
        row, item, previous = self._undo.pop()
        try:
            for which, mark in previous:
                self.marks.set(item, which, mark)
        except UserError as exc:
            self._set_status(str(exc), error=True)
            return False
        if 0 <= row < len(self.photos) and self.photos[row].stem == item:
            self._decorate(row)
            self.go_to(row)
        self._update_mark_widgets()
        self._update_progress()
        self._set_status(f"{item}: undone")
        return True

    def mark(self, mark: str | None, maps: list[str] | None = None) -> None:
        """Mark the current photo's maps (`maps`, or the chosen targets) good/wrong; None clears."""
        item = self.current_id()
        if item is None or self.marks is None:
            return
        current = self.current_maps()
        if current is None:
            self._set_status("Wait for the maps of this photo (or open a catalog index first): a mark judges the map you see.", error=True)
            return
        maps = self.targets() if maps is None else maps
        present = [which for which in maps if getattr(current, which) is not None]
        if not present:
            self._set_status("Choose a map to mark (S: saliency, T: text, B: both); this model may lack it.",
                             error=True)
            return
        previous = [(which, self.marks.get(item, which)) for which in present]
        try:
            for which in present:
                self.marks.set(item, which, mark)
        except UserError as exc:
            self._set_status(str(exc), error=True)
            return
        if any(old != mark for _, old in previous):
            self._undo.append((self.index, item, previous))
        verb = "cleared" if mark is None else f"marked {mark}"
        self._set_status(f"{item}: {' and '.join(present)} {verb}")
        self._decorate(self.index)
        self._update_mark_widgets()
        self._update_progress()

    def export_current(self) -> list[Path]:
        """Write the current photo's raw maps (PNG 8-bit and .npy float32) into the export folder."""
        current, item = self.current_maps(), self.current_id()
        if current is None or item is None:
            self._set_status("Nothing to export yet: the maps of this photo are not computed.", error=True)
            return []
        folder = self.export_folder()
        try:
            written = export_maps(folder, item, {"saliency": current.saliency, "text": current.text})
        except UserError as exc:
            self._set_status(str(exc), error=True)
            return []
        if not written:
            self._set_status("This model has neither a saliency nor a text branch: nothing to export.", error=True)
        else:
            self._set_status(f"Exported {len(written)} files of {item} to {folder}")
        return written

    def export_folder(self) -> Path:
        text = self.export_edit.text().strip()
        if text:
            return Path(text).expanduser()
        return (self.folder or Path.cwd()) / "maps"

    def marked_count(self) -> int:
        if self.marks is None:
            return 0
        return self.marks.count_marked(p.stem for p in self.photos)

    # ------------------------------------------------------------------ keyboard
    def handle_key(self, key: int) -> bool:
        """Run the action of `key`; returns whether it was one of ours."""
        if key in NEXT_KEYS:
            self.next_image()
        elif key in PREVIOUS_KEYS:
            self.previous_image()
        elif key == Qt.Key.Key_G:
            self.mark("good")
        elif key == Qt.Key.Key_W:
            self.mark("wrong")
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.mark(None)
        elif key == Qt.Key.Key_S:
            self.choose_targets("saliency")
        elif key == Qt.Key.Key_T:
            self.choose_targets("text")
        elif key == Qt.Key.Key_B:
            self.choose_targets(*MAPS)
        elif key == Qt.Key.Key_E:
            self.export_current()
        else:
            return False
        return True

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.matches(QKeySequence.StandardKey.Undo):
            self.undo()
            event.accept()
            return
        plain = not (event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier)
        if plain and self.handle_key(event.key()):
            event.accept()
            return
        super().keyPressEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        # The list would use Left/Right and letters (keyboard search) itself; our keys come first.
        if watched is self.list_widget and event.type() == QEvent.Type.KeyPress:
            if event.matches(QKeySequence.StandardKey.Undo):
                self.undo()
                return True
            plain = not (event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier)
            if plain and self.handle_key(event.key()):
                return True
        return super().eventFilter(watched, event)

    # ------------------------------------------------------------------ worker
    def _request_more(self) -> None:
        """Ask for the current photo's maps, else prefetch the next one; one request at a time."""
        if self._pending is not None or not self.session_open or self.current_path() is None:
            return
        for index in (self.index, self.index + 1):
            if 0 <= index < len(self.photos):
                key = str(self.photos[index])
                if key not in self._cache and key not in self._failed:
                    self._pending = key
                    self._job = self.client.submit(AnalyzeRequest(key))
                    self._job.finished.connect(self._on_analysis)
                    self._job.failed.connect(self._on_failed)
                    return

    def _on_analysis(self, outcome: AnalysisOutcome) -> None:
        key = outcome.request.path
        if key == self._pending:
            self._pending = None
        analysis = outcome.analysis
        image = np.asarray(outcome.image.convert("RGB"))
        self._cache[key] = _Maps(image, _map_or_none(analysis.saliency), _map_or_none(analysis.text))
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        current = self.current_path()
        if current is not None and str(current) == key:
            self._show_current()
        self._request_more()

    def _on_failed(self, message: str) -> None:
        if self._pending is None:  # the tab was shut down meanwhile
            return
        key, self._pending = self._pending, None
        self._failed[key] = message
        current = self.current_path()
        if current is not None and str(current) == key:
            self._show_current()
        self._request_more()

    # ------------------------------------------------------------------ display
    def _show_current(self) -> None:
        path = self.current_path()
        maps = self.current_maps()
        if path is None:
            for view in (self.photo_view, self.saliency_view, self.text_view):
                view.set_content(None)
            self.photo_caption.setText("")
            self.busy.setVisible(False)
        elif maps is not None:
            self.photo_view.set_content(maps.image)
            self.saliency_view.set_content(maps.image, saliency=maps.saliency)
            self.text_view.set_content(maps.image, text=maps.text)
            height, width = maps.image.shape[:2]
            self.photo_caption.setText(f"{path.name}  ({width}×{height})")
            self.busy.setVisible(False)
        else:
            preview = self._preview(path)
            self.photo_view.set_content(preview)
            # Without maps the overlay panels would show the bare photo; keep them empty instead.
            self.saliency_view.set_content(None)
            self.text_view.set_content(None)
            computing = False
            if str(path) in self._failed:
                self.photo_caption.setText(f"{path.name}: {self._failed[str(path)]}")
            elif self.session_open:
                self.photo_caption.setText(f"{path.name}: computing the maps...")
                computing = True
            else:
                self.photo_caption.setText(f"{path.name}: open a catalog index to compute the maps")
            self.busy.setVisible(computing)
        self._update_mark_widgets()

    def _preview(self, path: Path) -> np.ndarray | None:
        from ..imaging import load_image

        try:
            return np.asarray(load_image(path, max_side=PREVIEW_MAX_SIDE).convert("RGB"))
        except UserError as exc:
            self._failed[str(path)] = str(exc)
            return None

    def _update_mark_widgets(self) -> None:
        item = self.current_id()
        maps = self.current_maps()
        for which in MAPS:
            present = maps is not None and getattr(maps, which) is not None
            mark = self.marks.get(item, which) if (self.marks is not None and item) else None
            label = self.map_state[which]
            if maps is not None and not present:
                label.setText("not in this model")
                label.setStyleSheet("color: gray;")
            elif mark is None:
                label.setText("not marked")
                label.setStyleSheet("color: gray;")
            else:
                label.setText(f"<b>{mark.upper()}</b>")
                label.setStyleSheet(f"color: {MARK_COLOURS[mark].name()};")
            for value in ("good", "wrong"):
                self.mark_buttons[(which, value)].setEnabled(present)
        has_maps = maps is not None
        self.export_button.setEnabled(has_maps)

    def _decorate(self, row: int) -> None:
        if not 0 <= row < self.list_widget.count() or self.marks is None:
            return
        item_id = self.photos[row].stem
        marks = self.marks.marks_of(item_id)
        key = (marks.get("saliency"), marks.get("text"))
        if key not in self._icons:
            self._icons[key] = mark_icon(*key)
        item = self.list_widget.item(row)
        item.setIcon(self._icons[key])
        described = ", ".join(f"{which}: {marks.get(which, 'not marked')}" for which in MAPS)
        item.setToolTip(f"{self.photos[row].name}\n{described}")

    def _update_progress(self) -> None:
        total = len(self.photos)
        if not total:
            self.progress_label.setText("no photos")
        else:
            self.progress_label.setText(f"Image {self.index + 1} of {total}, {self.marked_count()} marked")
        self.previous_button.setEnabled(self.index > 0)
        self.next_button.setEnabled(0 <= self.index < total - 1)

    def _update_hint(self) -> None:
        if self.session_open:
            model = self.model_name
            self.hint_label.setText(f"Maps from the open model{f' ({model})' if model else ''}. Mark each map "
                                    "good or wrong; training leaves maps marked wrong out of the mask supervision.")
            self.hint_label.setStyleSheet("")
        else:
            self.hint_label.setText("Open a catalog index first (Catalog tab, or File > Open index): its model "
                                    "computes the saliency and text maps shown here.")
            self.hint_label.setStyleSheet("color: #b26a00; font-weight: bold;")

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #c62828;" if error else "")

    def _on_row_changed(self, row: int) -> None:
        if row >= 0:
            self.go_to(row)

    def _on_opacity(self, value: int) -> None:
        for view in self.views.values():
            view.set_view(opacity=value / 100.0)

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of photos to annotate", self.folder_edit.text())
        if folder:
            self.open_folder(folder)

    def _browse_export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the raw maps to", str(self.export_folder()))
        if folder:
            self.export_edit.setText(folder)
            self.export_edit.setModified(True)


def _map_or_none(heat) -> np.ndarray | None:
    return None if heat is None else np.asarray(heat, dtype=np.float32)


__all__ = ["AnnotateTab", "list_photos", "mark_icon"]
