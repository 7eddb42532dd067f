"""The grid of ranked catalog results (thumbnail, rank, score, id, description)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem

from .qt_images import bytes_to_pixmap

THUMB = 150


class ResultGrid(QListWidget):
    """Icon grid of hits; a click emits the hit (for the side-by-side comparison)."""

    hitActivated = Signal(object)  # retrieval.index.SearchHit

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setGridSize(QSize(THUMB + 40, THUMB + 78))
        self.setWordWrap(True)
        self.setSpacing(6)
        self.setUniformItemSizes(True)
        self.itemClicked.connect(lambda item: self.hitActivated.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.itemActivated.connect(lambda item: self.hitActivated.emit(item.data(Qt.ItemDataRole.UserRole)))
        self._hits = []

    def show_hits(self, hits, thumbnails: dict[str, bytes | None], relevant: set[str] | None = None) -> None:
        """Replace the grid with `hits`; `relevant` ids (known truth) get a green frame."""
        self.clear()
        self._hits = list(hits)
        for hit in self._hits:
            pixmap = bytes_to_pixmap(thumbnails.get(hit.id))
            if pixmap.isNull():
                pixmap = QPixmap(THUMB, THUMB)
                pixmap.fill(QColor(235, 235, 235))
            description = hit.description if len(hit.description) <= 60 else hit.description[:57] + "..."
            item = QListWidgetItem(QIcon(pixmap), f"#{hit.rank}  {hit.score:.3f}\n{hit.id}\n{description}")
            item.setData(Qt.ItemDataRole.UserRole, hit)
            item.setToolTip(f"{hit.id}\n{hit.description}\n{hit.category}\n{hit.path}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            if relevant and hit.id in relevant:
                item.setBackground(QColor(200, 240, 205))
            self.addItem(item)

    @property
    def hits(self):
        return list(self._hits)
