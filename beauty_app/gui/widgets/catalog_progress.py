"""A progress bar with a "done / total, rate, ETA" line for long jobs (index builds, evaluations)."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from ...jobs import ProgressEvent


def format_duration(seconds: float | None) -> str:
    """``75.4`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``; empty for unknown."""
    if seconds is None or seconds != seconds or seconds < 0:  # NaN check without importing math
        return ""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe_progress(event: ProgressEvent, unit: str = "images", stage_names: dict | None = None) -> str:
    """One line for a progress event: ``"120 / 480 images · 35.2 img/s · ETA 0:10"``."""
    stage_names = stage_names or {}
    if event.stage in stage_names:
        return stage_names[event.stage]
    parts = [f"{event.done:,} / {event.total:,} {unit}" if event.total else f"{event.done:,} {unit}"]
    if event.rate:
        short = "img" if unit == "images" else unit[:5].rstrip("s")
        parts.append(f"{event.rate:.1f} {short}/s")
    eta = format_duration(event.eta_s)
    if eta and event.total and event.done < event.total:
        parts.append(f"ETA {eta}")
    return " · ".join(parts)


class JobProgress(QWidget):
    """Bar plus a status line; idle it shows the last outcome ("Cancelled", "Done in 3 s")."""

    def __init__(self, unit: str = "images", stage_names: dict | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.unit = unit
        self.stage_names = dict(stage_names or {})
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(True)
        self.label = QLabel("")
        self.label.setMinimumWidth(self.fontMetrics().horizontalAdvance("0000 / 0000 images · 000.0 img/s · ETA 0:00"))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.label)

    def start(self, message: str = "Starting...") -> None:
        self.bar.setRange(0, 0)  # busy indicator until the first event says how much there is
        self.label.setText(message)

    def update_event(self, event: ProgressEvent) -> None:
        if event.total:
            scale = max(1, -(-event.total // (2**31 - 1)))  # QProgressBar counts in 32-bit ints (bytes can exceed)
            self.bar.setRange(0, event.total // scale)
            self.bar.setValue(min(event.done, event.total) // scale)
        else:
            self.bar.setRange(0, 0)
        self.label.setText(describe_progress(event, self.unit, self.stage_names))

    def finish(self, message: str, complete: bool = True) -> None:
        """Stop the busy indicator; a complete job shows a full bar, an interrupted one keeps its value."""
        maximum = max(self.bar.maximum(), 1)
        value = self.bar.value() if self.bar.maximum() > 0 else 0
        self.bar.setRange(0, maximum)
        self.bar.setValue(maximum if complete else max(value, 0))
        self.label.setText(message)
