"""Per-query AP of one evaluation run as a bar chart (worst queries on the left) with the MAP line."""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QVBoxLayout, QWidget


def ap_colour(ap: float) -> QColor:
    """Red for AP 0, amber around 0.5, green for 1: the worst queries stand out at a glance."""
    ap = min(max(ap, 0.0), 1.0)
    return QColor.fromHsvF(ap / 3.0, 0.75, 0.85)  # hue 0 (red) .. 1/3 (green)


class ApBarPlot(QWidget):
    """A pyqtgraph bar chart of per-query AP, sorted ascending, with a dashed line at the MAP."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        self.plot = pg.PlotWidget(background=palette.color(QPalette.ColorRole.Base))
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.showGrid(y=True, alpha=0.25)
        self.plot.setYRange(0, 1.05, padding=0)
        self.plot.setLabel("left", "AP", color=text.name())
        self.plot.setLabel("bottom", "queries, worst first", color=text.name())
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setPen(pg.mkPen(text))
            self.plot.getAxis(axis).setTextPen(pg.mkPen(text))
        self.title = ""
        self.bars: pg.BarGraphItem | None = None
        self.map_line = pg.InfiniteLine(angle=0, movable=False,
                                        pen=pg.mkPen(palette.color(QPalette.ColorRole.Highlight), width=2,
                                                     style=Qt.PenStyle.DashLine),
                                        label="MAP {value:.3f}", labelOpts={"position": 0.08, "color": text.name()})
        self.map_line.setVisible(False)
        self.plot.addItem(self.map_line)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def set_values(self, ap_values: Sequence[float], mean: float | None = None, title: str = "") -> None:
        """Show `ap_values` (any order; drawn ascending) and the MAP line at `mean`."""
        if self.bars is not None:
            self.plot.removeItem(self.bars)
            self.bars = None
        values = sorted(float(v) for v in ap_values)
        self.title = title
        self.plot.setTitle(title, color=self.palette().color(QPalette.ColorRole.WindowText).name())
        if values:
            # a query with AP 0 still gets a sliver of a bar, so it reads as "scored zero", not "missing"
            heights = [max(v, 0.008) for v in values]
            self.bars = pg.BarGraphItem(x=list(range(1, len(values) + 1)), height=heights, width=0.8,
                                        brushes=[ap_colour(v) for v in values], pen=pg.mkPen(None))
            self.plot.addItem(self.bars)
            self.plot.setXRange(0.3, len(values) + 0.7, padding=0)
        self.map_line.setVisible(mean is not None and bool(values))
        if mean is not None:
            self.map_line.setValue(mean)
        self.plot.setYRange(0, 1.05, padding=0)

    def bar_count(self) -> int:
        return 0 if self.bars is None else len(self.bars.opts["height"])
