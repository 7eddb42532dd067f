"""The catalog browser's table model: pages of index rows fetched from the worker as the view scrolls.

The model never touches the index itself. It asks for a page by emitting :attr:`fetchRequested`
(the tab forwards it to ``client.requestItems``) and appends the rows the worker lists back.
Thumbnails are decoded from the catalog image files on a small private thread pool, only for
rows the view actually paints.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QImage, QImageReader, QPixmap

log = logging.getLogger(__name__)

PAGE_SIZE = 200
#: Thumbnails kept in memory, least recently painted dropped first: about 20 MB of 40-pixel pixmaps,
#: so scrolling through a 500,000-row catalog does not keep 500,000 of them (3 GB).
THUMBNAIL_CACHE = 3000
COLUMNS = (("id", "Id"), ("description", "Description"), ("category", "Category"), ("path", "Path"))


class _ThumbnailRelay(QObject):
    """Carries decoded images from pool threads back to the GUI thread (queued signal)."""

    loaded = Signal(int, str, QImage)  # generation, item id, image (null when unreadable)


class _ThumbnailJob(QRunnable):
    def __init__(self, relay: _ThumbnailRelay, generation: int, items: list[tuple[str, str]], side: int):
        super().__init__()
        self.relay, self.generation, self.items, self.side = relay, generation, items, side

    def run(self) -> None:  # runs on a pool thread: Qt image decoding only, no index or torch
        for item_id, path in self.items:
            reader = QImageReader(path)
            reader.setAutoTransform(True)
            size = reader.size()
            if size.isValid() and (size.width() > self.side or size.height() > self.side):
                # JPEG decoders scale while decoding, so a 4000-pixel photo stays cheap
                reader.setScaledSize(size.scaled(self.side, self.side, Qt.AspectRatioMode.KeepAspectRatio))
            image = reader.read()
            self.relay.loaded.emit(self.generation, item_id, image)


class CatalogItemsModel(QAbstractTableModel):
    """Lazily filled table of catalog rows (id, description, category, path) with thumbnails.

    Signals:
        fetchRequested(filter_text, offset, limit): a page is wanted; answer with :meth:`add_page`.
        pageLoaded(count): rows were appended (count = rows now in the model).
    """

    fetchRequested = Signal(str, int, int)
    pageLoaded = Signal(int)

    def __init__(self, thumbnail_side: int = 40, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: list[dict] = []
        self._row_of: dict[str, int] = {}  # item id -> row, to repaint a cell when its thumbnail arrives
        self._filter = ""
        self._active = False  # True while an index is open
        self._pending: int | None = None  # offset of the page asked for and not yet answered
        self._exhausted = False
        self._generation = 0
        self.thumbnail_side = thumbnail_side
        self._thumbs: OrderedDict[str, QPixmap | None] = OrderedDict()  # None: asked for, or unreadable
        self.thumbnail_cache = THUMBNAIL_CACHE
        self._thumb_queue: list[tuple[str, str]] = []
        self._thumb_timer = QTimer(self)
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.setInterval(0)  # gathers the rows of one paint into one job
        self._thumb_timer.timeout.connect(self._start_thumbnail_job)
        self._relay = _ThumbnailRelay(self)
        self._relay.loaded.connect(self._on_thumbnail)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)

    # ------------------------------------------------------------------ state
    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def exhausted(self) -> bool:
        """True once the worker returned a short page: every matching row is loaded."""
        return self._exhausted

    @property
    def loading(self) -> bool:
        return self._pending is not None

    def row_data(self, row: int) -> dict:
        return self._rows[row]

    def reset(self, filter_text: str | None = None, active: bool | None = None) -> None:
        """Forget all rows (new index or new filter) and ask for the first page when active."""
        self.beginResetModel()
        if filter_text is not None:
            self._filter = filter_text
        if active is not None:
            self._active = active
        self._rows = []
        self._row_of = {}
        self._pending = None
        self._exhausted = False
        self._generation += 1
        self._thumbs.clear()
        self._thumb_queue.clear()
        self._pool.clear()
        self.endResetModel()
        if self.canFetchMore(QModelIndex()):
            self.fetchMore(QModelIndex())

    def shutdown(self) -> None:
        """Drop queued thumbnail work and wait for the one being decoded (at most one file)."""
        self._thumb_timer.stop()
        self._pool.clear()
        self._pool.waitForDone()

    # ------------------------------------------------------------------ lazy loading
    def canFetchMore(self, parent: QModelIndex = QModelIndex()) -> bool:  # noqa: N802 - Qt API
        return not parent.isValid() and self._active and not self._exhausted and self._pending is None

    def fetchMore(self, parent: QModelIndex = QModelIndex()) -> None:  # noqa: N802 - Qt API
        if not self.canFetchMore(parent):
            return
        self._pending = len(self._rows)
        self.fetchRequested.emit(self._filter, self._pending, PAGE_SIZE)

    def add_page(self, filter_text: str, offset: int, rows: list[dict]) -> bool:
        """Append a page the worker listed; pages for another filter or offset are ignored.

        Returns:
            True when the page was ours and was added.
        """
        if self._pending is None or filter_text != self._filter or offset != self._pending:
            return False
        self._pending = None
        if len(rows) < PAGE_SIZE:
            self._exhausted = True
        if rows:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
            self._rows.extend(rows)
            self._row_of.update((row["id"], first + n) for n, row in enumerate(rows))
            self.endInsertRows()
        self.pageLoaded.emit(len(self._rows))
        return True

    def fetch_failed(self) -> None:
        """The worker could not list rows (no index open): stop asking until the next reset."""
        self._pending = None
        self._exhausted = True

    # ------------------------------------------------------------------ table model
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][1]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        key = COLUMNS[index.column()][0]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return row.get(key) or ""
        if role == Qt.ItemDataRole.DecorationRole and index.column() == 0:
            return self._thumbnail(row)
        return None

    # ------------------------------------------------------------------ thumbnails
    def _thumbnail(self, row: dict) -> QPixmap | None:
        item_id = row["id"]
        if item_id in self._thumbs:
            self._thumbs.move_to_end(item_id)
            return self._thumbs[item_id]
        self._remember_thumbnail(item_id, None)
        if row.get("path"):
            self._thumb_queue.append((item_id, row["path"]))
            self._thumb_timer.start()
        return None

    def _start_thumbnail_job(self) -> None:
        if self._thumb_queue:
            items, self._thumb_queue = self._thumb_queue, []
            self._pool.start(_ThumbnailJob(self._relay, self._generation, items, self.thumbnail_side))

    def _on_thumbnail(self, generation: int, item_id: str, image: QImage) -> None:
        if generation != self._generation or image.isNull():
            return
        self._remember_thumbnail(item_id, QPixmap.fromImage(image))
        row_number = self._row_of.get(item_id)
        if row_number is not None:
            cell = self.index(row_number, 0)
            self.dataChanged.emit(cell, cell, [Qt.ItemDataRole.DecorationRole])

    def _remember_thumbnail(self, item_id: str, pixmap: QPixmap | None) -> None:
        self._thumbs[item_id] = pixmap
        self._thumbs.move_to_end(item_id)
        while len(self._thumbs) > self.thumbnail_cache:
            self._thumbs.popitem(last=False)  # painted again later, it is decoded again

    def thumbnail_size(self) -> QSize:
        return QSize(self.thumbnail_side, self.thumbnail_side)
