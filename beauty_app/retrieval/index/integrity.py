"""Checksums of an index database: per-chunk digests, the integrity record, verification, upgrade.

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

:class:`ChunkIntegrity` is a part of :class:`~.store.CatalogStore`: it uses the store's
connection, settings, chunk reads and ``writing()`` transactions, and is kept apart so that the
rows and staging can be read without the checksum rules, and the checksum rules without SQL for rows.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ...errors import IndexStoreError
from .schema import CHECKED_SETTINGS, CHUNK_ROWS, FORMAT_VERSION, LEGACY_FORMAT_VERSION, bound_parts

#: Settings the integrity record itself consists of (not hashed into it).
_RECORD_SETTINGS = ("content_sha256", "integrity")
#: Per-chunk digests of the catalog rows, and what an edit of each means to a reader.
_TEXT_COLUMNS = ("ids", "paths", "descriptions", "categories")
_DIGEST_COLUMNS = (*_TEXT_COLUMNS, "vectors")
_EDITED = {"ids": "ids or row numbers (rows were added, removed or renumbered)", "paths": "image paths",
           "descriptions": "descriptions", "categories": "categories", "vectors": "stored vectors"}
#: The end of every refusal: what the user can do about it.
REBUILD_HINT = "rebuild it with `catalog build`"


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


def alt_chunk_digest(found: Iterable[tuple]) -> str:
    """SHA-256 of one pooling's vectors in one chunk: (row, id, vector) tuples in row order."""
    digest = hashlib.sha256()
    for row, item_id, vector in found:
        _feed(digest, row)
        _feed(digest, str(item_id).encode())
        _feed(digest, vector)
    return digest.hexdigest()


class ChunkIntegrity:
    """The checksum part of :class:`~.store.CatalogStore` (see the module docstring)."""

    db: sqlite3.Connection
    directory: Path
    _verified: set[tuple]
    _defer_checks: bool
    _pooling_list: list[str] | None
    _settings_cache: tuple[int, dict] | None

    # ----------------------------------------------------------------- keeping a sealed index's checksums
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
        for part, marks in bound_parts(list(ids)):
            rows += [r[0] for r in self.db.execute(f"SELECT row FROM items WHERE id IN ({marks})", part)]
        if appends:
            last = self.db.execute("SELECT max(row) FROM items").fetchone()[0]
            if last is not None:
                rows.append(int(last))
        self.verify_rows(rows, vectors=True, comparisons=True)

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
                                (pooling, chunk, len(part), alt_chunk_digest(part)))
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
                                      f"{REBUILD_HINT}.")
            return
        digests = _chunk_digests(found, with_vectors="vectors" in columns)
        if recorded[0] != len(found):
            what = _EDITED["ids"]
        else:
            names = [name for name in columns if digests[name] != recorded[1 + _DIGEST_COLUMNS.index(name)]]
            what = _EDITED[names[0]] if names else None
        if what is not None:
            raise IndexStoreError(f"The {what} of {where} were edited or damaged after the index was finalised "
                                  f"(they no longer match their recorded checksum); {REBUILD_HINT}.")

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
            if (alt_chunk_digest(part) if part else None) != recorded.get(pooling):
                low, high = self._chunk_bounds(chunk)
                raise IndexStoreError(
                    f"The stored {pooling} vectors of catalog rows {low}-{high - 1} in {self.directory} do not match "
                    f"their recorded checksum (damaged or edited); {REBUILD_HINT}.")
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
                    self.refill_text_index()

    def verify_all_text(self) -> int:
        """Check the text of every chunk not yet checked on this connection (what :meth:`verify_rows` does on
        a chunk's first read); returns the number of chunks holding rows."""
        chunks = list(self.chunks())
        self.verify_rows([chunk * self.chunk_rows for chunk in chunks])
        return len(chunks)

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
                                  f"edited or damaged after the index was finalised; {REBUILD_HINT}.")
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
                                      f"content cannot be trusted; {REBUILD_HINT}.")
            return  # an unfinished build: nothing recorded yet
        record = settings.get("integrity")
        if not isinstance(record, dict) or _sha(_canonical(record)) != settings["content_sha256"]:
            raise IndexStoreError(f"The checksum record (the content_sha256 and integrity settings) of {where} was "
                                  f"edited; {REBUILD_HINT}.")
        current = self.integrity_record(settings)
        recorded_settings, current_settings = record.get("settings") or {}, current["settings"]
        for key in sorted(set(recorded_settings) | set(current_settings)):
            if key not in current_settings:
                raise IndexStoreError(f"The setting {key!r} was deleted from {where}; {REBUILD_HINT}.")
            if key not in recorded_settings:
                raise IndexStoreError(f"The setting {key!r} was added to {where} outside BeautyLens; {REBUILD_HINT}.")
            if recorded_settings[key] != current_settings[key]:
                raise IndexStoreError(f"The setting {key!r} was edited in {where}; {REBUILD_HINT}.")
        named = {"blobs": "stored whitening", "skipped": "list of skipped files",
                 "chunks": "table of catalog row checksums", "comparison_chunks": "table of comparison-vector checksums"}
        for part, name in named.items():
            if record.get(part) != current[part]:
                raise IndexStoreError(f"The {name} of {where} was edited; {REBUILD_HINT}.")

    # ----------------------------------------------------------------- format 1 (one checksum over every row)
    def legacy_content_digest(self) -> str:
        """Format 1's SHA-256 of catalog rows and vectors, whitening and model settings (every row read)."""
        digest = hashlib.sha256()
        settings = self.settings()
        _feed(digest, json.dumps({key: settings.get(key) for key in CHECKED_SETTINGS}, sort_keys=True))
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
