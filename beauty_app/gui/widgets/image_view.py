"""An image panel that shows a photo with an attention heatmap, SR-MAC regions, numbered region pairs and a crop box."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from ...visualize import MapSummary, combine_maps, draw_pairs, draw_regions, overlay, stretch_map, summarize_map
from .qt_images import numpy_to_qimage


class HeatmapView(QWidget):
    """Paints an RGB image scaled to fit, with optional heatmap, regions and a draggable crop box.

    Signals:
        cropSelected(left, top, right, bottom): a box dragged by the user, in image pixels.
        viewChanged(): the picture was redrawn (new content or view options); legends follow it.
    """

    cropSelected = Signal(int, int, int, int)
    viewChanged = Signal()

    def __init__(self, parent=None, placeholder: str = "", crop_enabled: bool = False):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 160)
        self._placeholder = placeholder
        self._image: np.ndarray | None = None
        self._saliency: np.ndarray | None = None
        self._text: np.ndarray | None = None
        self._regions: list = []
        self._which = "saliency"
        self._opacity = 0.5
        self._colormap = "turbo"
        self._show_regions = False
        self._stretch = False
        self._pairs: list[tuple[int, tuple[int, int, int, int]]] = []
        self._rendered: QImage | None = None
        self._crop_enabled = crop_enabled
        self._drag_start: QPoint | None = None
        self._drag_rect: QRect | None = None
        self.setMouseTracking(False)

    # ------------------------------------------------------------------ content
    def set_content(self, image_rgb: np.ndarray | None, saliency: np.ndarray | None = None,
                    text: np.ndarray | None = None, regions=()) -> None:
        self._image = None if image_rgb is None else np.ascontiguousarray(image_rgb, dtype=np.uint8)
        self._saliency, self._text, self._regions = saliency, text, list(regions)
        self._pairs = []
        self._render()

    def set_pairs(self, boxes) -> None:
        """Numbered boxes (number, (left, top, width, height)) drawn over everything (region pairs)."""
        self._pairs = list(boxes)
        self._render()

    def set_view(self, which: str | None = None, opacity: float | None = None, colormap: str | None = None,
                 show_regions: bool | None = None, stretch: bool | None = None) -> None:
        """Which map to overlay, how strongly, in which colours; region boxes; `stretch` a weak map to its peak."""
        if which is not None:
            self._which = which
        if opacity is not None:
            self._opacity = opacity
        if colormap is not None:
            self._colormap = colormap
        if show_regions is not None:
            self._show_regions = show_regions
        if stretch is not None:
            self._stretch = stretch
        self._render()

    @property
    def view(self) -> dict:
        """The current view options (what :meth:`set_view` takes)."""
        return {"which": self._which, "opacity": self._opacity, "colormap": self._colormap,
                "show_regions": self._show_regions, "stretch": self._stretch}

    def map_summary(self) -> MapSummary | None:
        """Peak and mean of the map being shown, before any stretch (None when no map is shown)."""
        if self._image is None:
            return None
        return summarize_map(combine_maps(self._saliency, self._text, self._which))

    @property
    def placeholder(self) -> str:
        return self._placeholder

    def set_placeholder(self, text: str) -> None:
        """The text shown while there is no image."""
        self._placeholder = text
        self.update()

    @property
    def has_image(self) -> bool:
        return self._image is not None

    def composed(self) -> np.ndarray | None:
        """The picture as currently shown (heatmap and regions included), at image resolution."""
        if self._image is None:
            return None
        heat = combine_maps(self._saliency, self._text, self._which)
        if self._stretch:
            heat = stretch_map(heat)
        picture = overlay(self._image, heat, self._opacity, self._colormap)
        if self._show_regions and self._regions:
            picture = draw_regions(picture, self._regions)
        if self._pairs:
            picture = draw_pairs(picture, self._pairs)
        return picture

    def _render(self) -> None:
        picture = self.composed()
        self._rendered = None if picture is None else numpy_to_qimage(picture)
        self.update()
        self.viewChanged.emit()

    # ------------------------------------------------------------------ geometry
    def _target_rect(self) -> QRect:
        if self._rendered is None:
            return QRect()
        size = QSize(self._rendered.width(), self._rendered.height()).scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        left = (self.width() - size.width()) // 2
        top = (self.height() - size.height()) // 2
        return QRect(left, top, size.width(), size.height())

    def _to_image(self, point: QPoint) -> tuple[int, int]:
        rect = self._target_rect()
        scale = self._rendered.width() / max(rect.width(), 1)
        x = int(round((point.x() - rect.left()) * scale))
        y = int(round((point.y() - rect.top()) * scale))
        return (min(max(x, 0), self._rendered.width()), min(max(y, 0), self._rendered.height()))

    # ------------------------------------------------------------------ painting and mouse
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if self._rendered is None:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        painter.drawImage(self._target_rect(), self._rendered)
        if self._drag_rect is not None:
            painter.setPen(QPen(QColor(255, 255, 255), 2, Qt.PenStyle.DashLine))
            painter.drawRect(self._drag_rect)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._crop_enabled and self._rendered is not None and event.button() == Qt.MouseButton.LeftButton:
            self._drag_start = event.position().toPoint()
            self._drag_rect = QRect(self._drag_start, self._drag_start)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._drag_start is not None:
            self._drag_rect = QRect(self._drag_start, event.position().toPoint()).normalized()
            self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._drag_start is None:
            return
        rect = QRect(self._drag_start, event.position().toPoint()).normalized()
        self._drag_start, self._drag_rect = None, None
        self.update()
        if rect.width() < 6 or rect.height() < 6:
            return
        left, top = self._to_image(rect.topLeft())
        right, bottom = self._to_image(rect.bottomRight())
        if right - left >= 8 and bottom - top >= 8:
            self.cropSelected.emit(left, top, right, bottom)
