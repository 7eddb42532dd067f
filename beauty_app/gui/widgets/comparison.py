"""Why this match: the query and one result side by side at full resolution, with the region pairs that
make up the result's score and each pair's share of it; previous / next result without closing."""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ...visualize import PAIR_COLOURS
from ..worker import ExplainOutcome, ExplainRequest
from .image_view import HeatmapView

TOP_PAIRS = 5
POOLING_NAMES = {"srmac": "SR-MAC", "rmac": "R-MAC", "ramac": "RA-MAC", "gap": "GAP", "mac": "MAC", "spoc": "SPoC",
                 "gem": "GeM"}


def pair_boxes(explanation, pairs) -> tuple[list, list]:
    """Numbered boxes for the query and the catalog image: one box per region, labelled with every pair
    it takes part in ("1,3"); regions that are the whole photo are named in the table, not drawn."""

    def side(terms, indices):
        labels: dict[int, list[int]] = {}
        for number, index in enumerate(indices, start=1):
            if not terms.terms[index].whole_image:
                labels.setdefault(index, []).append(number)
        return [(",".join(map(str, numbers)), numbers[0], terms.terms[index].box) for index, numbers in labels.items()]

    return (side(explanation.query, [p.query for p in pairs]), side(explanation.catalog, [p.catalog for p in pairs]))


