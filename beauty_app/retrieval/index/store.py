"""The SQLite database of an index directory: catalog rows and vectors, staging, settings, checksums.

The database is the source of truth and every change to it is one SQLite transaction, so a
killed build or `catalog add` leaves either the old or the new state, never a mix.

Checksums (format 2): catalog rows are grouped in fixed chunks by row number (``chunk_rows``,
256). Each chunk has a SHA-256 per column (ids and row numbers, paths, descriptions, categories,
vectors) in ``chunk_digests``, and each comparison pooling a SHA-256 per chunk in
``alt_chunk_digests``. The ``integrity`` setting holds a SHA-256 of every other setting, of each
blob (the whitening), of the skipped list and of both digest tables; ``content_sha256`` is the
SHA-256 of that record. Opening an index checks the record (cheap: no row is read), so an edited
setting, blob, skip list or digest table is refused at once and named. Rows are checked against
their chunk's digests when they are read (search hits, the browser's pages, vectors for query
expansion, comparisons and rebuilds) and all of them by `catalog verify`. Every write transaction
of a finalised ("sealed") index rehashes only the chunks it touched (:meth:`CatalogStore.writing`),
after checking those chunks as they were, so an edit is never taken into a new checksum.

Nothing here knows faiss; vectors leave this module as numpy arrays, read a chunk at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import IndexStoreError
from .whitening import normalize

log = logging.getLogger(__name__)

DB_NAME = "catalog.sqlite"
#: 2: per-chunk checksums and the integrity record. 1: one checksum over every row (upgraded on open).
FORMAT_VERSION = 2
LEGACY_FORMAT_VERSION = 1
#: Rows per checksum chunk of a new index (recorded as the ``chunk_rows`` setting; the unit of reading).
#: Small enough that checking the chunk of a search hit reads little (a hit costs its chunk once per open).
CHUNK_ROWS = 256
#: Settings that change what the stored vectors mean (a resumed build must keep them; format 1's checksum).
_CHECKED_SETTINGS = ("model_fingerprint", "pooling", "dim", "scales", "input_size")
#: Settings the integrity record itself consists of (not hashed into it).
_RECORD_SETTINGS = ("content_sha256", "integrity")
#: SQLite refuses statements with more bound parameters than this (999 in older builds).
_IN_LIST = 900
#: Per-chunk digests of the catalog rows, and what an edit of each means to a reader.
_TEXT_COLUMNS = ("ids", "paths", "descriptions", "categories")
_DIGEST_COLUMNS = (*_TEXT_COLUMNS, "vectors")
_EDITED = {"ids": "ids or row numbers (rows were added, removed or renumbered)", "paths": "image paths",
           "descriptions": "descriptions", "categories": "categories", "vectors": "stored vectors"}
_FIX = "rebuild it with `catalog build`"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT '',
    vector BLOB NOT NULL,
    thumbnail BLOB
);
CREATE TABLE IF NOT EXISTS staged (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT '',
    vector BLOB NOT NULL,
    thumbnail BLOB
);
CREATE TABLE IF NOT EXISTS alt_vectors (
    pooling TEXT NOT NULL,
    id TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (pooling, id)
);
CREATE TABLE IF NOT EXISTS skipped (
    item TEXT PRIMARY KEY,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS staged_alt_vectors (
    pooling TEXT NOT NULL,
    id TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (pooling, id)
);
CREATE TABLE IF NOT EXISTS staged_skipped (
    item TEXT PRIMARY KEY,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shard_positions (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chunk_digests (
    chunk INTEGER PRIMARY KEY,
    rows INTEGER NOT NULL,
    ids TEXT NOT NULL,
    paths TEXT NOT NULL,
    descriptions TEXT NOT NULL,
    categories TEXT NOT NULL,
    vectors TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alt_chunk_digests (
    pooling TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (pooling, chunk)
);
CREATE TABLE IF NOT EXISTS structure_changes (
    row INTEGER PRIMARY KEY,
    was_present INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dirty_chunks (
    chunk INTEGER PRIMARY KEY
);
"""

#: Per-connection triggers of a writer. Once an index is sealed (has content_sha256), every row
#: change marks its chunk for rehashing (in the same transaction) and notes the row for the search
#: structure's in-place update (was_present: the row was in the structure last written).
_TRACKING_TRIGGERS = """
CREATE TEMP TRIGGER IF NOT EXISTS items_inserted AFTER INSERT ON items
WHEN EXISTS (SELECT 1 FROM settings WHERE key = 'content_sha256') BEGIN
    {note_new}
END;
CREATE TEMP TRIGGER IF NOT EXISTS items_updated AFTER UPDATE ON items
WHEN EXISTS (SELECT 1 FROM settings WHERE key = 'content_sha256') BEGIN
    {note_old}
    {note_new}
END;
CREATE TEMP TRIGGER IF NOT EXISTS items_deleted AFTER DELETE ON items
WHEN EXISTS (SELECT 1 FROM settings WHERE key = 'content_sha256') BEGIN
    {note_old}
END;
"""
# "INSERT ... WHERE NOT EXISTS" rather than INSERT OR IGNORE: an UPSERT that fires a trigger
# imposes its own conflict policy on the trigger's statements.
_NOTE_ROW = """
    INSERT INTO structure_changes(row, was_present) SELECT {row}, {present}
        WHERE NOT EXISTS (SELECT 1 FROM structure_changes WHERE row = {row});
    INSERT INTO dirty_chunks(chunk) SELECT {row} / {{chunk}}
        WHERE NOT EXISTS (SELECT 1 FROM dirty_chunks WHERE chunk = {row} / {{chunk}});"""
