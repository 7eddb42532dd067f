"""The catalog browser's full-text index: an FTS5 trigram table over id, description and category.

Optional: a SQLite without FTS5's trigram tokenizer (before 3.34) has none, and the browser
(:mod:`.browse`) then scans the table with LIKE. :class:`TextIndex` is a part of
:class:`~.store.CatalogStore` (it uses the store's ``db`` and ``damage_guard``).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3

log = logging.getLogger(__name__)

#: The catalog browser's full-text index (trigram: any substring of 3 or more characters).
_TEXT_INDEX = """
CREATE VIRTUAL TABLE IF NOT EXISTS items_text USING fts5(
    id, description, category, content='items', content_rowid='row', tokenize='trigram');
"""
_SEALED = "WHEN EXISTS (SELECT 1 FROM settings WHERE key = 'content_sha256')"
# Kept up to date row by row once the index is finalised; a build fills it in one go when it
# finalises (cheaper than a trigger per stored row), and the browser scans until then.
_TEXT_INDEX_TRIGGERS = f"""
CREATE TEMP TRIGGER IF NOT EXISTS items_text_inserted AFTER INSERT ON items {_SEALED} BEGIN
    INSERT INTO items_text(rowid, id, description, category) VALUES (new.row, new.id, new.description, new.category);
END;
CREATE TEMP TRIGGER IF NOT EXISTS items_text_deleted AFTER DELETE ON items {_SEALED} BEGIN
    INSERT INTO items_text(items_text, rowid, id, description, category)
    VALUES ('delete', old.row, old.id, old.description, old.category);
END;
CREATE TEMP TRIGGER IF NOT EXISTS items_text_updated AFTER UPDATE OF id, description, category ON items {_SEALED}
BEGIN
    INSERT INTO items_text(items_text, rowid, id, description, category)
    VALUES ('delete', old.row, old.id, old.description, old.category);
    INSERT INTO items_text(rowid, id, description, category) VALUES (new.row, new.id, new.description, new.category);
END;
"""


def text_index_available() -> bool:
    """Whether this SQLite has FTS5 with the trigram tokenizer (3.34 and later, built with FTS5)."""
    if sqlite3.sqlite_version_info < (3, 34, 0):
        return False
    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as db:
            db.execute("CREATE VIRTUAL TABLE t USING fts5(a, tokenize='trigram')")
        return True
    except sqlite3.Error:
        return False


class TextIndex:
    """The text-index part of :class:`~.store.CatalogStore`."""

    db: sqlite3.Connection

    def has_text_index(self) -> bool:
        """Whether this database has the browser's FTS5 table (``items_text``)."""
        with self.damage_guard():
            return self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'items_text'").fetchone() is not None

    def ensure_text_index(self) -> bool:
        """Create (and fill, once) the browser's FTS5 trigram index when this SQLite has one; True if there."""
        if self.has_text_index():
            return True
        if not text_index_available():
            log.info("this SQLite (%s) has no FTS5 trigram tokenizer; the browser's filter scans the table",
                     sqlite3.sqlite_version)
            return False
        with self.db:
            self.db.executescript(_TEXT_INDEX)
            self.refill_text_index()
        self.attach_text_triggers()
        return True

    def attach_text_triggers(self) -> None:
        """This connection's triggers that keep the text index up to date once the index is sealed."""
        self.db.executescript(_TEXT_INDEX_TRIGGERS)

    def refill_text_index(self) -> None:
        """Rebuild the text index from the catalog rows, inside the caller's transaction."""
        self.db.execute("INSERT INTO items_text(items_text) VALUES ('rebuild')")
