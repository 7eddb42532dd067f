"""The heatmap's legend: its colour scale with values, the opacity, the map's true peak, and a note when
the map is nearly empty (so a flat tint is not read as a finding)."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ...visualize import NEARLY_EMPTY_PEAK, colour_bar
from .image_view import HeatmapView
from .qt_images import numpy_to_qimage

MAP_NAMES = {"saliency": "Saliency", "text": "Text", "both": "Saliency + text (the larger)"}
BAR_WIDTH, BAR_HEIGHT = 160, 12


class HeatmapLegend(QWidget):
    """Follows one :class:`HeatmapView`: colour bar 0..1 (or 0..peak when stretched), opacity, peak, notes."""

    def __init__(self, view: HeatmapView, parent=None):
        super().__init__(parent)
        self.view = view
        self.low_label, self.high_label = QLabel("0"), QLabel("1")
        self.bar = QLabel()
        self.bar.setFixedSize(BAR_WIDTH, BAR_HEIGHT)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #a04000;")
        scale_row = QHBoxLayout()
        scale_row.setContentsMargins(0, 0, 0, 0)
        for widget in (self.low_label, self.bar, self.high_label):
            scale_row.addWidget(widget)
        scale_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(scale_row)
        layout.addWidget(self.caption)
        layout.addWidget(self.note)
        self._colormap = None
        view.viewChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Redraw from the view's current map and options."""
        options = self.view.view
        summary = self.view.map_summary()
        if options["colormap"] != self._colormap:
            self._colormap = options["colormap"]
            from PySide6.QtGui import QPixmap

            self.bar.setPixmap(QPixmap.fromImage(numpy_to_qimage(colour_bar(BAR_WIDTH, BAR_HEIGHT, self._colormap))))
        if summary is None:
            self.setVisible(self.view.has_image and options["which"] == "none")
            self.caption.setText("No heatmap shown." if options["which"] == "none" else "")
            self.note.setText("")
            self._show_scale(False)
            return
        self.setVisible(True)
        self._show_scale(True)
        name = MAP_NAMES.get(options["which"], options["which"])
        opacity = f"opacity {options['opacity']:.0%}"
        if options["stretch"] and summary.peak > 1e-6:
            self.low_label.setText("0")
            self.high_label.setText(f"{summary.peak:.2f}")
            self.caption.setText(f"{name}, stretched: the colours span 0 to the map's true peak {summary.peak:.2f} "
                                 f"(mean {summary.mean:.2f}); {opacity}")
        else:
            self.low_label.setText("0")
            self.high_label.setText("1")
            self.caption.setText(f"{name}: 0 = no attention, 1 = full; peak {summary.peak:.2f}, "
                                 f"mean {summary.mean:.2f}; {opacity}")
        if summary.nearly_empty:
            self.note.setText(f"This map is nearly empty (peak {summary.peak:.2f}, below {NEARLY_EMPTY_PEAK:.1f}): "
                              f"the model finds little here, so the tint is not a finding."
                              + ("" if options["stretch"] else " Stretch it to see its shape."))
        else:
            self.note.setText("")
        self.note.setVisible(bool(self.note.text()))

    def _show_scale(self, visible: bool) -> None:
        for widget in (self.low_label, self.bar, self.high_label):
            widget.setVisible(visible)

    @property
    def text(self) -> str:
        """Everything the legend says, for tests and accessibility."""
        parts = [self.low_label.text(), self.high_label.text(), self.caption.text(), self.note.text()]
        return " | ".join(p for p in parts if p)