class ComparisonDialog(QDialog):
    """Query and one result side by side: the top contributing region pairs drawn on both images (same
    number, same colour), a table of their shares of the score, the attention maps, and previous / next.

    Signals:
        explained(ExplainOutcome): the current result's explanation arrived and is shown.
    """

    explained = Signal(object)

    def __init__(self, parent, client, query_image, query_analysis, hits, position: int, view: dict,
                 pooling: str | None = None, query_expansion: int = 0):
        super().__init__(parent)
        self.setWindowTitle("Why this match")
        self.resize(1200, 760)
        self.client = client
        self.query_image = query_image  # PIL, as searched (after cropping)
        self.query_analysis = query_analysis
        self.hits = list(hits)
        self.position = position
        self.view = {**view, "show_regions": False}  # the pairs are the regions that matter here
        self.pooling = pooling
        self.query_expansion = query_expansion
        self.explanation = None
        self._jobs: list = []

        self.query_title = QLabel("<b>Query</b>")
        self.result_title = QLabel()
        self.result_title.setWordWrap(True)
        self.query_view = HeatmapView(self)
        self.result_view = HeatmapView(self, placeholder="Explaining the match...")
        self.query_view.set_content(np.asarray(query_image), query_analysis.saliency, query_analysis.text)
        for panel in (self.query_view, self.result_view):
            panel.set_view(**self.view)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Pair", "Query region", "Catalog region", "Share of the score"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMaximumHeight(190)
        self.notes = QLabel()
        self.notes.setWordWrap(True)

        self.previous_button = QPushButton("< Previous result")
        self.previous_button.setShortcut(QKeySequence(Qt.Key.Key_PageUp))
        self.previous_button.setToolTip("The result ranked above this one (Page Up)")
        self.previous_button.clicked.connect(lambda: self.show_hit(self.position - 1))
        self.next_button = QPushButton("Next result >")
        self.next_button.setShortcut(QKeySequence(Qt.Key.Key_PageDown))
        self.next_button.setToolTip("The result ranked below this one (Page Down)")
        self.next_button.clicked.connect(lambda: self.show_hit(self.position + 1))
        self.close_button = QPushButton("Close")
        self.close_button.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.previous_button)
        buttons.addWidget(self.next_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)

        images = QWidget()
        grid = QGridLayout(images)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.query_title, 0, 0)
        grid.addWidget(self.result_title, 0, 1)
        grid.addWidget(self.query_view, 1, 0)
        grid.addWidget(self.result_view, 1, 1)
        grid.setRowStretch(1, 1)
        layout = QGridLayout(self)
        layout.addWidget(images, 0, 0)
        layout.setRowStretch(0, 1)
        layout.addWidget(self.summary, 1, 0)
        layout.addWidget(self.table, 2, 0)
        layout.addWidget(self.notes, 3, 0)
        layout.addLayout(buttons, 4, 0)
        self.show_hit(position)

    # ------------------------------------------------------------------ navigation
    @property
    def hit(self):
        return self.hits[self.position]

    def show_hit(self, position: int) -> None:
        """Show result `position` (0-based in the result list) and ask the worker to explain it."""
        if not 0 <= position < len(self.hits):
            return
        self.position = position
        hit = self.hit
        self.explanation = None
        self.setWindowTitle(f"Why this match: query vs #{hit.rank} {hit.id}")
        self.result_title.setText(f"<b>#{hit.rank}</b> {html.escape(hit.id)} — score {hit.score:.3f}<br>"
                                  f"{html.escape(hit.description)}")
        self.previous_button.setEnabled(position > 0)
        self.next_button.setEnabled(position < len(self.hits) - 1)
        self.result_view.set_content(None)
        self.query_view.set_pairs([])
        self.summary.setText("Splitting the score into region pairs...")
        self.table.setRowCount(0)
        self.notes.setText("")
        for job in self._jobs:
            job.cancel()  # a queued explanation of the result we left is not needed any more
        job = self.client.submit(ExplainRequest(self.query_image, hit, self.pooling, self.query_expansion))
        job.finished.connect(self._on_explained)
        job.failed.connect(self._on_failed)
        self._jobs = [j for j in self._jobs if not j.done] + [job]

    # ------------------------------------------------------------------ results
    def _on_explained(self, outcome: ExplainOutcome) -> None:
        if outcome.request.hit is not self.hit:
            return  # the user moved on
        explanation, analysis = outcome.explanation, outcome.analysis
        self.explanation = explanation
        pairs = explanation.top_pairs(TOP_PAIRS)
        query_boxes, catalog_boxes = pair_boxes(explanation, pairs)
        self.result_view.set_content(np.asarray(explanation.catalog_image), analysis.saliency, analysis.text)
        self.result_view.set_view(**self.view)
        self.query_view.set_pairs(query_boxes)
        self.result_view.set_pairs(catalog_boxes)
        width, height = explanation.catalog_image.size
        self.result_title.setText(self.result_title.text() + f" <i>({width}x{height} px, from the catalog file)</i>")
        shown = sum(p.value for p in pairs)
        count = int(np.count_nonzero(explanation.contributions))
        self.summary.setText(
            f"<b>Score {explanation.score:.3f}</b> = the sum of {count} region-pair contributions "
            f"({POOLING_NAMES.get(explanation.pooling, explanation.pooling)}). The {len(pairs)} largest, numbered on both images, make "
            f"{shown / explanation.score:.0%} of it." if explanation.score else
            "This result's score is zero: no region pair contributes.")
        if explanation.score:
            (q_index, q_total), (c_index, c_total) = (explanation.region_totals("query")[0],
                                                      explanation.region_totals("catalog")[0])
            self.summary.setText(
                self.summary.text() + f"<br>Largest single regions, summed over all their pairs: in the query "
                f"{html.escape(explanation.query.terms[q_index].label)} ({q_total / explanation.score:.0%}), in the "
                f"catalog image {html.escape(explanation.catalog.terms[c_index].label)} "
                f"({c_total / explanation.score:.0%}).")
        self.table.setRowCount(len(pairs))
        for row, pair in enumerate(pairs):
            colour = PAIR_COLOURS[row % len(PAIR_COLOURS)]
            cells = [str(row + 1), explanation.query.terms[pair.query].label,
                     explanation.catalog.terms[pair.catalog].label, f"{pair.share:.1%}  ({pair.value:+.4f})"]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 0:
                    item.setBackground(QColor(*colour))
                    item.setForeground(QColor(255, 255, 255))
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        self.notes.setText(" ".join(explanation.notes))
        self.explained.emit(outcome)

    def _on_failed(self, message: str) -> None:
        self.summary.setText(f"The match could not be explained: {message}")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        for job in self._jobs:
            job.cancel()
        super().closeEvent(event)
