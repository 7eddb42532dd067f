"""The catalog browser's table model: a window onto the index's rows, fetched from the worker by page.

The model never touches the index itself. It asks for a page by emitting :attr:`fetchRequested`
(the tab submits an ``ItemsRequest`` job); the worker answers with the page and, for the
first page, how many rows match, so the scroll bar spans the whole catalog and can be dragged to
any row of 500,000. Only the pages shown most recently are kept (:data:`MAX_PAGES`). A row that is
painted before its page is loaded shows "…" and asks for the page; one page is asked for at a
time, the most recently painted first, so dragging the scroll bar queues no backlog on the worker.
Thumbnails are decoded from the catalog image files on a small private thread pool, only for rows
the view actually paints, and the most recently painted :data:`THUMBNAIL_CACHE` are kept.
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
#: Pages kept in memory (10,000 rows), least recently shown dropped first.
MAX_PAGES = 50
#: Pages painted while not loaded that are still fetched, most recent first (older ones were scrolled past).
WANTED_PAGES = 6
#: Thumbnails kept in memory, least recently painted dropped first: about 20 MB of 40-pixel pixmaps,
#: so scrolling through a 500,000-row catalog does not keep 500,000 of them (3 GB).
THUMBNAIL_CACHE = 3000
PLACEHOLDER = "\u2026"
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
    """A window of catalog rows (id, description, category, path) with thumbnails, loaded by page.

    Signals:
        fetchRequested(filter_text, offset, limit): a page is wanted; answer with :meth:`add_page`.
        pageLoaded(total): a page arrived; `total` rows match the filter.
    """

    fetchRequested = Signal(str, int, int)
    pageLoaded = Signal(int)

    def __init__(self, thumbnail_side: int = 40, parent: QObject | None = None):
        super().__init__(parent)
        self._filter = ""
        self._active = False  # True while an index is open
        self._total: int | None = None  # rows matching the filter; None until the first page came
        self._pages: OrderedDict[int, list[dict]] = OrderedDict()  # page number -> rows, least recent first
        self._wanted: OrderedDict[int, None] = OrderedDict()  # painted, not loaded; most recent last
        self._pending: int | None = None  # page asked for and not yet answered
        self._failed = False
        self._row_of: dict[str, int] = {}  # item id -> row of the loaded pages, to repaint a thumbnail cell
        self._request_timer = QTimer(self)
        self._request_timer.setSingleShot(True)
        self._request_timer.setInterval(0)  # after the paint: the rows it showed are all wanted by then
        self._request_timer.timeout.connect(self._request_next)
        self.max_pages = MAX_PAGES
        self._generation = 0
        self.thumbnail_side = thumbnail_side
        self._thumbs: OrderedDict[str, QPixmap | None] = OrderedDict()  # None: asked for, or unreadable
        self.thumbnail_cache = THUMBNAIL_CACHE
        self._thumb_queue: list[tuple[str, str]] = []
        self._thumb_timer = QTimer(self)
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.setInterval(0)  # gathers the rows of one paint into one job
        self._thumb_timer.timeout.connect(self._start_thumbnail_job)
        # The pool is created before the relay its jobs emit through: children are destroyed in the order
        # they were made, so the pool's destructor (which waits for a running job) runs while the relay lives.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._relay = _ThumbnailRelay(self)
        self._relay.loaded.connect(self._on_thumbnail)
        self._closed = False

    # ------------------------------------------------------------------ state
    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def total(self) -> int | None:
        """Rows matching the filter (None until the worker counted them)."""
        return self._total

    @property
    def loading(self) -> bool:
        return self._pending is not None

    def loaded_pages(self) -> list[int]:
        """Page numbers held in memory, least recently shown first."""
        return list(self._pages)

    def row_data(self, row: int) -> dict | None:
        """The row's fields, or None while its page is not loaded (painting the row asks for it)."""
        page, position = divmod(row, PAGE_SIZE)
        rows = self._pages.get(page)
        return rows[position] if rows is not None and position < len(rows) else None

    def reset(self, filter_text: str | None = None, active: bool | None = None) -> None:
        """Forget all rows (new index or new filter) and ask for the first page when active."""
        self.beginResetModel()
        if filter_text is not None:
            self._filter = filter_text
        if active is not None:
            self._active = active
        self._total = None
        self._pages.clear()
        self._wanted.clear()
        self._row_of = {}
        self._pending = None
        self._failed = False
        self._generation += 1
        self._thumbs.clear()
        self._thumb_queue.clear()
        self._pool.clear()
        self.endResetModel()
        if self._active:
            self._want(0)
            self._request_next()

    def shutdown(self) -> None:
        """Drop queued thumbnail work, wait for the one being decoded (at most one file), end the pool's thread."""
        self._closed = True
        self._request_timer.stop()
        self._thumb_timer.stop()
        self._pool.clear()
        self._pool.waitForDone()  # also removes the pool's idle thread

    # ------------------------------------------------------------------ paging
    def _want(self, page: int) -> None:
        if page in self._pages or self._failed or not self._active:
            return
        self._wanted[page] = None
        self._wanted.move_to_end(page)
        while len(self._wanted) > WANTED_PAGES:
            self._wanted.popitem(last=False)
        if self._pending is None:
            self._request_timer.start()

    def _request_next(self) -> None:
        while self._pending is None and self._wanted and self._active and not self._failed:
            page, _ = self._wanted.popitem(last=True)
            if page not in self._pages:
                self._pending = page
                self.fetchRequested.emit(self._filter, page * PAGE_SIZE, PAGE_SIZE)

    def add_page(self, filter_text: str, offset: int, rows: list[dict], total: int | None = None) -> bool:
        """Store a page the worker listed; answers for another filter or page are ignored.

        Args:
            total: rows matching the filter, counted with the first page.

        Returns:
            True when the page was ours and was stored.
        """
        if self._pending is None or filter_text != self._filter or offset != self._pending * PAGE_SIZE:
            return False
        page, self._pending = self._pending, None
        if self._total is None:
            count = total if total is not None else offset + len(rows)
            if count > 0:
                self.beginInsertRows(QModelIndex(), 0, count - 1)
                self._total = count
                self.endInsertRows()
            else:
                self._total = 0
        self._pages[page] = rows
        self._row_of.update((row["id"], offset + n) for n, row in enumerate(rows))
        while len(self._pages) > self.max_pages:
            _, dropped = self._pages.popitem(last=False)
            for row in dropped:
                self._row_of.pop(row["id"], None)
        last = min(offset + len(rows), self._total) - 1
        if last >= offset:
            self.dataChanged.emit(self.index(offset, 0), self.index(last, len(COLUMNS) - 1))
        self.pageLoaded.emit(self._total)
        self._request_next()
        return True

    def fetch_failed(self) -> None:
        """The worker could not list rows (no index open): stop asking until the next reset."""
        self._pending = None
        self._failed = True
        self._wanted.clear()

    # ------------------------------------------------------------------ table model
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() or self._total is None else self._total

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][1]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= self.rowCount():
            return None
        page, position = divmod(index.row(), PAGE_SIZE)
        rows = self._pages.get(page)
        if rows is None:
            self._want(page)
            if role == Qt.ItemDataRole.DisplayRole and index.column() == 0:
                return PLACEHOLDER
            return None
        self._pages.move_to_end(page)
        if position >= len(rows):  # the catalog shrank since it was counted
            return None
        row = rows[position]
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
        if self._thumb_queue and not self._closed:
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
