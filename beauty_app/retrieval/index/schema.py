"""The database format of an index directory: file name, format version, tables and tracking triggers.

Shared by :mod:`.store` (rows, staging, settings), :mod:`.integrity` (checksums) and
:mod:`.text_search`; changing anything here changes the on-disk format.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

#: The database file in an index directory.
DB_NAME = "catalog.sqlite"
#: 2: per-chunk checksums and the integrity record. 1: one checksum over every row (upgraded on open).
FORMAT_VERSION = 2
LEGACY_FORMAT_VERSION = 1
#: Rows per checksum chunk of a new index (recorded as the ``chunk_rows`` setting; the unit of reading).
#: Small enough that checking the chunk of a search hit reads little (a hit costs its chunk once per open).
CHUNK_ROWS = 256
#: Settings that change what the stored vectors mean (a resumed build must keep them; format 1's checksum).
CHECKED_SETTINGS = ("model_fingerprint", "pooling", "dim", "scales", "input_size")
#: SQLite refuses statements with more bound parameters than this (999 in older builds).
_IN_LIST = 900

SCHEMA = """
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
TRACKING_TRIGGERS = """
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
TRACKING_TRIGGERS = TRACKING_TRIGGERS.replace("{note_new}", _NOTE_ROW.format(row="new.row", present=0)).replace(
    "{note_old}", _NOTE_ROW.format(row="old.row", present=1))


def bound_parts(ids: Sequence, size: int = _IN_LIST) -> Iterator[tuple[list, str]]:
    """`ids` in parts small enough to bind, each with its ``?,?,...`` placeholder list."""
    for start in range(0, len(ids), size):
        part = list(ids[start:start + size])
        yield part, ",".join("?" * len(part))
