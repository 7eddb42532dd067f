"""The SQLite database of an index directory: catalog rows and vectors, staging, settings, checksums.

The database is the source of truth and every change to it is one SQLite transaction, so a
killed build or `catalog add` leaves either the old or the new state, never a mix. Finalising
records a checksum of the content that search results are made of (catalog rows, vectors,
whitening, model settings); :meth:`CatalogStore.verify_content` compares it on open, so a damaged
or edited database is refused with a hint to rebuild instead of giving wrong results.

Nothing here knows faiss; vectors leave this module as numpy arrays, read a chunk at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import IndexStoreError
from .whitening import normalize

DB_NAME = "catalog.sqlite"
FORMAT_VERSION = 1
#: Rows read from the database at a time when finalising or checking (about 32 MiB of 1280-d vectors).
CHUNK_BYTES = 32 << 20
#: Settings that change what the stored vectors mean; covered by the content checksum.
_CHECKED_SETTINGS = ("model_fingerprint", "pooling", "dim", "scales", "input_size")
#: SQLite refuses statements with more bound parameters than this (999 in older builds).
_IN_LIST = 900

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
"""


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

    def __init__(self, directory: Path, connection: sqlite3.Connection):
        self.directory = directory
        self.db = connection
        self._row_cache: np.ndarray | None = None

    @staticmethod
    def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
        """Open the database file (read-only, or in WAL mode with full syncs for writing)."""
        try:
            if readonly:
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
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
        """Create the tables that are missing (all of them, or those added since the index was made)."""
        with self.db:
            self.db.executescript(_SCHEMA)

    def check_integrity(self) -> None:
        """Refuse a database file that SQLite itself finds damaged."""
        try:
            ok = self.db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(
                f"The index database in {self.directory} is damaged ({exc}); rebuild it with `catalog build`."
            ) from None
        if ok != "ok":
            raise IndexStoreError(
                f"The index database in {self.directory} is damaged; rebuild it with `catalog build`.")

    # ----------------------------------------------------------------- settings
    def settings(self) -> dict:
        try:
            rows = self.db.execute("SELECT key, value FROM settings").fetchall()
            return {key: json.loads(value) for key, value in rows}
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            raise IndexStoreError(f"The index database in {self.directory} is damaged ({exc}); rebuild it.") from None

    def write_settings(self, values: dict) -> None:
        """Record settings inside the caller's transaction."""
        self.db.executemany(
            "INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [(key, json.dumps(value)) for key, value in values.items()],
        )

    def update_settings(self, values: dict) -> None:
        """Record settings in a transaction of their own."""
        with self.db:
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
        row = self.db.execute("SELECT value FROM blobs WHERE key = 'whitening'").fetchone()
        return row[0] if row else None

    def set_whitening_blob(self, data: bytes | None) -> None:
        """Store (None: remove) the whitening inside the caller's transaction."""
        if data is None:
            self.db.execute("DELETE FROM blobs WHERE key = 'whitening'")
        else:
            self.db.execute("INSERT INTO blobs(key, value) VALUES('whitening', ?) "
                            "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (data,))

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
        with self.db:
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
        with self.db:
            moved = int(self.db.execute("SELECT count(*) FROM staged").fetchone()[0])
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
        with self.db:
            before = self.count()
            self.db.executemany("DELETE FROM items WHERE id = ?", [(item,) for item in ids])
            self.db.executemany("DELETE FROM alt_vectors WHERE id = ?", [(item,) for item in ids])
            removed = before - self.count()
            self.bump_revision()
        return removed

    # ----------------------------------------------------------------- reading rows
    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM items").fetchone()[0])

    def skipped(self) -> list[tuple[str, str]]:
        with self.damage_guard():
            return [tuple(row) for row in self.db.execute("SELECT item, reason FROM skipped ORDER BY item")]

    def rows(self) -> np.ndarray:
        """Database row numbers in row order: position i of the search structure is row rows()[i]."""
        if self._row_cache is None:
            self._row_cache = np.array([r[0] for r in self.db.execute("SELECT row FROM items ORDER BY row")],
                                       dtype=np.int64)
        return self._row_cache

    def forget_rows(self) -> None:
        """Drop the cached :meth:`rows` (the catalog is being rebuilt into a new structure)."""
        self._row_cache = None

    def records(self, rows: Sequence[int]) -> dict[int, tuple]:
        """Row -> (id, path, description, category) for the given database rows."""
        if not rows:
            return {}
        found = self.db.execute(
            f"SELECT row, id, path, description, category FROM items WHERE row IN ({','.join('?' * len(rows))})",
            list(rows)).fetchall()
        return {r[0]: r[1:] for r in found}

    def thumbnail(self, item_id: str) -> bytes | None:
        row = self.db.execute("SELECT thumbnail FROM items WHERE id = ?", (item_id,)).fetchone()
        return row[0] if row else None

    def _chunk_rows(self) -> int:
        dim = int(self.settings().get("dim") or 1)
        return max(256, CHUNK_BYTES // (4 * dim))

    def _item_chunks(self, columns: str = "row, vector") -> Iterator[list[tuple]]:
        """Catalog rows in row order, a chunk at a time (keyset paging: each chunk costs the same)."""
        size = self._chunk_rows()
        last = None
        while True:
            found = self.db.execute(
                f"SELECT {columns} FROM items WHERE row > ? ORDER BY row LIMIT ?",
                (-(1 << 62) if last is None else last, size)).fetchall()
            if not found:
                return
            yield found
            last = found[-1][0]

    def _decode_vectors(self, blobs: Sequence[bytes]) -> np.ndarray:
        dim = int(self.settings()["dim"])
        if not blobs:
            return np.zeros((0, dim), np.float32)
        return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)

    def vector_chunks(self) -> Iterator[tuple[list[int], np.ndarray]]:
        """(rows, raw vectors) of the catalog in row order, a chunk at a time."""
        for found in self._item_chunks("row, vector"):
            yield [r[0] for r in found], self._decode_vectors([r[1] for r in found])

    def raw_vectors_at(self, rows: Sequence[int]) -> np.ndarray:
        """Stored vectors of the given database rows, in that order."""
        rows = [int(r) for r in rows]
        lookup: dict[int, bytes] = {}
        for part, marks in _parts(rows):
            lookup.update(self.db.execute(f"SELECT row, vector FROM items WHERE row IN ({marks})", part).fetchall())
        return self._decode_vectors([lookup[r] for r in rows])

    def raw_vectors(self, ids: Sequence[str] | None = None) -> np.ndarray:
        """Stored (unwhitened) vectors in row order, or for the given ids in that order (all at once)."""
        dim = int(self.settings()["dim"])
        if ids is None:
            blobs = [r[0] for r in self.db.execute("SELECT vector FROM items ORDER BY row")]
        else:
            lookup = dict(self.db.execute(
                f"SELECT id, vector FROM items WHERE id IN ({','.join('?' * len(ids))})", list(ids)).fetchall()) if ids else {}
            missing = [item for item in ids if item not in lookup]
            if missing:
                raise IndexStoreError(f"Catalog id {missing[0]!r} is not in this index.")
            blobs = [lookup[item] for item in ids]
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
        count = self.count()
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alt_vectors'").fetchone():
            return []  # an index from before comparisons were stored
        with self.damage_guard():
            rows = self.db.execute(
                "SELECT a.pooling, count(*) FROM alt_vectors a JOIN items i ON i.id = a.id GROUP BY a.pooling"
            ).fetchall()
        return sorted(pooling for pooling, n in rows if n == count and count > 0)

    def comparison_matrix(self, pooling: str) -> tuple[np.ndarray, np.ndarray]:
        """(database rows, L2-normalised vectors) of another pooling, checked against its recorded checksum."""
        settings = self.settings()
        with self.damage_guard():
            found = [row for chunk in self._alt_chunks(pooling) for row in chunk]
            digest = self.alt_digest(pooling, [found])
            expected = (settings.get("alt_sha256") or {}).get(pooling)
            if expected is not None and settings.get("faiss_revision") == settings.get("revision") \
                    and digest != expected:
                raise IndexStoreError(
                    f"The stored {pooling} vectors in {self.directory} do not match their recorded checksum "
                    f"(damaged or edited); rebuild the index with `catalog build`.")
            rows = np.array([r for r, _, _ in found], dtype=np.int64)
            matrix = normalize(np.frombuffer(b"".join(v for _, _, v in found), np.float32).reshape(len(found), -1))
        return rows, matrix

    def _alt_chunks(self, pooling: str) -> Iterator[list[tuple]]:
        """(row, id, vector) of another pooling's stored vectors in catalog order, a chunk at a time."""
        size = self._chunk_rows()
        last = -(1 << 62)
        while True:
            found = self.db.execute(
                "SELECT i.row, a.id, a.vector FROM items i JOIN alt_vectors a ON a.pooling = ? AND a.id = i.id "
                "WHERE i.row > ? ORDER BY i.row LIMIT ?", (pooling, last, size)).fetchall()
            if not found:
                return
            yield found
            last = found[-1][0]

    # ----------------------------------------------------------------- integrity
    def content_digest(self, on_vectors: Callable[[np.ndarray], None] | None = None) -> str:
        """SHA-256 of what search results are made of: catalog rows and vectors, whitening, model settings.

        Thumbnails and skip reasons never change a ranking; the comparison vectors of other poolings
        have their own checksums (``alt_sha256``), checked when a comparison first reads them, so that
        opening an index does not read every pooling's vectors.
        Read chunk by chunk; `on_vectors` receives each chunk's raw vectors (finalising builds the
        search structure in the same pass).
        """
        digest = hashlib.sha256()

        def feed(value) -> None:
            data = value if isinstance(value, bytes) else repr(value).encode()
            digest.update(len(data).to_bytes(8, "little"))  # length-prefixed: fields cannot run together
            digest.update(data)

        settings = self.settings()
        feed(json.dumps({key: settings.get(key) for key in _CHECKED_SETTINGS}, sort_keys=True))
        for found in self._item_chunks("row, id, path, description, category, vector"):
            for row in found:
                for value in row:
                    feed(value)
            if on_vectors is not None:
                on_vectors(self._decode_vectors([row[5] for row in found]))
        for row in self.db.execute("SELECT key, value FROM blobs ORDER BY key"):
            for value in row:
                feed(value)
        return digest.hexdigest()

    def alt_digest(self, pooling: str, chunks: Iterable[list[tuple]] | None = None) -> str:
        """SHA-256 of another pooling's stored vectors (ids and vectors in catalog order)."""
        digest = hashlib.sha256()
        for found in self._alt_chunks(pooling) if chunks is None else chunks:
            for _, item_id, vector in found:
                for data in (str(item_id).encode(), vector if isinstance(vector, bytes) else repr(vector).encode()):
                    digest.update(len(data).to_bytes(8, "little"))
                    digest.update(data)
        return digest.hexdigest()

    @contextlib.contextmanager
    def damage_guard(self) -> Iterator[None]:
        """Report SQLite's errors about a damaged file (in tables outside the checksum) as one sentence."""
        try:
            yield
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:  # text that is not UTF-8, a mangled type
            raise IndexStoreError(
                f"The index database in {self.directory} is damaged ({exc}); rebuild it with `catalog build`."
            ) from None

    def verify_content(self, settings: dict) -> None:
        """Refuse a database whose content no longer matches the checksum recorded when it was finalised."""
        expected = settings.get("content_sha256")
        if expected is None or settings.get("faiss_revision") != settings.get("revision"):
            # No checksum yet (an unfinished build, an index from before checksums), or an update
            # that was interrupted after its commit: nothing recorded to compare with.
            return
        with self.damage_guard():
            actual = self.content_digest()
        if actual != expected:
            raise IndexStoreError(
                f"The index database in {self.directory} does not match its recorded checksum (it was damaged "
                f"or edited); rebuild it with `catalog build`."
            )
