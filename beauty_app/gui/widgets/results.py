"""The grid of ranked catalog results (thumbnail, rank, score, id, description).

Each tile has a fixed thumbnail box and, under it, a fixed caption area of three lines measured from
the current font: captions never depend on a thumbnail's shape (clip art is often wide or tall) and
grow with the type in presenter mode instead of being cut.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPalette, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QStyle, QStyledItemDelegate

from .qt_images import bytes_to_pixmap

THUMB = 150
PAD = 6  # around the thumbnail and the caption, inside a tile
CAPTION_LINES = 3  # "#rank score", id, description
CAPTION_ROLE = Qt.ItemDataRole.UserRole + 1  # the caption's lines
RELEVANT_ROLE = Qt.ItemDataRole.UserRole + 2  # a known correct match (green tile)
RELEVANT_COLOUR = QColor(200, 240, 205)


def screen_pixmap(pixmap: QPixmap, side: int, device_pixel_ratio: float) -> QPixmap:
    """`pixmap` fitted into a `side` x `side` logical box at the screen's pixel density.

    On a 2x screen the box is 2*side device pixels: scaling to that (and marking the pixmap 2x)
    keeps every source pixel, where a 1x pixmap would be blown up by the painter and blur.
    """
    ratio = max(1.0, float(device_pixel_ratio))
    target = round(side * ratio)
    scaled = pixmap.scaled(target, target, Qt.AspectRatioMode.KeepAspectRatio,
                           Qt.TransformationMode.SmoothTransformation)
    scaled.setDevicePixelRatio(ratio)
    return scaled


class ResultTileDelegate(QStyledItemDelegate):
    """Paints a tile: the thumbnail centred in a fixed box, then the caption lines at fixed heights."""

    def caption_height(self, font: QFont) -> int:
        return CAPTION_LINES * QFontMetrics(font).lineSpacing()

    def tile_size(self, font: QFont) -> QSize:
        metrics = QFontMetrics(font)
        width = max(THUMB, metrics.horizontalAdvance("#100  0.000  ")) + 2 * PAD
        return QSize(width, PAD + THUMB + PAD + self.caption_height(font) + PAD)

    def caption_rect(self, tile: QRect, font: QFont) -> QRect:
        """Where the caption of the tile at `tile` is drawn (the same offset in every tile)."""
        return QRect(tile.left() + PAD, tile.top() + PAD + THUMB + PAD, tile.width() - 2 * PAD,
                     self.caption_height(font))

    def sizeHint(self, option, index) -> QSize:  # noqa: N802 - Qt API
        return self.tile_size(option.font)

    def paint(self, painter, option, index) -> None:
        painter.save()
        tile = option.rect
        palette = option.palette
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(tile, palette.color(QPalette.ColorRole.Highlight).lighter(160))
        elif index.data(RELEVANT_ROLE):
            painter.fillRect(tile, RELEVANT_COLOUR)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            size = pixmap.deviceIndependentSize().toSize()
            left = tile.left() + (tile.width() - size.width()) // 2
            top = tile.top() + PAD + (THUMB - size.height()) // 2
            painter.drawPixmap(left, top, pixmap)
        font = QFont(option.font)
        metrics = QFontMetrics(font)
        caption = self.caption_rect(tile, font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        for number, line in enumerate(index.data(CAPTION_ROLE) or []):
            line_font = QFont(font)
            line_font.setBold(number == 0)
            painter.setFont(line_font)
            line_rect = QRect(caption.left(), caption.top() + number * metrics.lineSpacing(), caption.width(),
                              metrics.lineSpacing())
            text = QFontMetrics(line_font).elidedText(line, Qt.TextElideMode.ElideRight, caption.width())
            painter.drawText(line_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, text)
        painter.restore()


class ResultGrid(QListWidget):
    """Icon grid of hits; a click emits the hit (for the side-by-side comparison)."""

    hitActivated = Signal(object)  # retrieval.index.SearchHit

    def __init__(self, parent=None):
        super().__init__(parent)
        self.delegate = ResultTileDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setSpacing(6)
        self.setUniformItemSizes(True)
        self._fit_grid()
        self.itemClicked.connect(lambda item: self.hitActivated.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.itemActivated.connect(lambda item: self.hitActivated.emit(item.data(Qt.ItemDataRole.UserRole)))
        self._hits = []
        self._thumbnails: dict[str, bytes | None] = {}
        self._relevant: set[str] = set()

    def _fit_grid(self) -> None:
        size = self.delegate.tile_size(self.font())
        self.setGridSize(QSize(size.width() + 2 * self.spacing(), size.height() + 2 * self.spacing()))

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() == event.Type.FontChange:  # presenter mode: taller captions, not cut ones
            self._fit_grid()
            self.doItemsLayout()

    def caption_rect(self, row: int) -> QRect:
        """The caption area of tile `row`, in viewport coordinates."""
        return self.delegate.caption_rect(self.visualItemRect(self.item(row)), self.font())

    def show_hits(self, hits, thumbnails: dict[str, bytes | None], relevant: set[str] | None = None) -> None:
        """Replace the grid with `hits`; `relevant` ids (known truth) get a green tile."""
        self.clear()
        self._hits = list(hits)
        self._thumbnails = dict(thumbnails)
        self._relevant = set(relevant or ())
        ratio = self.devicePixelRatioF()
        for hit in self._hits:
            pixmap = bytes_to_pixmap(thumbnails.get(hit.id))
            if pixmap.isNull():
                pixmap = QPixmap(THUMB, THUMB)
                pixmap.fill(QColor(235, 235, 235))
            item = QListWidgetItem(f"#{hit.rank}  {hit.score:.3f}\n{hit.id}\n{hit.description}")
            item.setData(Qt.ItemDataRole.DecorationRole, screen_pixmap(pixmap, THUMB, ratio))
            item.setData(CAPTION_ROLE, [f"#{hit.rank}  {hit.score:.3f}", hit.id, hit.description])
            item.setData(Qt.ItemDataRole.UserRole, hit)
            item.setToolTip(f"{hit.id}\n{hit.description}\n{hit.category}\n{hit.path}")
            if hit.id in self._relevant:
                item.setData(RELEVANT_ROLE, True)
                item.setBackground(RELEVANT_COLOUR)
            self.addItem(item)

    def mark_relevant(self, relevant: set[str]) -> None:
        """Highlight the known correct matches among the shown hits (Evaluation -> Search)."""
        self.show_hits(self._hits, self._thumbnails, relevant)

    def relevant_rows(self) -> list[int]:
        return [row for row in range(self.count()) if self.item(row).data(RELEVANT_ROLE)]

    @property
    def hits(self):
        return list(self._hits)