_TRACKING_TRIGGERS = _TRACKING_TRIGGERS.replace("{note_new}", _NOTE_ROW.format(row="new.row", present=0)).replace(
    "{note_old}", _NOTE_ROW.format(row="old.row", present=1))

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


def _feed(digest, value) -> None:
    data = value if isinstance(value, bytes) else repr(value).encode()
    digest.update(len(data).to_bytes(8, "little"))  # length-prefixed: fields cannot run together
    digest.update(data)


def _sha(*values) -> str:
    digest = hashlib.sha256()
    for value in values:
        _feed(digest, value)
    return digest.hexdigest()


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _chunk_digests(found: Sequence[tuple], with_vectors: bool = True) -> dict[str, str]:
    """Per-column SHA-256 of a chunk's rows: (row, id, path, description, category[, vector]) tuples."""
    digests = {name: hashlib.sha256() for name in (_DIGEST_COLUMNS if with_vectors else _TEXT_COLUMNS)}
    for row in found:
        _feed(digests["ids"], row[0])
        _feed(digests["ids"], row[1])
        _feed(digests["paths"], row[2])
        _feed(digests["descriptions"], row[3])
        _feed(digests["categories"], row[4])
        if with_vectors:
            _feed(digests["vectors"], row[5])
    return {name: digest.hexdigest() for name, digest in digests.items()}


def _alt_chunk_digest(found: Iterable[tuple]) -> str:
    """SHA-256 of one pooling's vectors in one chunk: (row, id, vector) tuples in row order."""
    digest = hashlib.sha256()
    for row, item_id, vector in found:
        _feed(digest, row)
        _feed(digest, str(item_id).encode())
        _feed(digest, vector)
    return digest.hexdigest()


@dataclass
class ItemRecord:
    """A catalog row to store: identity, text and its feature vector (+ optional thumbnail JPEG)."""

    id: str
    path: str
    description: str
    category: str
    vector: np.ndarray
    thumbnail: bytes | None = None
    extra: dict[str, np.ndarray] | None = None  # vectors of other poolings, for ranking comparisons
    position: int | None = None  # row of the catalog (shards of a distributed build record it for the merge)


def _parts(ids: Sequence, size: int = _IN_LIST) -> Iterator[tuple[list, str]]:
    """`ids` in parts small enough to bind, each with its ``?,?,...`` placeholder list."""
    for start in range(0, len(ids), size):
        part = list(ids[start:start + size])
        yield part, ",".join("?" * len(part))


