"""Live plots of a training run: the loss and its parts, the learning rate, and validation accuracy."""

from __future__ import annotations

import math
import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg  # noqa: E402 - the binding must be chosen before the import
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtGui import QPalette  # noqa: E402
from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget  # noqa: E402

# Colour-blind-friendly (Okabe-Ito) colours for the loss parts.
LOSS_SERIES = {
    "total": ("total", (0, 114, 178)),
    "cls": ("classification", (230, 159, 0)),
    "saliency": ("saliency", (0, 158, 115)),
    "text": ("text", (204, 121, 167)),
}


class TrainingPlots(QWidget):
    """Three stacked plots sharing the x axis (global optimisation step over both stages).

    Points are buffered and drawn at most a few times a second, so a fast run cannot flood the GUI.
    A step at or before the last plotted one (a resumed run that restarts from an older state)
    replaces the points from there on.
    """

    REDRAW_MS = 200

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        palette = self.palette()
        background = palette.color(QPalette.ColorRole.Base)
        foreground = palette.color(QPalette.ColorRole.Text)

        self.loss_plot = self._plot("Loss", background, foreground)
        legend_brush = pg.mkBrush(background.red(), background.green(), background.blue(), 200)
        self.loss_plot.addLegend(offset=(-10, 10), brush=legend_brush, labelTextColor=foreground,
                                 pen=pg.mkPen(foreground, width=0.5))
        self.lr_plot = self._plot("Learning rate", background, foreground)
        self.lr_plot.setLogMode(y=True)
        self.val_plot = self._plot("Validation accuracy", background, foreground)
        self.val_plot.enableAutoRange(axis="y", enable=False)
        self.val_plot.setYRange(0.0, 1.0, padding=0.02)
        self.val_plot.setLabel("bottom", "step")
        for plot in (self.lr_plot, self.val_plot):
            plot.setXLink(self.loss_plot)
        # The x axis is shared: only the bottom plot shows its numbers, so no tick labels sit on the title of the
        # plot below; one left-axis width for all three, so the plots line up whatever their numbers' lengths.
        for plot in (self.loss_plot, self.lr_plot):
            plot.getAxis("bottom").setStyle(showValues=False)
        left_width = self.fontMetrics().horizontalAdvance("0.0001") + 24
        for plot in self.plots():
            plot.getAxis("left").setWidth(left_width)

        self._x: list[float] = []
        self._series: dict[str, list[float]] = {key: [] for key in LOSS_SERIES}
        self._lr: list[float] = []
        self._val_x: list[float] = []
        self._val_y: list[float] = []
        self.loss_curves = {
            key: self.loss_plot.plot([], [], name=name, pen=pg.mkPen(colour, width=2 if key == "total" else 1.5),
                                     connect="finite")
            for key, (name, colour) in LOSS_SERIES.items()
        }
        self.lr_curve = self.lr_plot.plot([], [], pen=pg.mkPen((86, 180, 233), width=2))
        self.val_curve = self.val_plot.plot([], [], pen=pg.mkPen((213, 94, 0), width=1), symbol="o", symbolSize=8,
                                            symbolBrush=(213, 94, 0))
        self._stage_lines: list[pg.InfiniteLine] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.loss_plot, 3)
        layout.addWidget(self.lr_plot, 2)
        layout.addWidget(self.val_plot, 2)

        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.timeout.connect(self.flush)

    def plots(self) -> list[pg.PlotWidget]:
        """The three plots, top to bottom."""
        return [self.loss_plot, self.lr_plot, self.val_plot]

    @staticmethod
    def _plot(title: str, background, foreground) -> pg.PlotWidget:
        plot = pg.PlotWidget(background=background)
        plot.setTitle(title, color=foreground)
        plot.showGrid(x=True, y=True, alpha=0.25)
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setPen(foreground)
            plot.getAxis(axis).setTextPen(foreground)
        plot.setMinimumHeight(110)
        plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        plot.setMenuEnabled(False)
        return plot

    # ------------------------------------------------------------------ data
    def clear(self) -> None:
        """Forget every point (a fresh run)."""
        self._x.clear()
        self._lr.clear()
        self._val_x.clear()
        self._val_y.clear()
        for values in self._series.values():
            values.clear()
        for line in self._stage_lines:
            self.loss_plot.removeItem(line)
        self._stage_lines.clear()
        self.flush()

    def add_step(self, x: float, loss: float, cls: float, saliency: float | None, text: float | None,
                 lr: float) -> None:
        """One optimisation step at global step `x` (missing loss parts are gaps, not zeros)."""
        if self._x and x <= self._x[-1]:
            self._truncate(x)
        self._x.append(float(x))
        for key, value in (("total", loss), ("cls", cls), ("saliency", saliency), ("text", text)):
            self._series[key].append(_finite(value))
        self._lr.append(lr if lr and lr > 0 else math.nan)
        self._schedule()

    def add_validation(self, x: float, accuracy: float | None) -> None:
        """A validation accuracy (0..1) measured after global step `x`."""
        if accuracy is None:
            return
        self._val_x.append(float(x))
        self._val_y.append(float(accuracy))
        self._schedule()

    def mark_stage(self, x: float, label: str) -> None:
        """A dashed vertical line where a stage begins."""
        if any(line.value() == x for line in self._stage_lines):
            return
        line = pg.InfiniteLine(pos=x, angle=90, pen=pg.mkPen((150, 150, 150), style=pg.QtCore.Qt.PenStyle.DashLine),
                               label=label, labelOpts={"position": 0.92, "color": (120, 120, 120)})
        self.loss_plot.addItem(line)
        self._stage_lines.append(line)

    def point_counts(self) -> dict[str, int]:
        """How many finite points each series holds (what the plots show after the next redraw)."""
        counts = {key: sum(1 for v in values if not math.isnan(v)) for key, values in self._series.items()}
        counts["lr"] = sum(1 for v in self._lr if not math.isnan(v))
        counts["validation"] = len(self._val_y)
        return counts

    def _truncate(self, x: float) -> None:
        keep = next((i for i, value in enumerate(self._x) if value >= x), len(self._x))
        del self._x[keep:]
        del self._lr[keep:]
        for values in self._series.values():
            del values[keep:]
        keep_val = next((i for i, value in enumerate(self._val_x) if value >= x), len(self._val_x))
        del self._val_x[keep_val:]
        del self._val_y[keep_val:]

    # ------------------------------------------------------------------ drawing
    def _schedule(self) -> None:
        if not self._redraw_timer.isActive():
            self._redraw_timer.start(self.REDRAW_MS)

    def flush(self) -> None:
        """Draw the buffered points now."""
        self._redraw_timer.stop()
        for key, curve in self.loss_curves.items():
            values = self._series[key]
            if any(not math.isnan(v) for v in values):
                curve.setData(self._x, values)
            else:
                curve.setData([], [])
        finite = [(x, y) for x, y in zip(self._x, self._lr) if not math.isnan(y)]
        self.lr_curve.setData([x for x, _ in finite], [y for _, y in finite])
        self.val_curve.setData(self._val_x, self._val_y)


def _finite(value: float | None) -> float:
    if value is None:
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan
