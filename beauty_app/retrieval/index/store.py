# Kept in one module (about 530 lines): rows, staging and settings are one transaction vocabulary;
# the schema, the checksums and the text index are already apart (schema.py, integrity.py, text_search.py).
"""The SQLite database of an index directory: catalog rows and vectors, staging, settings.

The database is the source of truth and every change to it is one SQLite transaction, so a
killed build or `catalog add` leaves either the old or the new state, never a mix.

:class:`CatalogStore` is made of three parts, one reason to change each: this module (rows,
staging, settings, transactions), :class:`~.integrity.ChunkIntegrity` (per-chunk checksums, the
integrity record checked on open, `catalog verify`, the upgrade of format-1 indexes) and
:class:`~.text_search.TextIndex` (the browser's FTS5 table). The tables are in :mod:`.schema`.

Nothing here knows faiss; vectors leave this module as numpy arrays, read a chunk at a time.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import IndexStoreError
from .integrity import REBUILD_HINT, ChunkIntegrity, alt_chunk_digest
from .schema import (
    CHECKED_SETTINGS,
    CHUNK_ROWS,
    DB_NAME,
    FORMAT_VERSION,
    LEGACY_FORMAT_VERSION,
    SCHEMA,
    TRACKING_TRIGGERS,
    bound_parts,
)
from .text_search import TextIndex
from .whitening import normalize

# The format's names are importable from here too (the index facade reads them with the store).
__all__ = ["CHUNK_ROWS", "DB_NAME", "FORMAT_VERSION", "LEGACY_FORMAT_VERSION", "CatalogStore", "ItemRecord"]


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

class CatalogStore(ChunkIntegrity, TextIndex):
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
            self.db.executescript(SCHEMA)
        chunk = int(self.settings().get("chunk_rows") or CHUNK_ROWS)
        self.db.executescript(TRACKING_TRIGGERS.format(chunk=chunk))
        if self.has_text_index():
            self.attach_text_triggers()

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
        for key in CHECKED_SETTINGS:
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

    # ----------------------------------------------------------------- writing rows
    def known_items(self) -> set[str]:
        """Ids already stored or already skipped (a resumed build does not redo them); all of them at once."""
        stored = {row[0] for row in self.db.execute("SELECT id FROM items")}
        return stored | {row[0] for row in self.db.execute("SELECT item FROM skipped")}

    def known_among(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are already stored or skipped: :meth:`known_items` for one chunk of a catalog."""
        found: set[str] = set()
        for part, marks in bound_parts(ids):
            found.update(r[0] for r in self.db.execute(f"SELECT id FROM items WHERE id IN ({marks})", part))
            found.update(r[0] for r in self.db.execute(f"SELECT item FROM skipped WHERE item IN ({marks})", part))
        return found

    def stored_paths(self, ids: Sequence[str]) -> dict[str, str]:
        """Id -> image path of those `ids` stored in the catalog or staged by an unfinished `catalog add`."""
        found: dict[str, str] = {}
        for part, marks in bound_parts(ids):
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
            for part, marks in bound_parts(rows):
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
            for part, marks in bound_parts(list(ids)):
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
        for part, marks in bound_parts(ids):
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
                if sealed and part and alt_chunk_digest(part) != recorded.get(chunk):
                    low, high = part[0][0], part[-1][0]
                    raise IndexStoreError(
                        f"The stored {pooling} vectors of catalog rows {low}-{high} in {self.directory} do not match "
                        f"their recorded checksum (damaged or edited); {REBUILD_HINT}.")
                found += part
            if sealed and set(recorded) - {r // self.chunk_rows for r, _, _ in found}:
                raise IndexStoreError(
                    f"Stored {pooling} vectors in {self.directory} were removed outside BeautyLens (they do not match "
                    f"their recorded checksum); {REBUILD_HINT}.")
            rows = np.array([r for r, _, _ in found], dtype=np.int64)
            matrix = normalize(np.frombuffer(b"".join(v for _, _, v in found), np.float32).reshape(len(found), -1))
        return rows, matrix

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