class CatalogStore:
    """The rows, vectors and settings of one index database (the connection is the caller's to close)."""

    def __init__(self, directory: Path, connection: sqlite3.Connection, writable: bool = True):
        self.directory = directory
        self.db = connection
        self.writable = writable
        self._row_cache: np.ndarray | None = None
        self._settings_cache: tuple[int, dict] | None = None
        self._verified: set[tuple] = set()  # (chunk, "text" | "vectors" | pooling) checked on this connection
        self._depth = 0  # nesting of writing()
        self._defer_checks = False  # a full pass that checks every chunk itself is running
        self._pooling_list: list[str] | None = None  # comparison poolings whose chunks have digests

    @staticmethod
    def connect(path: Path, readonly: bool = False, immutable: bool = False) -> sqlite3.Connection:
        """Open the database file (read-only, or in WAL mode with full syncs for writing).

        `immutable` opens a file on read-only media: SQLite then takes no locks and needs no
        ``-shm`` file (which it could not create there).
        """
        try:
            if immutable:
                db = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True, check_same_thread=False)
            elif readonly:
                db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            else:
                db = sqlite3.connect(path, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except (sqlite3.DatabaseError, ValueError) as exc:  # ValueError: text that is not UTF-8
            raise IndexStoreError(
                f"The index database {path} cannot be read ({exc}); rebuild it with `catalog build`."
            ) from None
        return db

    def ensure_schema(self) -> None:
        """Create the tables that are missing (all of them, or those added since the index was made),
        and this connection's triggers that keep checksums and the browser's text index up to date."""
        with self.db:
            self.db.executescript(_SCHEMA)
        chunk = int(self.settings().get("chunk_rows") or CHUNK_ROWS)
        self.db.executescript(_TRACKING_TRIGGERS.format(chunk=chunk))
        if self.has_text_index():
            self.db.executescript(_TEXT_INDEX_TRIGGERS)

    def check_integrity(self) -> None:
        """Refuse a database file that SQLite itself finds damaged (reads every page: `catalog verify`)."""
        try:
            ok = self.db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(
                f"The index database in {self.directory} is damaged ({exc}); rebuild it with `catalog build`."
            ) from None
        if ok != "ok":
            raise IndexStoreError(
                f"The index database in {self.directory} is damaged; rebuild it with `catalog build`.")

    # ----------------------------------------------------------------- the browser's text index
    def has_text_index(self) -> bool:
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
            self.db.execute("INSERT INTO items_text(items_text) VALUES ('rebuild')")
        self.db.executescript(_TEXT_INDEX_TRIGGERS)
        return True

    # ----------------------------------------------------------------- settings
    def settings(self) -> dict:
        try:
            # Parsed once per database state: the checks below read settings for every chunk.
            version = self.db.execute("PRAGMA data_version").fetchone()[0] if not self.db.in_transaction else None
            if version is not None and self._settings_cache is not None and self._settings_cache[0] == version:
                return dict(self._settings_cache[1])
            rows = self.db.execute("SELECT key, value FROM settings").fetchall()
            parsed = {key: json.loads(value) for key, value in rows}
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            raise IndexStoreError(f"The index database in {self.directory} is damaged ({exc}); rebuild it.") from None
        self._settings_cache = None if version is None else (version, parsed)
        return dict(parsed)

    def write_settings(self, values: dict) -> None:
        """Record settings inside the caller's transaction."""
        self._settings_cache = None
        self.db.executemany(
            "INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [(key, json.dumps(value)) for key, value in values.items()],
        )

    def update_settings(self, values: dict) -> None:
        """Record settings in a transaction of their own."""
        with self.writing():
            self.write_settings(values)

    @staticmethod
    def check_compatible(existing: dict, wanted: dict) -> None:
        """Refuse to continue an unfinished index with settings that change what its vectors mean."""
        for key in _CHECKED_SETTINGS:
            if key in wanted and key in existing and existing[key] != wanted[key]:
                raise IndexStoreError(
                    f"The index was started with a different {key.replace('_', ' ')} ({existing[key]} vs "
                    f"{wanted[key]}); use a new output folder or the same settings."
                )

    def bump_revision(self) -> None:
        """Note that the stored rows changed (the faiss file of the old revision is now stale)."""
        revision = int(self.settings().get("revision", 0)) + 1
        self.write_settings({"revision": revision})

    def whitening_blob(self) -> bytes | None:
        with self.damage_guard():
            row = self.db.execute("SELECT value FROM blobs WHERE key = 'whitening'").fetchone()
        return row[0] if row else None

    def set_whitening_blob(self, data: bytes | None) -> None:
        """Store (None: remove) the whitening inside the caller's transaction."""
        if data is None:
            self.db.execute("DELETE FROM blobs WHERE key = 'whitening'")
        else:
            self.db.execute("INSERT INTO blobs(key, value) VALUES('whitening', ?) "
                            "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (data,))

    # ----------------------------------------------------------------- transactions of a sealed index
    @property
    def sealed(self) -> bool:
        """Whether the index has per-chunk checksums to keep (finalised in format 2)."""
        settings = self.settings()
        return "content_sha256" in settings and settings.get("format_version") == FORMAT_VERSION

    @property
    def chunk_rows(self) -> int:
        return int(self.settings().get("chunk_rows") or CHUNK_ROWS)

    def refuse_if_read_only(self) -> None:
        if not self.writable:
            raise IndexStoreError(
                f"The index in {self.directory} is opened read-only (read-only media or no write permission); "
                f"copy it to a writable folder to change it.")

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """One write transaction; a sealed index's checksums are brought up to date before it commits.

        Only the chunks whose rows changed are rehashed (the tracking triggers list them), so a
        change costs what it touches, not the size of the catalog. Nested uses join the outer one.
        """
        self.refuse_if_read_only()
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self.db:
                yield
                self._reseal()
        finally:
            self._depth = 0
            self._settings_cache = None
            self._row_cache = None

    def _reseal(self) -> None:
        if not self.sealed:
            return
        dirty = [r[0] for r in self.db.execute("SELECT chunk FROM dirty_chunks ORDER BY chunk")]
        for chunk in dirty:
            self._write_chunk_digests(chunk)
        self.db.execute("DELETE FROM dirty_chunks")
        self.write_integrity()

    def _check_before_change(self, ids: Sequence[str] = (), appends: bool = True) -> None:
        """Check the chunks a change will touch as they are now, so that an edit is never rehashed into a checksum."""
        if not self.sealed or self._defer_checks:
            return
        rows: list[int] = []
        for part, marks in _parts(list(ids)):
            rows += [r[0] for r in self.db.execute(f"SELECT row FROM items WHERE id IN ({marks})", part)]
        if appends:
            last = self.db.execute("SELECT max(row) FROM items").fetchone()[0]
            if last is not None:
                rows.append(int(last))
        self.verify_rows(rows, vectors=True, comparisons=True)

    # ----------------------------------------------------------------- writing rows
    def known_items(self) -> set[str]:
        """Ids already stored or already skipped (a resumed build does not redo them); all of them at once."""
        stored = {row[0] for row in self.db.execute("SELECT id FROM items")}
        return stored | {row[0] for row in self.db.execute("SELECT item FROM skipped")}

    def known_among(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are already stored or skipped: :meth:`known_items` for one chunk of a catalog."""
        found: set[str] = set()
        for part, marks in _parts(ids):
            found.update(r[0] for r in self.db.execute(f"SELECT id FROM items WHERE id IN ({marks})", part))
            found.update(r[0] for r in self.db.execute(f"SELECT item FROM skipped WHERE item IN ({marks})", part))
        return found

    def stored_paths(self, ids: Sequence[str]) -> dict[str, str]:
        """Id -> image path of those `ids` stored in the catalog or staged by an unfinished `catalog add`."""
        found: dict[str, str] = {}
        for part, marks in _parts(ids):
            found.update(self.db.execute(f"SELECT id, path FROM items WHERE id IN ({marks})", part).fetchall())
            found.update(self.db.execute(f"SELECT id, path FROM staged WHERE id IN ({marks})", part).fetchall())
        return found

    def add_items(self, records: Sequence[ItemRecord], skipped: Iterable[tuple[str, str]] = (),
                  staged: bool = False) -> None:
        """Store one batch of vectors and skip reasons in a single transaction (see CatalogIndex.add_items)."""
        dim = self.settings().get("dim")
        # A staged add touches none of the tables searches read (or their checksums) before commit_staged.
        table, alt_table, skipped_table = (("staged", "staged_alt_vectors", "staged_skipped") if staged
                                           else ("items", "alt_vectors", "skipped"))
        with self.writing():
            if not staged and records:
                self._check_before_change([record.id for record in records])
            for record in records:
                vector = np.ascontiguousarray(record.vector, dtype=np.float32).reshape(-1)
                if dim is not None and vector.shape[0] != dim:
                    raise IndexStoreError(f"Vector of dimension {vector.shape[0]} does not fit this {dim}-d index.")
                self.db.execute(
                    f"INSERT INTO {table}(id, path, description, category, vector, thumbnail) VALUES(?,?,?,?,?,?) "
                    "ON CONFLICT(id) DO UPDATE SET path=excluded.path, description=excluded.description, "
                    "category=excluded.category, vector=excluded.vector, thumbnail=excluded.thumbnail",
                    (record.id, record.path, record.description, record.category, vector.tobytes(), record.thumbnail),
                )
                if record.position is not None:
                    self.db.execute(
                        "INSERT INTO shard_positions(id, position) VALUES(?, ?) "
                        "ON CONFLICT(id) DO UPDATE SET position=excluded.position", (record.id, int(record.position)))
                for pooling, extra in (record.extra or {}).items():
                    self.db.execute(
                        f"INSERT INTO {alt_table}(pooling, id, vector) VALUES(?,?,?) "
                        "ON CONFLICT(pooling, id) DO UPDATE SET vector=excluded.vector",
                        (pooling, record.id, np.ascontiguousarray(extra, dtype=np.float32).tobytes()))
            self.db.executemany(f"DELETE FROM {skipped_table} WHERE item = ?", [(r.id,) for r in records])
            if not staged:
                self.bump_revision()
            self.db.executemany(
                f"INSERT INTO {skipped_table}(item, reason) VALUES(?, ?) "
                "ON CONFLICT(item) DO UPDATE SET reason=excluded.reason",
                list(skipped),
            )

    def positioned_rows(self, chunk: int = 1024) -> Iterator[tuple]:
        """A shard's rows in catalog order, read a chunk at a time.

        Yields (catalog position, id, path, description, category, vector bytes, thumbnail).
        """
        last = -1
        while True:
            found = self.db.execute(
                "SELECT p.position, i.id, i.path, i.description, i.category, i.vector, i.thumbnail FROM "
                "shard_positions p JOIN items i ON i.id = p.id WHERE p.position > ? ORDER BY p.position LIMIT ?",
                (last, chunk)).fetchall()
            if not found:
                return
            yield from found
            last = found[-1][0]

    def staged_items(self) -> dict[str, str]:
        """Id -> path of records staged by an unfinished `catalog add`."""
        return dict(self.db.execute("SELECT id, path FROM staged").fetchall())

    def commit_staged(self) -> int:
        """Move staged records into the catalog in one transaction; returns how many."""
        with self.writing():
            moved = int(self.db.execute("SELECT count(*) FROM staged").fetchone()[0])
            self._check_before_change([r[0] for r in self.db.execute("SELECT id FROM staged")])
            self.db.execute(
                "INSERT INTO items(id, path, description, category, vector, thumbnail) "
                "SELECT id, path, description, category, vector, thumbnail FROM staged WHERE true "
                "ON CONFLICT(id) DO UPDATE SET path=excluded.path, description=excluded.description, "
                "category=excluded.category, vector=excluded.vector, thumbnail=excluded.thumbnail")
            self.db.execute(
                "INSERT INTO alt_vectors(pooling, id, vector) SELECT pooling, id, vector FROM staged_alt_vectors "
                "WHERE true ON CONFLICT(pooling, id) DO UPDATE SET vector=excluded.vector")
            self.db.execute(
                "INSERT INTO skipped(item, reason) SELECT item, reason FROM staged_skipped WHERE true "
                "ON CONFLICT(item) DO UPDATE SET reason=excluded.reason")
            self.db.execute("DELETE FROM skipped WHERE item IN (SELECT id FROM staged)")
            for table in ("staged", "staged_alt_vectors", "staged_skipped"):
                self.db.execute(f"DELETE FROM {table}")
            self.bump_revision()
        return moved

    def remove_items(self, ids: Iterable[str]) -> int:
        """Delete catalog rows by id; returns how many existed."""
        ids = list(ids)
        with self.writing():
            self._check_before_change(ids, appends=False)
            before = self.count()
            self.db.executemany("DELETE FROM items WHERE id = ?", [(item,) for item in ids])
            self.db.executemany("DELETE FROM alt_vectors WHERE id = ?", [(item,) for item in ids])
            removed = before - self.count()
            self.bump_revision()
        return removed

    # ----------------------------------------------------------------- reading rows
    def count(self) -> int:
        with self.damage_guard():
            return int(self.db.execute("SELECT count(*) FROM items").fetchone()[0])

    def skipped(self) -> list[tuple[str, str]]:
        with self.damage_guard():
            return [tuple(row) for row in self.db.execute("SELECT item, reason FROM skipped ORDER BY item")]

    def rows(self) -> np.ndarray:
        """Database row numbers in row order: position i of the search structure is row rows()[i]."""
        if self._row_cache is None:
            with self.damage_guard():
                # Read from the small id index (no ORDER BY lets SQLite take it) and sorted here:
                # the table itself spreads its rows over the vectors' pages.
                rows = np.fromiter((r[0] for r in self.db.execute("SELECT row FROM items")), dtype=np.int64)
            rows.sort()
            self._row_cache = rows
        return self._row_cache

    def forget_rows(self) -> None:
        """Drop the cached :meth:`rows` (the catalog is being rebuilt into a new structure)."""
        self._row_cache = None

    def records(self, rows: Sequence[int]) -> dict[int, tuple]:
        """Row -> (id, path, description, category) for the given database rows (their chunks checked)."""
        if not rows:
            return {}
        self.verify_rows(rows)
        with self.damage_guard():
            found = self.db.execute(
                f"SELECT row, id, path, description, category FROM items WHERE row IN ({','.join('?' * len(rows))})",
                list(rows)).fetchall()
        return {r[0]: r[1:] for r in found}

    def thumbnail(self, item_id: str) -> bytes | None:
        row = self.db.execute("SELECT thumbnail FROM items WHERE id = ?", (item_id,)).fetchone()
        return row[0] if row else None

    def _chunk_bounds(self, chunk: int) -> tuple[int, int]:
        size = self.chunk_rows
        return chunk * size, (chunk + 1) * size

    def _chunk_items(self, chunk: int, columns: str) -> list[tuple]:
        low, high = self._chunk_bounds(chunk)
        return self.db.execute(f"SELECT {columns} FROM items WHERE row >= ? AND row < ? ORDER BY row",
                               (low, high)).fetchall()

    def chunks(self) -> Iterator[int]:
        """Numbers of the chunks that hold catalog rows, in row order (one index seek per chunk)."""
        size = self.chunk_rows
        start = -(1 << 62)
        while True:
            first = self.db.execute("SELECT min(row) FROM items WHERE row >= ?", (start,)).fetchone()[0]
            if first is None:
                return
            chunk = int(first) // size
            yield chunk
            start = (chunk + 1) * size

    def _item_chunks(self, columns: str = "row, vector") -> Iterator[list[tuple]]:
        """Catalog rows in row order, one checksum chunk at a time (each read costs the same)."""
        for chunk in self.chunks():
            found = self._chunk_items(chunk, columns)
            if found:
                yield found

    def _decode_vectors(self, blobs: Sequence[bytes]) -> np.ndarray:
        dim = int(self.settings()["dim"])
        if not blobs:
            return np.zeros((0, dim), np.float32)
        return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)

    def vector_chunks(self) -> Iterator[tuple[list[int], np.ndarray]]:
        """(rows, raw vectors) of the catalog in row order, a chunk at a time, each checked against its digest."""
        check = self.sealed and not self._defer_checks
        with self.damage_guard():
            for chunk in self.chunks():
                columns = "row, id, path, description, category, vector" if check else "row, vector"
                found = self._chunk_items(chunk, columns)
                if check and (chunk, "vectors") not in self._verified:
                    self._compare_chunk(chunk, found, ("ids", "vectors"))
                    self._verified.add((chunk, "vectors"))
                yield [r[0] for r in found], self._decode_vectors([r[-1] for r in found])

    def raw_vectors_at(self, rows: Sequence[int]) -> np.ndarray:
        """Stored vectors of the given database rows, in that order (their chunks checked)."""
        rows = [int(r) for r in rows]
        self.verify_rows(rows, vectors=True)
        lookup: dict[int, bytes] = {}
        with self.damage_guard():
            for part, marks in _parts(rows):
                lookup.update(self.db.execute(f"SELECT row, vector FROM items WHERE row IN ({marks})", part).fetchall())
        return self._decode_vectors([lookup[r] for r in rows])

    def raw_vectors(self, ids: Sequence[str] | None = None) -> np.ndarray:
        """Stored (unwhitened) vectors in row order, or for the given ids in that order (all at once)."""
        dim = int(self.settings()["dim"])
        if ids is None:
            chunks = [vectors for _, vectors in self.vector_chunks()]
            return np.concatenate(chunks).copy() if chunks else np.zeros((0, dim), np.float32)
        found: dict[str, tuple[int, bytes]] = {}
        with self.damage_guard():
            for part, marks in _parts(list(ids)):
                found.update((r[0], (r[1], r[2])) for r in self.db.execute(
                    f"SELECT id, row, vector FROM items WHERE id IN ({marks})", part))
        missing = [item for item in ids if item not in found]
        if missing:
            raise IndexStoreError(f"Catalog id {missing[0]!r} is not in this index.")
        self.verify_rows([found[item][0] for item in ids], vectors=True)
        blobs = [found[item][1] for item in ids]
        if not blobs:
            return np.zeros((0, dim), np.float32)
        return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim).copy()

    # ----------------------------------------------------------------- comparison vectors (other poolings)
    def comparison_vectors(self, ids: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
        """Id -> {pooling: vector} of the stored comparison vectors of `ids`."""
        found: dict[str, dict[str, np.ndarray]] = {}
        for part, marks in _parts(ids):
            for item_id, pooling, vector in self.db.execute(
                    f"SELECT id, pooling, vector FROM alt_vectors WHERE id IN ({marks})", part):
                found.setdefault(item_id, {})[pooling] = np.frombuffer(vector, np.float32)
        return found

    def alternate_poolings(self) -> list[str]:
        """Other poolings whose catalog vectors are stored for every catalog row (for comparisons)."""
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alt_vectors'").fetchone():
            return []  # an index from before comparisons were stored
        with self.damage_guard():
            if self.sealed:  # from the digest tables: one row per chunk, not per catalog row
                expected = dict(self.db.execute("SELECT chunk, rows FROM chunk_digests").fetchall())
                stored: dict[str, dict[int, int]] = {}
                for pooling, chunk, rows in self.db.execute("SELECT pooling, chunk, rows FROM alt_chunk_digests"):
                    stored.setdefault(pooling, {})[chunk] = rows
                return sorted(p for p, chunks in stored.items() if chunks == expected and expected)
            count = self.count()
            rows = self.db.execute(
                "SELECT a.pooling, count(*) FROM alt_vectors a JOIN items i ON i.id = a.id GROUP BY a.pooling"
            ).fetchall()
        return sorted(pooling for pooling, n in rows if n == count and count > 0)

    def _stored_poolings(self) -> list[str]:
        if self.sealed:
            return [r[0] for r in self.db.execute("SELECT DISTINCT pooling FROM alt_chunk_digests")]
        return [r[0] for r in self.db.execute("SELECT DISTINCT pooling FROM alt_vectors")]

    def _alt_chunk(self, pooling: str, chunk: int) -> list[tuple]:
        low, high = self._chunk_bounds(chunk)
        return self.db.execute(
            "SELECT i.row, a.id, a.vector FROM items i JOIN alt_vectors a ON a.pooling = ? AND a.id = i.id "
            "WHERE i.row >= ? AND i.row < ? ORDER BY i.row", (pooling, low, high)).fetchall()

    def comparison_matrix(self, pooling: str) -> tuple[np.ndarray, np.ndarray]:
        """(database rows, L2-normalised vectors) of another pooling, each chunk checked against its digest."""
        sealed = self.sealed
        with self.damage_guard():
            recorded = dict(self.db.execute("SELECT chunk, sha256 FROM alt_chunk_digests WHERE pooling = ?",
                                            (pooling,)).fetchall()) if sealed else {}
            found: list[tuple] = []
            for chunk in self.chunks():
                part = self._alt_chunk(pooling, chunk)
                if sealed and part and _alt_chunk_digest(part) != recorded.get(chunk):
                    low, high = part[0][0], part[-1][0]
                    raise IndexStoreError(
                        f"The stored {pooling} vectors of catalog rows {low}-{high} in {self.directory} do not match "
                        f"their recorded checksum (damaged or edited); {_FIX}.")
                found += part
            if sealed and set(recorded) - {r // self.chunk_rows for r, _, _ in found}:
                raise IndexStoreError(
                    f"Stored {pooling} vectors in {self.directory} were removed outside BeautyLens (they do not match "
                    f"their recorded checksum); {_FIX}.")
            rows = np.array([r for r, _, _ in found], dtype=np.int64)
            matrix = normalize(np.frombuffer(b"".join(v for _, _, v in found), np.float32).reshape(len(found), -1))
        return rows, matrix

    # ----------------------------------------------------------------- integrity: per-chunk digests
    def _write_chunk_digests(self, chunk: int, found: Sequence[tuple] | None = None) -> None:
        """Record the digests of one chunk as it is now (rows and every pooling's vectors)."""
        if found is None:
            found = self._chunk_items(chunk, "row, id, path, description, category, vector")
        self.db.execute("DELETE FROM alt_chunk_digests WHERE chunk = ?", (chunk,))
        if not found:
            self.db.execute("DELETE FROM chunk_digests WHERE chunk = ?", (chunk,))
            return
        digests = _chunk_digests(found)
        self.db.execute(
            f"INSERT OR REPLACE INTO chunk_digests(chunk, rows, {', '.join(_DIGEST_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (chunk, len(found), *(digests[name] for name in _DIGEST_COLUMNS)))
        for pooling in self._poolings_for_digests:
            part = self._alt_chunk(pooling, chunk)
            if part:
                self.db.execute("INSERT INTO alt_chunk_digests(pooling, chunk, rows, sha256) VALUES (?, ?, ?, ?)",
                                (pooling, chunk, len(part), _alt_chunk_digest(part)))
        self._verified.update({(chunk, "text"), (chunk, "vectors")} | {(chunk, p) for p in self._poolings_for_digests})

    @property
    def _poolings_for_digests(self) -> list[str]:
        if self._pooling_list is None:
            self._pooling_list = self._stored_poolings()
        return self._pooling_list

    def _compare_chunk(self, chunk: int, found: Sequence[tuple], columns: Sequence[str]) -> None:
        """Refuse a chunk whose rows no longer match its recorded digests, naming what was edited."""
        recorded = self.db.execute(
            f"SELECT rows, {', '.join(_DIGEST_COLUMNS)} FROM chunk_digests WHERE chunk = ?", (chunk,)).fetchone()
        low, high = self._chunk_bounds(chunk)
        where = f"catalog rows {low}-{high - 1} in {self.directory}"
        if recorded is None:
            if found:
                raise IndexStoreError(f"Rows were added to {where} outside BeautyLens (no checksum records them); "
                                      f"{_FIX}.")
            return
        digests = _chunk_digests(found, with_vectors="vectors" in columns)
        if recorded[0] != len(found):
            what = _EDITED["ids"]
        else:
            names = [name for name in columns if digests[name] != recorded[1 + _DIGEST_COLUMNS.index(name)]]
            what = _EDITED[names[0]] if names else None
        if what is not None:
            raise IndexStoreError(f"The {what} of {where} were edited or damaged after the index was finalised "
                                  f"(they no longer match their recorded checksum); {_FIX}.")

    def verify_rows(self, rows: Iterable[int], vectors: bool = False, comparisons: bool = False) -> None:
        """Check the chunks holding `rows` against their digests (once per connection): text, and vectors if asked."""
        if not self.sealed or self._defer_checks:
            return
        size = self.chunk_rows
        chunks = sorted({int(row) // size for row in rows})
        kinds = ["text"] + (["vectors"] if vectors else [])
        with self.damage_guard():
            for chunk in chunks:
                for kind in kinds:
                    if (chunk, kind) in self._verified:
                        continue
                    if kind == "vectors":
                        found = self._chunk_items(chunk, "row, id, path, description, category, vector")
                        self._compare_chunk(chunk, found, _DIGEST_COLUMNS)
                        self._verified.update({(chunk, "text"), (chunk, "vectors")})
                    else:
                        found = self._chunk_items(chunk, "row, id, path, description, category")
                        self._compare_chunk(chunk, found, _TEXT_COLUMNS)
                        self._verified.add((chunk, "text"))
                if comparisons:
                    self._verify_alt_chunk(chunk)

    def _verify_alt_chunk(self, chunk: int) -> None:
        recorded = dict(self.db.execute("SELECT pooling, sha256 FROM alt_chunk_digests WHERE chunk = ?",
                                        (chunk,)).fetchall())
        for pooling in sorted(set(recorded) | set(self._poolings_for_digests)):
            if (chunk, pooling) in self._verified:
                continue
            part = self._alt_chunk(pooling, chunk)
            if (_alt_chunk_digest(part) if part else None) != recorded.get(pooling):
                low, high = self._chunk_bounds(chunk)
                raise IndexStoreError(
                    f"The stored {pooling} vectors of catalog rows {low}-{high - 1} in {self.directory} do not match "
                    f"their recorded checksum (damaged or edited); {_FIX}.")
            self._verified.add((chunk, pooling))

    def digest_all(self, on_vectors: Callable[[np.ndarray], None] | None = None, check: bool = False) -> None:
        """Read every chunk once: record its digests (or, with `check`, compare them), feeding `on_vectors`.

        Finalising a new index records them in the pass that builds the search structure; a full
        rebuild of a sealed index (`check`) compares them instead, so an edit is refused, not sealed.
        """
        self._pooling_list = None
        with self.damage_guard():
            if not check:
                self.db.execute("DELETE FROM chunk_digests")
                self.db.execute("DELETE FROM alt_chunk_digests")
            for chunk in self.chunks():
                found = self._chunk_items(chunk, "row, id, path, description, category, vector")
                if check:
                    if (chunk, "vectors") not in self._verified:
                        self._compare_chunk(chunk, found, _DIGEST_COLUMNS)
                    self._verified.update({(chunk, "text"), (chunk, "vectors")})
                else:
                    self._write_chunk_digests(chunk, found)
                if on_vectors is not None:
                    on_vectors(self._decode_vectors([row[5] for row in found]))
            if not check:
                self.db.execute("DELETE FROM dirty_chunks")
                if self.has_text_index():  # filled in one go for the rows stored before sealing
                    self.db.execute("INSERT INTO items_text(items_text) VALUES ('rebuild')")

    def verify_all(self, on_progress: Callable[[int, int], None] | None = None) -> int:
        """Check every chunk (rows, vectors, comparison vectors) and SQLite's own structure; returns the rows checked."""
        self.check_integrity()
        if not self.sealed:
            return 0
        self._verified.clear()
        chunks = list(self.chunks())
        recorded = {r[0] for r in self.db.execute("SELECT chunk FROM chunk_digests")}
        missing = sorted(recorded - set(chunks))
        if missing:
            low, high = self._chunk_bounds(missing[0])
            raise IndexStoreError(f"The {_EDITED['ids']} of catalog rows {low}-{high - 1} in {self.directory} were "
                                  f"edited or damaged after the index was finalised; {_FIX}.")
        for number, chunk in enumerate(chunks):
            self.verify_rows([chunk * self.chunk_rows], vectors=True, comparisons=True)
            if on_progress is not None:
                on_progress(number + 1, len(chunks))
        return int(self.db.execute("SELECT coalesce(sum(rows), 0) FROM chunk_digests").fetchone()[0])

    # ----------------------------------------------------------------- integrity: the record checked on open
    def integrity_record(self, settings: dict | None = None) -> dict:
        """SHA-256 of every setting (but the record itself), of each blob, the skipped list and both digest tables."""
        settings = self.settings() if settings is None else settings
        with self.damage_guard():
            blobs = {key: hashlib.sha256(value).hexdigest() if isinstance(value, bytes) else _sha(value)
                     for key, value in self.db.execute("SELECT key, value FROM blobs")}
            skipped = hashlib.sha256()
            for item, reason in self.db.execute("SELECT item, reason FROM skipped ORDER BY item"):
                _feed(skipped, item)
                _feed(skipped, reason)
            chunks = hashlib.sha256()
            for row in self.db.execute(f"SELECT chunk, rows, {', '.join(_DIGEST_COLUMNS)} FROM chunk_digests "
                                       "ORDER BY chunk"):
                for value in row:
                    _feed(chunks, value)
            alt = hashlib.sha256()
            for row in self.db.execute("SELECT pooling, chunk, rows, sha256 FROM alt_chunk_digests "
                                       "ORDER BY pooling, chunk"):
                for value in row:
                    _feed(alt, value)
        return {"settings": {key: _sha(_canonical(value)) for key, value in settings.items()
                             if key not in _RECORD_SETTINGS},
                "blobs": blobs, "skipped": skipped.hexdigest(), "chunks": chunks.hexdigest(),
                "comparison_chunks": alt.hexdigest()}

    def write_integrity(self) -> None:
        """Record the integrity record and its SHA-256 (``content_sha256``) inside the caller's transaction."""
        settings = self.settings()
        settings.pop("format_version", None)
        record = self.integrity_record({**settings, "format_version": FORMAT_VERSION})
        self.write_settings({"format_version": FORMAT_VERSION, "integrity": record,
                             "content_sha256": _sha(_canonical(record))})

    def verify_record(self, settings: dict) -> None:
        """Refuse an index whose settings, blobs, skipped list or checksum tables were edited, naming what.

        Cheap (no catalog row is read); rows are checked against their chunk digests when read.
        """
        if settings.get("format_version") == LEGACY_FORMAT_VERSION:
            self.verify_legacy_content(settings)
            return
        where = f"the index in {self.directory}"
        if "content_sha256" not in settings:
            if settings.get("complete"):
                raise IndexStoreError(f"The content checksum setting (content_sha256) of {where} was deleted, so its "
                                      f"content cannot be trusted; {_FIX}.")
            return  # an unfinished build: nothing recorded yet
        record = settings.get("integrity")
        if not isinstance(record, dict) or _sha(_canonical(record)) != settings["content_sha256"]:
            raise IndexStoreError(f"The checksum record (the content_sha256 and integrity settings) of {where} was "
                                  f"edited; {_FIX}.")
        current = self.integrity_record(settings)
        recorded_settings, current_settings = record.get("settings") or {}, current["settings"]
        for key in sorted(set(recorded_settings) | set(current_settings)):
            if key not in current_settings:
                raise IndexStoreError(f"The setting {key!r} was deleted from {where}; {_FIX}.")
            if key not in recorded_settings:
                raise IndexStoreError(f"The setting {key!r} was added to {where} outside BeautyLens; {_FIX}.")
            if recorded_settings[key] != current_settings[key]:
                raise IndexStoreError(f"The setting {key!r} was edited in {where}; {_FIX}.")
        named = {"blobs": "stored whitening", "skipped": "list of skipped files",
                 "chunks": "table of catalog row checksums", "comparison_chunks": "table of comparison-vector checksums"}
        for part, name in named.items():
            if record.get(part) != current[part]:
                raise IndexStoreError(f"The {name} of {where} was edited; {_FIX}.")

    # ----------------------------------------------------------------- format 1 (one checksum over every row)
    def legacy_content_digest(self) -> str:
        """Format 1's SHA-256 of catalog rows and vectors, whitening and model settings (every row read)."""
        digest = hashlib.sha256()
        settings = self.settings()
        _feed(digest, json.dumps({key: settings.get(key) for key in _CHECKED_SETTINGS}, sort_keys=True))
        last = -(1 << 62)
        while True:
            found = self.db.execute("SELECT row, id, path, description, category, vector FROM items WHERE row > ? "
                                    "ORDER BY row LIMIT 4096", (last,)).fetchall()
            if not found:
                break
            for row in found:
                for value in row:
                    _feed(digest, value)
            last = found[-1][0]
        for row in self.db.execute("SELECT key, value FROM blobs ORDER BY key"):
            for value in row:
                _feed(digest, value)
        return digest.hexdigest()

    def verify_legacy_content(self, settings: dict) -> None:
        """Format 1's check on open: the whole-database checksum recorded when it was finalised."""
        expected = settings.get("content_sha256")
        if expected is None or settings.get("faiss_revision") != settings.get("revision"):
            return  # format 1 recorded nothing to compare with (unfinished, or an interrupted update)
        with self.damage_guard():
            actual = self.legacy_content_digest()
        if actual != expected:
            raise IndexStoreError(
                f"The index database in {self.directory} does not match its recorded checksum (it was damaged "
                f"or edited); rebuild it with `catalog build`.")

    def upgrade(self) -> None:
        """Give a format-1 index per-chunk checksums and the integrity record (once, in one transaction)."""
        settings = self.settings()
        with self.writing():
            values = {"chunk_rows": int(settings.get("chunk_rows") or CHUNK_ROWS)}
            self.write_settings(values)
            self.db.execute("DELETE FROM settings WHERE key = 'alt_sha256'")
            self._settings_cache = None
            self.digest_all()
            self.db.execute("DELETE FROM structure_changes")
            if "content_sha256" in settings:
                self.write_integrity()
            else:
                self.write_settings({"format_version": FORMAT_VERSION})

    # ----------------------------------------------------------------- the search structure's pending changes
    def structure_changes(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows changed since the search structure was written, whether each was in it then)."""
        with self.damage_guard():
            found = self.db.execute("SELECT row, was_present FROM structure_changes ORDER BY row").fetchall()
        rows = np.array([r[0] for r in found], dtype=np.int64)
        return rows, np.array([bool(r[1]) for r in found], dtype=bool)

    def clear_structure_changes(self) -> None:
        self.db.execute("DELETE FROM structure_changes")

    @contextlib.contextmanager
    def checks_deferred(self) -> Iterator[None]:
        """Skip read-time chunk checks inside a pass that checks every chunk itself (a full finalise)."""
        self._defer_checks = True
        try:
            yield
        finally:
            self._defer_checks = False

    @contextlib.contextmanager
    def damage_guard(self) -> Iterator[None]:
        """Report SQLite's errors about a damaged file (in tables outside the checksum) as one sentence."""
        try:
            yield
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:  # text that is not UTF-8, a mangled type
            raise IndexStoreError(
                f"The index database in {self.directory} is damaged ({exc}); rebuild it with `catalog build`."
            ) from None
