"""Paging through the catalog rows of an index for the catalog browser (filter, scroll, jump).

A filter of three or more characters is answered by the index's FTS5 trigram table
(``items_text``: any substring of id, description or category, without case), so counting its
matches and paging through them read the matching rows only; shorter filters, an unfinished build
(the table is filled when the build is finalised) and indexes without that table (an old index on
read-only media, a SQLite without FTS5), scan the table with LIKE.
Every row served is checked against its chunk's checksum (once per chunk, see :mod:`.integrity`).
"""

from __future__ import annotations

from collections.abc import Iterator

from .store import CatalogStore


class CatalogBrowser:
    """Pages of catalog rows (without vectors), fast at any depth of a 500,000-row catalog.

    Remembers where the last page ended and whether rows are numbered without gaps, so that the
    next page or a jump costs what a first page costs.
    """

    def __init__(self, store: CatalogStore):
        self._store = store
        self._page_end: tuple[str, int, int] | None = None  # (filter, offset, row) where the last page ended
        self._dense_rows: tuple[tuple, int | None] | None = None  # (database state, first row if rows have no gaps)
        self._has_text_index: bool | None = None

    def iter_items(self, filter_text: str = "", limit: int | None = None, offset: int = 0,
                   after_row: int | None = None) -> Iterator[dict]:
        """Catalog rows (without vectors) in row order, optionally filtered by description/category/id.

        Each row's dict carries its database ``row``. Paging is by key: pass the last row you got
        as `after_row` and the next page costs the same however deep it is (SQLite's OFFSET walks
        past every skipped row). A plain `offset` that continues the previous page of the same
        filter is turned into such a keyset query too, so the catalog browser's scrolling stays
        fast at the end of a 500,000-row catalog.
        """
        db = self._store.db
        page_offset = int(offset) if after_row is None else None
        if page_offset and self._page_end is not None and self._page_end[:2] == (filter_text, page_offset):
            after_row, offset = self._page_end[2], 0  # continue after the last row served
        elif page_offset and not filter_text and (first := self._first_row_if_dense()) is not None:
            after_row, offset = first + page_offset - 1, 0  # a jump: rows are numbered without gaps
        start = -(1 << 62) if after_row is None else int(after_row)
        phrase = self._phrase(filter_text)
        if phrase is not None:  # the trigram index, in row order from `start`
            sql = ("SELECT i.row, i.id, i.path, i.description, i.category FROM items_text t JOIN items i "
                   "ON i.row = t.rowid WHERE items_text MATCH ? AND t.rowid > ? ORDER BY t.rowid LIMIT ? OFFSET ?")
            params: list = [phrase, start]
        else:
            sql = "SELECT row, id, path, description, category FROM items WHERE row > ?"
            params = [start]
            if filter_text:
                sql += " AND (id LIKE ? OR description LIKE ? OR category LIKE ?)"
                params += [f"%{filter_text}%"] * 3
            sql += " ORDER BY row LIMIT ? OFFSET ?"
        params += [-1 if limit is None else int(limit), int(offset)]
        with self._store.damage_guard():
            if limit is None:  # everything: stream it, a few thousand rows at a time
                cursor = db.execute(sql, params)
                while found := cursor.fetchmany(4096):
                    self._store.verify_rows([r[0] for r in found])
                    for row, item_id, path, description, category in found:
                        yield {"id": item_id, "path": path, "description": description, "category": category,
                               "row": row}
                return
            found = db.execute(sql, params).fetchall()
        self._store.verify_rows([r[0] for r in found])
        if page_offset is not None and found:
            self._page_end = (filter_text, page_offset + len(found), found[-1][0])
        for row, item_id, path, description, category in found:
            yield {"id": item_id, "path": path, "description": description, "category": category, "row": row}

    def _phrase(self, filter_text: str) -> str | None:
        """The FTS5 query for `filter_text` when the trigram index can answer it, else None."""
        if len(filter_text) < 3:
            return None
        if self._has_text_index is None:
            self._has_text_index = self._store.has_text_index()
        # Until a build is finalised the text index is not filled (see store._TEXT_INDEX_TRIGGERS).
        current = self._has_text_index and self._store.sealed
        return '"' + filter_text.replace('"', '""') + '"' if current else None

    def _first_row_if_dense(self) -> int | None:
        """The first row number when rows are numbered without gaps (no removals), else None.

        Then the row at any offset is known without SQLite's OFFSET walking past every row before
        it, so the browser's jumps cost what a first page costs. Cached until the database changes.
        """
        db = self._store.db
        state = (db.execute("PRAGMA data_version").fetchone()[0], self._store.settings().get("revision"))
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
        """How many rows :meth:`iter_items` lists for `filter_text` (the trigram index counts a filter's matches)."""
        if not filter_text:
            return self._store.count()
        phrase = self._phrase(filter_text)
        with self._store.damage_guard():
            if phrase is not None:
                return int(self._store.db.execute("SELECT count(*) FROM items_text WHERE items_text MATCH ?",
                                                  (phrase,)).fetchone()[0])
            pattern = f"%{filter_text}%"
            return int(self._store.db.execute(
                "SELECT count(*) FROM items WHERE id LIKE ? OR description LIKE ? OR category LIKE ?",
                (pattern, pattern, pattern)).fetchone()[0])
