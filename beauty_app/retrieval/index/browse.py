"""Paging through the catalog rows of an index for the catalog browser (filter, scroll, jump).

A filter matches the rows whose id, description or category contains it, without case (any
length, taken literally). The matching rows are found in a :class:`~.text_column.TextColumn`, every
row's text in one numpy buffer, read once per database state (about half a second at 500,000 rows)
and then searched in a few milliseconds whatever the number of matches; counting them is the
length of that answer, and a page is read from SQLite by row number. (The FTS5 trigram table the
index keeps took 326 ms to count a filter matching 500,000 rows: it walks every posting.)
Every row served is checked against its chunk's checksum (once per chunk, see :mod:`.integrity`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .schema import _IN_LIST
from .store import CatalogStore
from .text_column import TextColumn


class CatalogBrowser:
    """Pages of catalog rows (without vectors), fast at any depth of a 500,000-row catalog.

    Remembers where the last page ended and whether rows are numbered without gaps, so that the
    next page or a jump costs what a first page costs.
    """

    def __init__(self, store: CatalogStore):
        self._store = store
        self._page_end: tuple[str, int, int] | None = None  # (filter, offset, row) where the last page ended
        self._dense_rows: tuple[tuple, int | None] | None = None  # (database state, first row if rows have no gaps)
        self._text: tuple[tuple, TextColumn] | None = None  # (database state, every row's text)
        self._matches: tuple[tuple, str, np.ndarray] | None = None  # (state, filter, its rows) of the last filter

    def iter_items(self, filter_text: str = "", limit: int | None = None, offset: int = 0,
                   after_row: int | None = None) -> Iterator[dict]:
        """Catalog rows (without vectors) in row order, optionally filtered by description/category/id.

        Each row's dict carries its database ``row``. Paging is by key: pass the last row you got
        as `after_row` and the next page costs the same however deep it is (SQLite's OFFSET walks
        past every skipped row). A plain `offset` that continues the previous page of the same
        filter is turned into such a keyset query too, so the catalog browser's scrolling stays
        fast at the end of a 500,000-row catalog. A filter's pages are cut from the list of its
        matching rows (see the module's docstring), so they cost the same at any depth.
        """
        if filter_text:
            yield from self._filtered_items(filter_text, limit, int(offset), after_row)
            return
        db = self._store.db
        page_offset = int(offset) if after_row is None else None
        if page_offset and self._page_end is not None and self._page_end[1] == page_offset:
            after_row, offset = self._page_end[2], 0  # continue after the last row served
        elif page_offset and (first := self._first_row_if_dense()) is not None:
            after_row, offset = first + page_offset - 1, 0  # a jump: rows are numbered without gaps
        start = -(1 << 62) if after_row is None else int(after_row)
        sql = "SELECT row, id, path, description, category FROM items WHERE row > ? ORDER BY row LIMIT ? OFFSET ?"
        params = [start, -1 if limit is None else int(limit), int(offset)]
        with self._store.damage_guard():
            if limit is None:  # everything: stream it, a few thousand rows at a time
                cursor = db.execute(sql, params)
                while found := cursor.fetchmany(4096):
                    yield from self._checked(found)
                return
            found = db.execute(sql, params).fetchall()
        if page_offset is not None and found:
            self._page_end = ("", page_offset + len(found), found[-1][0])
        yield from self._checked(found)

    def _filtered_items(self, filter_text: str, limit: int | None, offset: int,
                        after_row: int | None) -> Iterator[dict]:
        """The rows matching `filter_text`, read by row number from the list of matching rows."""
        matches = self._matching_rows(filter_text)
        begin = 0 if after_row is None else int(np.searchsorted(matches, int(after_row), side="right"))
        begin += max(0, offset)
        end = len(matches) if limit is None else min(len(matches), begin + max(0, int(limit)))
        for piece in range(begin, end, _IN_LIST):
            wanted = matches[piece:min(end, piece + _IN_LIST)].tolist()
            with self._store.damage_guard():
                found = self._store.db.execute(
                    "SELECT row, id, path, description, category FROM items "
                    f"WHERE row IN ({','.join('?' * len(wanted))}) ORDER BY row", wanted).fetchall()
            yield from self._checked(found)

    def _checked(self, found: list[tuple]) -> Iterator[dict]:
        """Rows as dicts, once their chunks' checksums hold."""
        self._store.verify_rows([r[0] for r in found])
        for row, item_id, path, description, category in found:
            yield {"id": item_id, "path": path, "description": description, "category": category, "row": row}

    def _state(self) -> tuple:
        """What changes whenever a row does (another process's commit, or this connection's revision)."""
        return (self._store.db.execute("PRAGMA data_version").fetchone()[0],
                self._store.settings().get("revision"))

    def prepare_filters(self) -> TextColumn:
        """The rows' text that filters search, read now unless the rows are unchanged since it was read."""
        state = self._state()
        if self._text is None or self._text[0] != state:
            self._text = None  # let the old buffer go before the new one is read
            with self._store.damage_guard():
                self._text = (state, TextColumn.from_db(self._store.db))
        return self._text[1]

    def _matching_rows(self, filter_text: str) -> np.ndarray:
        """Row numbers matching `filter_text`, ascending; the last filter's answer is kept until the rows change."""
        state = self._state()
        if self._matches is not None and self._matches[:2] == (state, filter_text):
            return self._matches[2]
        matches = self.prepare_filters().matching_rows(filter_text)
        self._matches = (state, filter_text, matches)
        return matches

    def _first_row_if_dense(self) -> int | None:
        """The first row number when rows are numbered without gaps (no removals), else None.

        Then the row at any offset is known without SQLite's OFFSET walking past every row before
        it, so the browser's jumps cost what a first page costs. Cached until the database changes.
        """
        db = self._store.db
        state = self._state()
        if self._dense_rows is None or self._dense_rows[0] != state:
            # Three statements: each alone is optimised (min/max read one end of the b-tree, count(*)
            # counts b-tree cells without reading the rows); together they would scan the table.
            first = db.execute("SELECT min(row) FROM items").fetchone()[0]
            last = db.execute("SELECT max(row) FROM items").fetchone()[0]
            count = self._store.count()
            dense = first is not None and last - first + 1 == count
            self._dense_rows = (state, first if dense else None)
        return self._dense_rows[1]

    def count_items(self, filter_text: str = "") -> int:
        """How many rows :meth:`iter_items` lists for `filter_text` (exact; milliseconds at 500,000 rows once read)."""
        if not filter_text:
            return self._store.count()
        return len(self._matching_rows(filter_text))
